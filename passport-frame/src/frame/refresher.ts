import type { EndReason } from '../protocol/codes.ts'
import { retryDelayMs } from '../protocol/retry.ts'
import { FrameApiError, type ServerApi } from './server-api.ts'
import { type CachedToken, type TokenCache, toCacheEntry } from './token-cache.ts'

/** The slice of the Web Locks API the refresher uses (absent in old browsers and in tests). */
export interface LockManagerLike {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>
}

export interface RefresherDeps {
  siteId: string
  api: Pick<ServerApi, 'refresh'>
  cache: TokenCache
  authkey: () => string | null
  /** Web Locks of this frame's partition: one refresh per site across its tabs. */
  locks: LockManagerLike | null
  now?: () => number
  setTimer?: (fn: () => void, ms: number) => unknown
  clearTimer?: (handle: unknown) => void
  /** The refresh credential is dead: the device is signed out of this site, for this reason. */
  onSignedOut: (reason: EndReason) => void
  log?: (event: string, detail?: Record<string, unknown>) => void
}

/**
 * A forced refresh (`passport.refresh()`) rotates at most once per this long per site, across
 * the site's tabs (judged on the cached entry, which they share): a page calling it in a loop
 * gets the current token back instead of hammering the passport (attack A10).
 */
export const FORCED_REFRESH_INTERVAL_MS = 30_000

/**
 * After a failed attempt (network, server down): wait 5 s, 10 s, 20 s … at most a minute, each
 * jittered, so the frames of every user do not all refresh in the same second after an outage.
 */
const BACKOFF = { startMs: 5_000, maxMs: 60_000 }

/**
 * Keeps the site's token alive: refreshes at the server-given `refreshAt` (judged on the
 * server's clock through the stored offset, so a wrong local clock never causes a refresh
 * loop), in one tab per site at a time. Every tab of the site schedules the same moment; the
 * first to take the site's Web Lock refreshes and writes the shared cache, the others find
 * the new entry when they get the lock and do nothing. A failed attempt backs off; a refusal
 * (the credential is dead) signs the device out of the site and stops.
 */
export function createRefresher(deps: RefresherDeps) {
  const now = deps.now ?? (() => Date.now())
  const setTimer = deps.setTimer ?? ((fn, ms) => setTimeout(fn, ms))
  const clearTimer = deps.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>))
  const log = deps.log ?? (() => {})
  const lockName = `passport-refresh:${deps.siteId}`
  let timer: unknown = null
  let failures = 0
  let inFlight: Promise<CachedToken> | null = null

  const serverNow = (entry: CachedToken) => now() + entry.clockOffsetMs
  const withLock = <T>(fn: () => Promise<T>): Promise<T> =>
    deps.locks ? deps.locks.request(lockName, fn) : fn()

  const schedule = (delayMs?: number) => {
    if (timer !== null) clearTimer(timer)
    timer = null
    const entry = deps.cache.readRenewable()
    if (!entry?.refreshToken || entry.refreshAt === undefined) return
    const wait = delayMs ?? Math.max(0, entry.refreshAt - serverNow(entry))
    timer = setTimer(() => {
      timer = null
      refresh(false).catch(() => {})
    }, wait)
  }

  /**
   * Refreshes unless, when not forced, it is not time yet (another tab may just have done it:
   * the cache is read again once the lock is ours). Reads the credential inside the lock, so
   * two forced refreshes rotate one after the other, never the same credential twice.
   * Resolves with the entry to use; rejects with the FrameApiError that ended it.
   */
  const refresh = (force: boolean): Promise<CachedToken> => {
    inFlight ??= withLock(async () => {
      const before = deps.cache.readRenewable()
      const authkey = deps.authkey()
      if (!before?.refreshToken || !authkey) throw new FrameApiError('login_required')
      // Another tab refreshed while we waited for the lock, or it is simply not time yet.
      if (!force && deps.cache.read() !== null && (before.refreshAt ?? 0) > serverNow(before)) return before
      // Forced, but the site's token was obtained moments ago: that one answers.
      const recent = serverNow(before) - (before.obtainedAt ?? 0) < FORCED_REFRESH_INTERVAL_MS
      if (force && recent && deps.cache.read() !== null) {
        log('refresh_held', {})
        return before
      }
      try {
        const answer = await deps.api.refresh(authkey, before.refreshToken)
        const entry = toCacheEntry(answer, now())
        deps.cache.write(entry)
        failures = 0
        return entry
      } catch (err) {
        // Refused (the credential is dead), or this frame's key no longer opens it: signed out.
        if (
          err instanceof FrameApiError &&
          (err.code === 'invalid_grant' || err.code === 'invalid_dpop_proof')
        ) {
          deps.cache.clear()
          log('refresh_refused', { reason: err.reason ?? 'unknown' })
          deps.onSignedOut(err.reason ?? 'unknown')
          throw err
        }
        failures += 1
        log('refresh_failed', { failures })
        throw err
      }
    }).finally(() => {
      inFlight = null
    })
    const current = inFlight
    current.then(
      () => schedule(),
      (err: unknown) => {
        if (
          !(
            err instanceof FrameApiError &&
            (err.code === 'invalid_grant' ||
              err.code === 'invalid_dpop_proof' ||
              err.code === 'login_required')
          )
        ) {
          schedule(retryDelayMs(failures - 1, BACKOFF))
        }
      },
    )
    return current
  }
  return {
    schedule: () => schedule(),
    /** Refresh now if it is time (or `force`): the manual trigger and the expired-token path. */
    refresh: (force = false) => refresh(force),
    stop: () => {
      if (timer !== null) clearTimer(timer)
      timer = null
    },
  }
}

export type Refresher = ReturnType<typeof createRefresher>
