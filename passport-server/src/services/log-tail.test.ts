import { describe, expect, it } from 'vitest'
import type { SessionEndEvent } from '../events/bus.ts'
import { addUser, createTestDeps } from '../test-support.ts'
import { startEventLogTail } from './log-tail.ts'
import { publishEvents } from './session-events.ts'

describe('event log tail', () => {
  it('J3: publishes events another process logged, once, and not the ones published here', async () => {
    const deps = await createTestDeps()
    await addUser(deps, 'alice')
    const seen: SessionEndEvent[] = []
    deps.events.subscribe((e) => seen.push(e))
    const stop = await startEventLogTail(deps, 10)
    const base = { userId: 'u_alice', siteId: null, reason: 'revoked' as const, at: deps.clock.now() }
    // Written by "another process": in the log, never published on this bus.
    const foreign = await deps.store.events.append({ ...base, type: 'session_ended', sessionId: 's-cli' })
    // Written and published here.
    const local = await deps.store.events.append({ ...base, type: 'session_ended', sessionId: 's-here' })
    await publishEvents(deps, [local])
    await new Promise((r) => setTimeout(r, 100))
    stop()
    expect(seen.map((e) => e.id)).toEqual([local.id, foreign.id])
  })
})

describe('event log tail, running', () => {
  it('a round that throws is logged and the next round runs (@see issue 14)', async () => {
    const deps = await createTestDeps()
    let calls = 0
    const after = deps.store.events.after.bind(deps.store.events)
    deps.store.events.after = (id, limit) => {
      calls += 1
      if (calls === 1) throw new Error('database is not open')
      return after(id, limit)
    }
    const stop = await startEventLogTail(deps, 10)
    await new Promise((r) => setTimeout(r, 60))
    stop()
    expect(calls).toBeGreaterThan(1)
    expect(deps.logs).toContainEqual({
      event: 'event_tail_failed',
      fields: { error: 'Error', message: 'database is not open' },
    })
  })
})
