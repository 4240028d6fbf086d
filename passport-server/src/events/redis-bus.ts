import { randomBytes } from 'node:crypto'
import { errorFields, type Logger } from '../errors.ts'
import { logSafely } from '../guard.ts'
import { closeRedis, openRedis } from '../redis/client.ts'
import {
  type ApprovalNotice,
  createInProcessBus,
  type LiveCommand,
  type LogFollowingBus,
  type SessionActivity,
  type SessionEndEvent,
} from './bus.ts'

/** Session event ids remembered as delivered (far more than can be in flight at once). */
const REMEMBERED_IDS = 100_000

/**
 * Session activity goes to the other instances in one message per this many ms at most: a
 * refresh then costs a set insertion, not a Redis message, and a console still sees a change
 * well within a second.
 */
export const ACTIVITY_BATCH_MS = 100
/** Sessions per activity message at most (a burst beyond it waits for the next batch). */
const ACTIVITY_BATCH_MAX = 1_000

/** One message on the bus channel: who sent it (so nobody hears its own twice), what, and the value. */
type Wire =
  | { from: string; kind: 'session'; value: SessionEndEvent }
  | { from: string; kind: 'approval'; value: ApprovalNotice }
  | { from: string; kind: 'command'; value: LiveCommand }
  | { from: string; kind: 'activity'; value: SessionActivity[] }
  /** "I could not send for a while: read the log" (an instance whose publisher is back). */
  | { from: string; kind: 'wake' }

/** A set of the last `max` ids added: `add` says whether the id is new. */
function recentIds(max: number) {
  const ids = new Set<number>()
  return {
    add(id: number): boolean {
      if (ids.has(id)) return false
      ids.add(id)
      if (ids.size > max) ids.delete(ids.values().next().value as number)
      return true
    },
  }
}

/**
 * The event bus over Redis pub/sub, for several instances behind a load balancer: every value
 * published on one instance is heard by the listeners of every instance.
 *
 * - Publishing delivers to this instance's listeners at once, then sends one message on the
 *   channel `<prefix>bus`, tagged with this instance's id so it ignores its own message when it
 *   comes back. The send is not awaited and cannot fail the publisher: the change it reports is
 *   already committed, and while Redis is away it is simply not sent.
 * - Session events are durable in the store's event log; Redis only makes them fast. The log
 *   tail (`log-tail.ts`) reads the log by id on every instance and hands this bus what it finds
 *   (`deliverFromLog`); each event id is delivered here at most once, whichever way comes
 *   first. After an outage the bus resubscribes and only then wakes the tail, so an event is
 *   either in what the tail reads or arrives on the channel; and an instance whose publisher
 *   is back tells all the others to read the log too (what it published meanwhile was never
 *   sent). None missed, none twice.
 * - Approval notices and live commands are not durable (as in one process): one sent while
 *   Redis is away reaches this instance's sockets only. A device that connects later is sent
 *   its pending approvals on connect; a refresh command not heard is a refresh on schedule.
 * - `ready()` is false while either connection is down (`/readyz` reports it).
 */
export function createRedisBus(input: {
  url: string
  keyPrefix: string
  log: Logger
  /** This instance's id on the channel; random by default. */
  instanceId?: string
}): LogFollowingBus {
  const { log } = input
  const instanceId = input.instanceId ?? randomBytes(9).toString('base64url')
  const channel = `${input.keyPrefix}bus`
  const local = createInProcessBus(log)
  const delivered = recentIds(REMEMBERED_IDS)
  const publisher = openRedis(input.url, log, 'bus_publish')
  const subscriber = openRedis(input.url, log, 'bus_subscribe', { subscriber: true })
  const reconnectListeners = new Set<() => void>()
  let subscribed = false
  let closed = false

  const deliverSession = async (event: SessionEndEvent) => {
    if (delivered.add(event.id)) await local.publish(event)
  }

  // Subscribed by hand on every (re)connection, not by the client's automatic resubscription:
  // the tail must read the log only once the channel is heard again, or an event published in
  // between would be in neither.
  subscriber.on('ready', () => {
    subscriber
      .subscribe(channel)
      .then(() => {
        subscribed = true
        wake()
      })
      .catch((err: unknown) => {
        logSafely(log, 'redis_subscribe_failed', errorFields(err))
        // The connection is useless without its subscription: drop it, the client reconnects.
        if (!closed) subscriber.disconnect(true)
      })
  })
  subscriber.on('close', () => {
    subscribed = false
  })
  subscriber.on('message', (from: string, text: string) => {
    if (from !== channel) return
    let wire: Wire
    try {
      wire = JSON.parse(text) as Wire
    } catch {
      logSafely(log, 'bus_message_unreadable', { bytes: text.length })
      return
    }
    if (wire.from === instanceId) return
    if (wire.kind === 'session') void deliverSession(wire.value)
    else if (wire.kind === 'approval') void local.publishApproval(wire.value)
    else if (wire.kind === 'command') void local.publishCommand(wire.value)
    else if (wire.kind === 'activity' && Array.isArray(wire.value))
      for (const activity of wire.value) local.publishActivity(activity)
    else if (wire.kind === 'wake') wake()
  })
  const wake = () => {
    for (const listener of [...reconnectListeners]) listener()
  }

  // Events this instance published while its publisher was away were never sent: once it is
  // back, every instance is told to read the log (one listening since before reads it now; one
  // not yet listening reads it when its own subscription is back).
  publisher.on('ready', () => send({ from: instanceId, kind: 'wake' }))

  const send = (wire: Wire) => {
    if (publisher.status !== 'ready') return
    publisher.publish(channel, JSON.stringify(wire)).catch((err: unknown) => {
      logSafely(log, 'bus_send_failed', { kind: wire.kind, ...errorFields(err) })
    })
  }

  // Activity of the last batch window, one entry per session (the console reads the row anew).
  const pendingActivity = new Map<string, SessionActivity>()
  let activityTimer: NodeJS.Timeout | null = null
  const flushActivity = () => {
    activityTimer = null
    const batch = [...pendingActivity.values()].slice(0, ACTIVITY_BATCH_MAX)
    for (const a of batch) pendingActivity.delete(a.sessionId)
    if (batch.length > 0) send({ from: instanceId, kind: 'activity', value: batch })
    if (pendingActivity.size > 0 && !closed) activityTimer = setTimeout(flushActivity, ACTIVITY_BATCH_MS)
  }

  return {
    async publish(event) {
      // Sent even when this instance's tail delivered it here first (the tail delivers locally
      // only); the other instances drop it if their own tail was quicker.
      await deliverSession(event)
      send({ from: instanceId, kind: 'session', value: event })
    },
    subscribe: local.subscribe,
    async publishApproval(notice) {
      await local.publishApproval(notice)
      send({ from: instanceId, kind: 'approval', value: notice })
    },
    subscribeApprovals: local.subscribeApprovals,
    async publishCommand(command) {
      await local.publishCommand(command)
      send({ from: instanceId, kind: 'command', value: command })
    },
    subscribeCommands: local.subscribeCommands,
    publishActivity(activity) {
      local.publishActivity(activity)
      if (publisher.status !== 'ready') return // not durable: nothing to catch up
      pendingActivity.set(activity.sessionId, activity)
      activityTimer ??= setTimeout(flushActivity, ACTIVITY_BATCH_MS)
    },
    subscribeActivity: local.subscribeActivity,
    deliverFromLog: deliverSession,
    onReconnect(listener) {
      reconnectListeners.add(listener)
      return () => {
        reconnectListeners.delete(listener)
      }
    },
    ready: () => subscribed && publisher.status === 'ready',
    async close() {
      closed = true
      if (activityTimer) clearTimeout(activityTimer)
      reconnectListeners.clear()
      await Promise.all([closeRedis(publisher), closeRedis(subscriber)])
    },
  }
}
