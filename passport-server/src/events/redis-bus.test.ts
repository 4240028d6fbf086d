import { afterEach, describe, expect, it } from 'vitest'
import { SHARED_REDIS_URL, uniquePrefix, waitFor } from '../redis/test-redis.ts'
import { freePort, type LogLine } from '../test-support.ts'
import type { ApprovalNotice, EventBus, LiveCommand, SessionActivity, SessionEndEvent } from './bus.ts'
import { ACTIVITY_BATCH_MS, createRedisBus } from './redis-bus.ts'

const event = (id: number): SessionEndEvent => ({
  id,
  type: 'session_ended',
  userId: 'u_alice',
  sessionId: `s${id}`,
  reason: 'signed_out',
  at: 0,
})
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

const open: EventBus[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((bus) => bus.close()))
})

/** Two instances' buses on one prefix of the shared Redis (pub/sub leaves no keys behind). */
async function twoBuses() {
  const keyPrefix = uniquePrefix()
  const logs: LogLine[] = []
  const log = (e: string, fields: Record<string, unknown> = {}) => logs.push({ event: e, fields })
  const a = createRedisBus({ url: SHARED_REDIS_URL, keyPrefix, log, instanceId: 'a' })
  const b = createRedisBus({ url: SHARED_REDIS_URL, keyPrefix, log, instanceId: 'b' })
  open.push(a, b)
  await waitFor(() => a.ready() && b.ready(), 5_000, 'both buses ready')
  return { a, b, logs }
}

describe('Redis event bus', () => {
  it('a session event published on one instance is heard once on each', async () => {
    const { a, b } = await twoBuses()
    const heardA: number[] = []
    const heardB: number[] = []
    a.subscribe((e) => heardA.push(e.id))
    b.subscribe((e) => heardB.push(e.id))
    await a.publish(event(1))
    await b.publish(event(2))
    await waitFor(() => heardA.length === 2 && heardB.length === 2, 2_000, 'both events on both')
    await pause(100)
    expect(heardA).toEqual([1, 2])
    expect(heardB).toEqual([2, 1])
  })

  it("session activity reaches the other instance's consoles in one batch, each session once", async () => {
    const { a, b } = await twoBuses()
    const onA: string[] = []
    const onB: SessionActivity[] = []
    a.subscribeActivity((x) => onA.push(`${x.sessionId}:${x.type}`))
    b.subscribeActivity((x) => onB.push(x))
    a.publishActivity({ sessionId: 's1', userId: 'u_alice', type: 'token_minted' })
    a.publishActivity({ sessionId: 's1', userId: 'u_alice', type: 'token_refreshed' })
    a.publishActivity({ sessionId: 's2', userId: 'u_bob', type: 'socket' })
    // This instance's own consoles hear every one at once; the others one per session, batched.
    expect(onA).toEqual(['s1:token_minted', 's1:token_refreshed', 's2:socket'])
    expect(onB).toEqual([])
    await waitFor(() => onB.length === 2, 2_000, 'the batch on b')
    await pause(ACTIVITY_BATCH_MS * 2)
    expect(onB).toEqual([
      { sessionId: 's1', userId: 'u_alice', type: 'token_refreshed' },
      { sessionId: 's2', userId: 'u_bob', type: 'socket' },
    ])
    expect(onA).toHaveLength(3) // its own batch is not heard twice
  })

  it('approval notices and live commands reach the other instance, once', async () => {
    const { a, b } = await twoBuses()
    const notices: ApprovalNotice[] = []
    const commands: LiveCommand[] = []
    const ownCommands: LiveCommand[] = []
    b.subscribeApprovals((n) => notices.push(n))
    b.subscribeCommands((c) => commands.push(c))
    a.subscribeCommands((c) => ownCommands.push(c))
    const notice: ApprovalNotice = {
      type: 'approval_closed',
      userId: 'u_alice',
      approvalId: 'ap1',
      outcome: 'denied',
    }
    const command: LiveCommand = { type: 'refresh_now', sessionId: 's1', siteId: 'news', requestId: 'r1' }
    await a.publishApproval(notice)
    await a.publishCommand(command)
    await waitFor(() => notices.length === 1 && commands.length === 1, 2_000, 'notice and command')
    await pause(100)
    expect(notices).toEqual([notice])
    expect(commands).toEqual([command])
    expect(ownCommands).toEqual([command])
  })

  it('an event the log tail delivered first is not delivered again when its message arrives', async () => {
    const { a, b } = await twoBuses()
    const heardB: number[] = []
    const heardA: number[] = []
    b.subscribe((e) => heardB.push(e.id))
    a.subscribe((e) => heardA.push(e.id))
    // B's tail read event 7 from the log before A's message came: A's message is dropped on B.
    await b.deliverFromLog(event(7))
    await a.publish(event(7))
    // A's own tail reading its own event later changes nothing either.
    await a.deliverFromLog(event(7))
    // B's own tail delivering an event B published changes nothing here, and A, which has it, drops it.
    await b.publish(event(8))
    await b.deliverFromLog(event(8))
    await pause(200)
    expect(heardB).toEqual([7, 8])
    expect(heardA).toEqual([7, 8])
  })

  it('wakes its log readers each time it is subscribed (first connection included)', async () => {
    const keyPrefix = uniquePrefix()
    const bus = createRedisBus({ url: SHARED_REDIS_URL, keyPrefix, log: () => {} })
    open.push(bus)
    let wakes = 0
    bus.onReconnect(() => {
      wakes += 1
    })
    await waitFor(() => wakes >= 1, 5_000, 'first wake')
    expect(bus.ready()).toBe(true)
  })

  it('without Redis: publishing still delivers here, never throws, and ready() is false', async () => {
    const port = await freePort() // nobody listens there
    const logs: LogLine[] = []
    const bus = createRedisBus({
      url: `redis://127.0.0.1:${port}`,
      keyPrefix: uniquePrefix(),
      log: (e, fields = {}) => logs.push({ event: e, fields }),
    })
    open.push(bus)
    const heard: number[] = []
    bus.subscribe((e) => heard.push(e.id))
    await pause(200)
    const started = Date.now()
    await expect(bus.publish(event(1))).resolves.toBeUndefined()
    await expect(
      bus.publishCommand({ type: 'refresh_now', sessionId: 's', siteId: 'news', requestId: 'r' }),
    ).resolves.toBeUndefined()
    expect(Date.now() - started).toBeLessThan(50)
    expect(heard).toEqual([1])
    expect(bus.ready()).toBe(false)
    // The outage is logged once per connection, not once per retry or per publish.
    const outages = logs.filter((l) => l.event === 'redis_unavailable')
    expect(outages.length).toBeGreaterThan(0)
    expect(outages.length).toBeLessThanOrEqual(2)
  })
})
