import { describe, expect, it } from 'vitest'
import { fixedClock } from '../clock.ts'
import { T0 } from '../test-support.ts'
import { createLoginThrottle } from './login-throttle.ts'

describe('login throttle (G1, G2)', () => {
  it('locks an account after 5 failures for 1 minute, doubling to at most 15, and never for good', async () => {
    const clock = fixedClock(T0)
    const t = createLoginThrottle(clock)
    for (let i = 0; i < 4; i++) expect(await t.failed('alice', `10.0.0.${i}`)).toBe(false)
    expect(await t.check('alice', '10.0.1.1')).toEqual({ allowed: true })
    expect(await t.failed('alice', '10.0.0.9')).toBe(true)
    expect(await t.check('ALICE ', '10.0.1.1')).toEqual({
      allowed: false,
      scope: 'account',
      retryAfterSeconds: 60,
    })
    // Failures during the lock do not lengthen it.
    expect(await t.failed('alice', '10.0.0.9')).toBe(false)
    clock.advance(60_000)
    expect((await t.check('alice', '10.0.1.1')).allowed).toBe(true)
    const locks: number[] = []
    for (let i = 0; i < 6; i++) {
      await t.failed('alice', '10.0.0.1')
      const gate = await t.check('alice', '10.0.0.1')
      locks.push(gate.allowed ? 0 : gate.retryAfterSeconds)
      clock.advance(16 * 60_000)
    }
    expect(locks).toEqual([120, 240, 480, 900, 900, 900])
  })

  it('a success clears the account counter', async () => {
    const t = createLoginThrottle(fixedClock(T0))
    for (let i = 0; i < 4; i++) await t.failed('alice', '10.0.0.1')
    await t.succeeded('alice')
    for (let i = 0; i < 4; i++) expect(await t.failed('alice', '10.0.0.1')).toBe(false)
    expect((await t.check('alice', '10.0.0.1')).allowed).toBe(true)
  })

  it('throttles an address after 30 failures across accounts within 10 minutes', async () => {
    const clock = fixedClock(T0)
    const t = createLoginThrottle(clock)
    for (let i = 0; i < 30; i++) await t.failed(`user${i}`, '10.0.0.1')
    expect(await t.check('someone-else', '10.0.0.1')).toMatchObject({ allowed: false, scope: 'address' })
    expect(await t.check('someone-else', '10.0.0.2')).toEqual({ allowed: true })
    clock.advance(10 * 60_000)
    expect(await t.check('someone-else', '10.0.0.1')).toEqual({ allowed: true })
  })
})
