import { describe, expect, it } from 'vitest'
import { isPassingFailure, retryDelayMs } from './retry.ts'

describe('retryDelayMs', () => {
  const range = { startMs: 1_000, maxMs: 30_000 }

  it('doubles per attempt up to the cap, of which a random half', () => {
    expect([0, 1, 2, 3, 4, 5, 50].map((a) => retryDelayMs(a, range, () => 0))).toEqual([
      500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000,
    ])
    expect([0, 1, 2, 3, 4, 5, 50].map((a) => retryDelayMs(a, range, () => 1))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000,
    ])
  })

  it('spreads clients that failed together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => retryDelayMs(3, range)))
    expect(delays.size).toBeGreaterThan(10)
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(4_000)
  })
})

describe('isPassingFailure', () => {
  it('an outage is passing; a verdict on the sign-in is not', () => {
    for (const code of ['timeout', 'temporarily_unavailable', 'rate_limited', 'server_error'] as const)
      expect(isPassingFailure(code)).toBe(true)
    for (const code of ['login_required', 'invalid_grant', 'invalid_token', 'invalid_authkey'] as const)
      expect(isPassingFailure(code)).toBe(false)
  })
})
