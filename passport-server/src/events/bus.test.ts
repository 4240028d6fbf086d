import { describe, expect, it } from 'vitest'
import type { LogLine } from '../test-support.ts'
import { type ApprovalNotice, createInProcessBus, type SessionEndEvent } from './bus.ts'

const event: SessionEndEvent = {
  id: 1,
  type: 'session_ended',
  userId: 'u_alice',
  sessionId: 's1',
  reason: 'signed_out',
  at: 0,
}

describe('in-process event bus', () => {
  it('a subscriber that throws is logged and the others still hear the event (@see issue 14)', async () => {
    const logs: LogLine[] = []
    const bus = createInProcessBus((e, fields = {}) => logs.push({ event: e, fields }))
    const heard: string[] = []
    bus.subscribe(() => heard.push('first'))
    bus.subscribe(() => {
      throw new TypeError('boom')
    })
    bus.subscribe(() => heard.push('third'))
    await expect(bus.publish(event)).resolves.toBeUndefined()
    expect(heard).toEqual(['first', 'third'])
    expect(logs).toEqual([
      {
        event: 'server_error',
        fields: { listener: 'bus_session_events', error: 'TypeError', message: 'boom' },
      },
    ])
  })

  it('a subscriber whose promise rejects is logged, not left unhandled', async () => {
    const logs: LogLine[] = []
    const bus = createInProcessBus((e, fields = {}) => logs.push({ event: e, fields }))
    const heard: string[] = []
    const asyncListener = async () => {
      throw new Error('later')
    }
    bus.subscribeApprovals(asyncListener as unknown as (n: ApprovalNotice) => void)
    bus.subscribeApprovals((n) => heard.push(n.type))
    await bus.publishApproval({ type: 'approval_closed', userId: null, approvalId: 'a1', outcome: 'expired' })
    await new Promise((r) => setTimeout(r, 0))
    expect(heard).toEqual(['approval_closed'])
    expect(logs.map((l) => [l.event, l.fields.listener])).toEqual([['server_error', 'bus_approvals']])
  })
})
