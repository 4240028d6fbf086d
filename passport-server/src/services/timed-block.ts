import type { Clock } from '../clock.ts'

const MAX_KEYS = 100_000

/**
 * Keys blocked for a while: `block(key)` starts (or restarts) the block, `retryAfterSeconds(key)`
 * says how long it still lasts (0 when not blocked). In memory, per process, bounded (the oldest
 * keys go first when full), like the rate windows beside it.
 */
export function createTimedBlock(clock: Clock, durationMs: number) {
  const until = new Map<string, number>()
  return {
    block(key: string): void {
      until.delete(key)
      if (until.size >= MAX_KEYS) until.delete(until.keys().next().value as string)
      until.set(key, clock.now() + durationMs)
    },
    retryAfterSeconds(key: string): number {
      const end = until.get(key)
      if (end === undefined) return 0
      const left = end - clock.now()
      if (left > 0) return Math.ceil(left / 1000)
      until.delete(key)
      return 0
    },
  }
}
