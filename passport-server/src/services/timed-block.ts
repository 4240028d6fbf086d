import type { CounterStore } from './counters.ts'

/**
 * Keys blocked for a while: `block(key)` starts (or restarts) the block, `retryAfterSeconds(key)`
 * says how long it still lasts (0 when not blocked). Kept in the deployment's counters
 * (`counters.ts`): a block set on one instance holds on all of them when they share Redis.
 */
export function createTimedBlock(counters: CounterStore, name: string, durationMs: number) {
  const keyOf = (key: string) => `${name}:${key}`
  return {
    async block(key: string): Promise<void> {
      await counters.block(keyOf(key), durationMs)
    },
    async retryAfterSeconds(key: string): Promise<number> {
      return Math.ceil((await counters.blockedForMs(keyOf(key))) / 1000)
    },
  }
}
