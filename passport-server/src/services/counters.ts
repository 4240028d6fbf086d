import type { Clock } from '../clock.ts'

/** A fixed window's count so far and the time until it closes. */
export interface WindowCount {
  count: number
  resetInMs: number
}

export type ClaimResult = 'claimed' | 'replayed' | 'full'

/**
 * Where the limits that must hold across instances keep their state: counters in fixed windows,
 * timed blocks, and one-time claims (the DPoP `jti` replay cache). One instance: in memory
 * (`createMemoryCounters`); several: Redis (`redis-counters.ts`), shared by all of them. The
 * policies (login throttle, approval limits, per-key and per-site windows) are written once on
 * top of these, whichever store is behind.
 */
export interface CounterStore {
  /** Counts one event for `key` in its window (opened by its first count, `windowMs` long). */
  increment(key: string, windowMs: number): Promise<WindowCount>
  /** The open window's count, counting nothing; null when none is open. */
  peek(key: string): Promise<WindowCount | null>
  /** Blocks `key` for `durationMs` from now (replacing any block it had). */
  block(key: string, durationMs: number): Promise<void>
  /** How long `key` stays blocked; 0 when it is not. */
  blockedForMs(key: string): Promise<number>
  /** Forgets `key`'s window and block. */
  clear(key: string): Promise<void>
  /**
   * Claims `key` for `ttlMs`: `claimed` the first time, `replayed` while a claim holds, `full`
   * when the store cannot remember one more (the caller refuses: a forgotten claim is a replay
   * let through).
   */
  claimOnce(key: string, ttlMs: number): Promise<ClaimResult>
  /**
   * `claimOnce(claimKey)`, then, only if claimed, `increment(windowKey)`: a request's proof is
   * spent and counted against its key's limit together (with Redis, one round trip; a replay
   * counts nothing, so replaying a captured proof cannot use up its owner's limit).
   */
  claimThenIncrement(
    claimKey: string,
    ttlMs: number,
    windowKey: string,
    windowMs: number,
  ): Promise<{ claim: ClaimResult; window: WindowCount | null }>
}

const MAX_KEYS = 100_000
const MAX_CLAIMS = 200_000

/** Bounded: when a map is full its oldest key goes first (never for claims: see `claimOnce`). */
function remember<V>(map: Map<string, V>, key: string, value: V) {
  map.delete(key)
  if (map.size >= MAX_KEYS) map.delete(map.keys().next().value as string)
  map.set(key, value)
}

/** In memory, per process, on the app's clock (tests move it). */
export function createMemoryCounters(clock: Clock, maxClaims = MAX_CLAIMS): CounterStore {
  const windows = new Map<string, { until: number; count: number }>()
  const blocks = new Map<string, number>()
  /** key -> when it may be forgotten; insertion order is expiry order (one TTL per caller). */
  const claims = new Map<string, number>()

  const open = (key: string, now: number) => {
    const entry = windows.get(key)
    if (entry && entry.until > now) return entry
    if (entry) windows.delete(key)
    return null
  }
  const store: CounterStore = {
    async increment(key, windowMs) {
      const now = clock.now()
      let entry = open(key, now)
      if (!entry) {
        entry = { until: now + windowMs, count: 0 }
        remember(windows, key, entry)
      }
      entry.count += 1
      return { count: entry.count, resetInMs: entry.until - now }
    },
    async peek(key) {
      const now = clock.now()
      const entry = open(key, now)
      return entry ? { count: entry.count, resetInMs: entry.until - now } : null
    },
    async block(key, durationMs) {
      remember(blocks, key, clock.now() + durationMs)
    },
    async blockedForMs(key) {
      const until = blocks.get(key)
      if (until === undefined) return 0
      const left = until - clock.now()
      if (left > 0) return left
      blocks.delete(key)
      return 0
    },
    async clear(key) {
      windows.delete(key)
      blocks.delete(key)
    },
    async claimOnce(key, ttlMs) {
      const now = clock.now()
      for (const [claimed, until] of claims) {
        if (until > now) break
        claims.delete(claimed)
      }
      if (claims.has(key)) return 'replayed'
      if (claims.size >= maxClaims) return 'full'
      claims.set(key, now + ttlMs)
      return 'claimed'
    },
    async claimThenIncrement(claimKey, ttlMs, windowKey, windowMs) {
      const claim = await store.claimOnce(claimKey, ttlMs)
      return { claim, window: claim === 'claimed' ? await store.increment(windowKey, windowMs) : null }
    },
  }
  return store
}

/** The counters of `deps`: shared ones when the deployment has them, else this process's own. */
export function countersOf(deps: { clock: Clock; counters?: CounterStore }): CounterStore {
  return deps.counters ?? createMemoryCounters(deps.clock)
}
