import type { Clock } from '../clock.ts'

const MAX_KEYS = 100_000

/**
 * Counts events per key in fixed windows: `take(key)` says whether one more is allowed and,
 * if so, counts it. In memory, per process, bounded (the oldest keys go first when full).
 */
export function createRateWindow(clock: Clock, limit: number, windowMs: number) {
  const windows = new Map<string, { start: number; count: number }>()
  return {
    /** Counts one event for `key`; returns the seconds to wait instead when the limit is reached. */
    take(key: string): { allowed: true } | { allowed: false; retryAfterSeconds: number } {
      const now = clock.now()
      let entry = windows.get(key)
      if (!entry || now - entry.start >= windowMs) {
        entry = { start: now, count: 0 }
        windows.delete(key)
        if (windows.size >= MAX_KEYS) windows.delete(windows.keys().next().value as string)
        windows.set(key, entry)
      }
      if (entry.count >= limit) {
        return { allowed: false, retryAfterSeconds: Math.ceil((entry.start + windowMs - now) / 1000) }
      }
      entry.count += 1
      return { allowed: true }
    },
  }
}
