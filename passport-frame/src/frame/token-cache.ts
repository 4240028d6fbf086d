import type { TokenAnswer } from './server-api.ts'

/**
 * The frame's token cache. It lives in the frame's localStorage, which browsers partition by
 * top-level site: the entry written under News is invisible to the frame under Shop. Tabs of
 * the same site share it. Expiry is judged on the server's clock (offset stored with it).
 */
export interface CachedToken {
  token: string
  /** Server time (ms) at which the token expires. */
  expiresAt: number
  /** serverTime - Date.now() when the token was received. */
  clockOffsetMs: number
  /** The rotating refresh credential (absent where the server gave none). */
  refreshToken?: string
  /** Server time at which to refresh. */
  refreshAt?: number
  /** Server time after which the refresh credential is dead. */
  refreshExpiresAt?: number
  /** Server time at which the token was received (forced refreshes are spaced by it). */
  obtainedAt?: number
}

/** The cache entry for a token answer received at `localNow` (this page's clock). */
export function toCacheEntry(answer: TokenAnswer, localNow: number): CachedToken {
  return {
    token: answer.token,
    expiresAt: answer.expiresAt,
    clockOffsetMs: answer.serverTime - localNow,
    obtainedAt: answer.serverTime,
    ...(answer.refreshToken
      ? {
          refreshToken: answer.refreshToken,
          refreshAt: answer.refreshAt,
          refreshExpiresAt: answer.refreshExpiresAt,
        }
      : {}),
  }
}

/** Treat a token as gone this long before it really expires, so it never dies in flight. */
const EXPIRY_MARGIN_MS = 30_000

export interface TokenCache {
  /** The token, while it is comfortably alive. */
  read(): CachedToken | null
  /** The entry while its token or its refresh credential is alive: what a refresh starts from. */
  readRenewable(): CachedToken | null
  write(entry: CachedToken): void
  clear(): void
}

export function createTokenCache(
  siteId: string,
  storage: Storage | null,
  now = () => Date.now(),
): TokenCache {
  const key = `passport:token:${siteId}`
  // Where storage works it is the only source of truth, shared with this site's other tabs: a
  // logout in one tab must not leave a copy in another frame's memory. The in-memory copy
  // serves only when there is no storage or it refused the last write.
  let memory: CachedToken | null = null
  let memoryOnly = storage === null
  const isEntry = (e: unknown): e is CachedToken =>
    typeof e === 'object' &&
    e !== null &&
    typeof (e as CachedToken).token === 'string' &&
    Number.isFinite((e as CachedToken).expiresAt) &&
    Number.isFinite((e as CachedToken).clockOffsetMs) &&
    ((e as CachedToken).refreshToken === undefined ||
      (typeof (e as CachedToken).refreshToken === 'string' &&
        Number.isFinite((e as CachedToken).refreshAt) &&
        Number.isFinite((e as CachedToken).refreshExpiresAt)))
  const isFresh = (e: CachedToken) => e.expiresAt - EXPIRY_MARGIN_MS > now() + e.clockOffsetMs
  const isRenewable = (e: CachedToken) =>
    isFresh(e) || (e.refreshToken !== undefined && (e.refreshExpiresAt ?? 0) > now() + e.clockOffsetMs)
  const load = (): CachedToken | null => {
    let entry: unknown = memory
    if (!memoryOnly) {
      try {
        const raw = storage?.getItem(key)
        entry = raw ? JSON.parse(raw) : null
      } catch {
        entry = memory
      }
    }
    return isEntry(entry) ? entry : null
  }
  return {
    read: () => {
      const entry = load()
      return entry && isFresh(entry) ? entry : null
    },
    readRenewable: () => {
      const entry = load()
      return entry && isRenewable(entry) ? entry : null
    },
    write: (entry) => {
      memory = entry
      try {
        storage?.setItem(key, JSON.stringify(entry))
        memoryOnly = storage === null
      } catch {
        // Storage full or blocked: the in-memory copy still serves this frame.
        memoryOnly = true
      }
    },
    clear: () => {
      memory = null
      try {
        storage?.removeItem(key)
      } catch {}
    },
  }
}
