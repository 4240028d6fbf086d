/** What the console's API and socket send (mirrors passport-server/src/services/console-view.ts). */
export interface SiteTokenRow {
  siteId: string
  jti: string
  issuedAt: number
  expiresAt: number
  refreshAt: number
  sockets: number
}

export interface SessionRow {
  id: string
  userId: string
  username: string
  device: string
  userAgent: string
  method: string
  address: string | null
  createdAt: number
  lastActivityAt: number
  sockets: number
  sites: SiteTokenRow[]
}

export type ConsoleMessage =
  | { type: 'snapshot'; now: number; sessions: SessionRow[] }
  | { type: 'session'; now: number; row: SessionRow }
  | { type: 'session_removed'; now: number; id: string; reason?: string }

export interface Site {
  id: string
  name: string
  origins: string[]
  redirectUris: string[]
  loginModes: string[]
  tokenTtlSeconds: number
  refreshIdleSeconds: number
  refreshAbsoluteSeconds: number
  refreshBeforeSeconds: number
  backchannelLogoutUri: string | null
  oneDevicePerSite: boolean
  dpopBoundTokens: boolean
  authkeyVersion: number
  createdAt: number
}

export interface User {
  id: string
  username: string
  name: string
  createdAt: number
  isAdmin: boolean
  disabled: boolean
}

export interface AuditEvent {
  id: number
  type: string
  actor: string | null
  userId: string | null
  siteId: string | null
  sessionId: string | null
  at: number
  detail: Record<string, unknown>
}
