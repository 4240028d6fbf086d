import type { ErrorCode } from './codes.ts'

/**
 * Failures that say nothing about the sign-in: the passport was unreachable, too slow, busy or
 * broken for a moment. The SDK and the frame keep a sign-in through them and try again later;
 * anything else (`login_required`, `invalid_grant` with its reason, …) is the passport's verdict.
 */
const PASSING_FAILURES: ReadonlySet<ErrorCode> = new Set([
  'timeout',
  'temporarily_unavailable',
  'rate_limited',
  'server_error',
])

export function isPassingFailure(code: ErrorCode): boolean {
  return PASSING_FAILURES.has(code)
}

/**
 * The wait before retry number `attempt` (0 for the first): doubling from `startMs` up to
 * `maxMs`, of which a random half ("equal jitter"), so the tabs of every user do not come back
 * in one wave when a passport restarts, and no retry comes sooner than half the step.
 *
 * @example
 * retryDelayMs(0, { startMs: 1_000, maxMs: 30_000 }) // 500 … 1000
 * retryDelayMs(9, { startMs: 1_000, maxMs: 30_000 }) // 15000 … 30000
 */
export function retryDelayMs(
  attempt: number,
  range: { startMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const step = Math.min(range.maxMs, range.startMs * 2 ** Math.min(attempt, 30))
  return Math.round(step / 2 + random() * (step / 2))
}
