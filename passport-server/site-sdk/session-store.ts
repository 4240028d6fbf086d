/** The signed-in user of a site's first-party session, as the page handlers see it. */
export interface SessionUser {
  /** The passport's user id (`sub`). */
  sub: string
  username: string
  name: string
}

/** One first-party session of the site: who, and the site token kept on the server. */
export interface StoredSession {
  /** SHA-256 of the cookie value: the store never holds a value that would open the session. */
  id: string
  user: SessionUser
  /** The passport session behind it (`sid`): back-channel logout ends it by this. */
  passportSid: string
  accessToken: string
  /** The access token's expiry, ms since the epoch. */
  accessExpiresAt: number
  /** Rotated by the passport on every refresh; never leaves this server. */
  refreshToken: string | null
  /** Last request in this session, ms: an idle session is forgotten after a day. */
  lastSeenAt: number
}

/**
 * Where a site keeps its sessions. The default is this process's memory: sessions end with the
 * process (the next page load signs in again silently) and a back-channel logout must reach
 * the same process. Several processes need a shared store and a shared push (not provided here).
 */
export interface SessionStore {
  get(id: string): Promise<StoredSession | null>
  set(session: StoredSession): Promise<void>
  delete(id: string): Promise<void>
  /** Removes every session of this passport session; returns their ids. */
  deleteByPassportSid(passportSid: string): Promise<string[]>
}

const IDLE_MS = 86_400_000
const MAX_SESSIONS = 100_000

export function createMemorySessionStore(now: () => number = Date.now): SessionStore {
  const sessions = new Map<string, StoredSession>()
  const forgetIdle = () => {
    for (const [id, s] of sessions) if (now() - s.lastSeenAt > IDLE_MS) sessions.delete(id)
  }
  return {
    async get(id) {
      const session = sessions.get(id)
      if (!session || now() - session.lastSeenAt > IDLE_MS) return null
      return session
    },
    async set(session) {
      if (sessions.size >= MAX_SESSIONS && !sessions.has(session.id)) forgetIdle()
      if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value as string)
      sessions.set(session.id, session)
    },
    async delete(id) {
      sessions.delete(id)
    },
    async deleteByPassportSid(passportSid) {
      const ids = [...sessions.values()].filter((s) => s.passportSid === passportSid).map((s) => s.id)
      for (const id of ids) sessions.delete(id)
      return ids
    },
  }
}
