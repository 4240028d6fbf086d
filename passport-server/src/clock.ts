/** Milliseconds since the epoch. Injected everywhere so tests can move time. */
export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

export interface FixedClock extends Clock {
  set(ms: number): void
  advance(ms: number): void
}

export function fixedClock(startMs: number): FixedClock {
  let current = startMs
  return {
    now: () => current,
    set: (ms) => {
      current = ms
    },
    advance: (ms) => {
      current += ms
    },
  }
}
