import { describe, expect, it } from 'vitest'
import type { SessionEndEvent } from '../events/bus.ts'
import { addUser, createTestDeps } from '../test-support.ts'
import { sweepExpiredSessions } from './expiry-sweeper.ts'
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
