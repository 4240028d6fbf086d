/**
 * The operator console's live wire: a WebSocket from the console page (`passport-admin/`) to the
 * passport's `CONSOLE_LIVE_PATH`. Both ends import this file, so the path, sub-protocol, close
 * code and row shapes are written once (the server builds rows in services/console-view.ts).
 *
 * Opening it needs the passport's own `Origin` and an admin's passport session cookie (403
 * otherwise). The server sends a `snapshot`, then one message per change; it reads nothing.
 */
export const CONSOLE_LIVE_PATH = '/admin/live'
export const CONSOLE_LIVE_PROTOCOL = 'passport-console.v1'
/** Close code when the admin's own session ends or stops being an admin's: do not reconnect. */
export const CLOSE_NOT_ADMIN = 4403

/** A device's current token on one site, as the monitoring view shows it. */
export interface ConsoleSiteRow {
  siteId: string
  jti: string
  issuedAt: number
  expiresAt: number
  /** When the frame refreshes by itself (the site's lead time before expiry). */
  refreshAt: number
  sockets: number
}

/** One live device (passport session): who, which browser, where, how, and its sites. */
export interface ConsoleSessionRow {
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
  sites: ConsoleSiteRow[]
}

export type ConsoleMessage =
  | { type: 'snapshot'; now: number; sessions: ConsoleSessionRow[] }
  | { type: 'session'; now: number; row: ConsoleSessionRow }
  | { type: 'session_removed'; now: number; id: string; reason?: string }
