import { describe, expect, it } from 'vitest'
import type { SessionEndEvent } from '../events/bus.ts'
import { addUser, createTestDeps } from '../test-support.ts'
import { startExpirySweeper, sweepExpiredSessions } from './expiry-sweeper.ts'
import { startSession } from './sessions.ts'

describe('session expiry sweeper', () => {
  it('ends sessions past their lifetime as expired, once, and publishes it', async () => {
    const deps = await createTestDeps()
    const alice = await addUser(deps, 'alice')
    const events: SessionEndEvent[] = []
    deps.events.subscribe((e) => events.push(e))
    const { session } = await startSession(deps, alice.id, 'ua')
    expect(await sweepExpiredSessions(deps)).toBe(0)
    deps.clock.advance(deps.config.sessionTtlSeconds * 1000)
    expect(await sweepExpiredSessions(deps)).toBe(1)
    expect(await sweepExpiredSessions(deps)).toBe(0)
    expect(events).toEqual([
      expect.objectContaining({ type: 'session_ended', sessionId: session.id, reason: 'expired' }),
    ])
    expect((await deps.store.sessions.get(session.id))?.endReason).toBe('expired')
    expect(deps.logs.map((l) => l.event)).toContain('session_expired')
  })
})

describe('session expiry sweeper, running', () => {
  it('a round that throws is logged and the next round runs (@see issue 14)', async () => {
    const deps = await createTestDeps()
    let calls = 0
    // node:sqlite throws synchronously (a closed or locked database): not even a rejected promise.
    deps.store.sessions.listExpired = () => {
      calls += 1
      if (calls === 1) throw new Error('database is locked')
      return Promise.resolve([])
    }
    const stop = startExpirySweeper(deps, 10)
    await new Promise((r) => setTimeout(r, 60))
    stop()
    expect(calls).toBeGreaterThan(1)
    expect(deps.logs).toContainEqual({
      event: 'sweeper_failed',
      fields: { error: 'Error', message: 'database is locked' },
    })
  })
})
