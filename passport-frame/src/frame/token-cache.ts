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
}

/** Treat a token as gone this long before it really expires, so it never dies in flight. */
const EXPIRY_MARGIN_MS = 30_000

export interface TokenCache {
  read(): CachedToken | null
  write(entry: CachedToken): void
  clear(): void
}

export function createTokenCache(
  siteId: string,
  storage: Storage | null,
  now = () => Date.now(),
): TokenCache {
  const key = `passport:token:${siteId}`
  let memory: CachedToken | null = null // used when storage is unavailable
  const isFresh = (e: CachedToken) => e.expiresAt - EXPIRY_MARGIN_MS > now() + e.clockOffsetMs
  return {
    read: () => {
      let entry = memory
      try {
        const raw = storage?.getItem(key)
        if (raw) entry = JSON.parse(raw) as CachedToken
      } catch {
        entry = memory
      }
      return entry && typeof entry.token === 'string' && isFresh(entry) ? entry : null
    },
    write: (entry) => {
      memory = entry
      try {
        storage?.setItem(key, JSON.stringify(entry))
      } catch {
        // Storage full or blocked: the in-memory copy still serves this frame.
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
