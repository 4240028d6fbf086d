/** What the console's socket sends: the wire's own types (passport-frame/src/protocol/console.ts). */
export type {
  ConsoleMessage,
  ConsoleSessionRow as SessionRow,
  ConsoleSiteRow as SiteTokenRow,
} from '../../passport-frame/src/protocol/console.ts'

/** What the console's HTTP API sends (mirrors the server's JSON). */
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
