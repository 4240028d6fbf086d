import type { Clock } from '../clock.ts'
import type { ClaimResult, CounterStore, WindowCount } from './counters.ts'

const MAX_KEYS = 100_000

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number }

/**
 * The one fixed-window counter behind every rate limit (sign-in failures per address, device
 * approval requests, live connects and messages, introspection failures): at most `limit`
 * events per key per `windowMs`. In memory, per process, bounded (the oldest keys go first when
 * full): with several instances each counts alone, and the limits per instance still hold.
 *
 * Used as it is only for limits that are about this process: live-channel upgrades per address
 * (they guard this process's file descriptors) and messages per socket (a socket lives on one
 * instance). Limits that must hold across instances use `createSharedRateWindow` below.
 */
export function createRateWindow(clock: Clock, limit: number, windowMs: number) {
  const windows = new Map<string, { start: number; count: number }>()

  const current = (key: string, now: number) => {
    const entry = windows.get(key)
    return entry && now - entry.start < windowMs ? entry : null
  }
  const refusal = (entry: { start: number }, now: number): RateDecision => ({
    allowed: false,
    retryAfterSeconds: Math.max(1, Math.ceil((entry.start + windowMs - now) / 1000)),
  })

  /** Counts one event for `key` (even past the limit). */
  const count = (key: string, now: number) => {
    let entry = current(key, now)
    if (!entry) {
      entry = { start: now, count: 0 }
      windows.delete(key)
      if (windows.size >= MAX_KEYS) windows.delete(windows.keys().next().value as string)
      windows.set(key, entry)
    }
    entry.count += 1
    return entry
  }

  return {
    /** Counts one event for `key` if the limit allows it; otherwise the seconds to wait. */
    take(key: string): RateDecision {
      const now = clock.now()
      const entry = current(key, now)
      if (entry && entry.count >= limit) return refusal(entry, now)
      count(key, now)
      return { allowed: true }
    },
    /** Whether `key` is still under its limit, counting nothing (for limits on failures). */
    check(key: string): RateDecision {
      const now = clock.now()
      const entry = current(key, now)
      return entry && entry.count >= limit ? refusal(entry, now) : { allowed: true }
    },
    /** Counts one event for `key` whatever the limit (a failure that already happened). */
    hit(key: string): void {
      count(key, clock.now())
    },
  }
}

export type RateWindow = ReturnType<typeof createRateWindow>

/**
 * A fixed window of at most `limit` events per key per `windowMs`, kept in the deployment's
 * counters (`counters.ts`): shared by every instance when they share Redis, so N instances do
 * not make N times the limit. `name` keeps each limit's keys apart.
 */
export function createSharedRateWindow(
  counters: CounterStore,
  name: string,
  limit: number,
  windowMs: number,
) {
  const refusal = (w: WindowCount): RateDecision => ({
    allowed: false,
    retryAfterSeconds: Math.max(1, Math.ceil(w.resetInMs / 1000)),
  })
  const keyOf = (key: string) => `${name}:${key}`
  return {
    /** Counts one event for `key`; refused past the limit (with the seconds to wait). */
    async take(key: string): Promise<RateDecision> {
      const w = await counters.increment(keyOf(key), windowMs)
      return w.count > limit ? refusal(w) : { allowed: true }
    },
    /**
     * Claims `claimKey` once (a DPoP proof's `jti`) and, only if that is its first use, counts one
     * event for `key`: the decision is null when the claim was refused (nothing counted).
     */
    async takeAfterClaim(
      claimKey: string,
      ttlMs: number,
      key: string,
    ): Promise<{ claim: ClaimResult; decision: RateDecision | null }> {
      const { claim, window } = await counters.claimThenIncrement(claimKey, ttlMs, keyOf(key), windowMs)
      if (window === null) return { claim, decision: null }
      return { claim, decision: window.count > limit ? refusal(window) : { allowed: true } }
    },
    /** Whether `key` is still under its limit, counting nothing (for limits on failures). */
    async check(key: string): Promise<RateDecision> {
      const w = await counters.peek(keyOf(key))
      return w && w.count >= limit ? refusal(w) : { allowed: true }
    },
    /** Counts one event for `key` whatever the limit (a failure that already happened). */
    async hit(key: string): Promise<void> {
      await counters.increment(keyOf(key), windowMs)
    },
  }
}

export type SharedRateWindow = ReturnType<typeof createSharedRateWindow>
