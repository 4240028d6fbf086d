import type { AppDeps } from '../deps.ts'
import { isLogFollowingBus, type SessionEndEvent } from '../events/bus.ts'
import { repeatEvery, runGuarded } from '../guard.ts'
import { sessionEndEvent } from './session-events.ts'

const BATCH = 500

/**
 * Publishes events that another process wrote to the shared event log (the CLI revoking a
 * session, another instance on the same store), so this instance's live connections hear of
 * them too. Events this process published itself are skipped: each is published once here.
 * (Server-side only; browsers are pushed to, never polled.)
 *
 * With a bus spanning instances (Redis) this is what makes its delivery complete: an event
 * whose Redis message was lost (Redis down or restarted, the connection cut mid-stream) is read
 * here by id and handed to the bus for this instance only, which drops any id it already
 * delivered (exactly once); and the bus wakes the tail as soon as it is back.
 */
export async function startEventLogTail(
  deps: Pick<AppDeps, 'store' | 'events' | 'log'>,
  intervalMs = 250,
): Promise<() => void> {
  let high = await deps.store.events.latestId()
  const publishedHere = new Set<number>()
  const unsubscribe = deps.events.subscribe((e) => {
    if (e.id > high) publishedHere.add(e.id)
  })
  const bus = deps.events
  const deliver = (event: SessionEndEvent) =>
    isLogFollowingBus(bus) ? bus.deliverFromLog(event) : bus.publish(event)
  const readLog = async () => {
    for (;;) {
      const rows = await deps.store.events.after(high, BATCH)
      for (const row of rows) {
        high = row.id
        if (publishedHere.delete(row.id)) continue
        await deliver(sessionEndEvent(row))
      }
      if (rows.length < BATCH) return
    }
  }
  // One read at a time; a wake during a read runs one more right after it (the read in flight
  // may have started before what the wake is about).
  let running: Promise<void> | null = null
  let again = false
  const poll = (): Promise<void> => {
    if (running) {
      again = true
      return running
    }
    running = runGuarded(deps.log, 'event_tail', readLog).finally(() => {
      running = null
      if (again) {
        again = false
        void poll()
      }
    })
    return running
  }
  const stop = repeatEvery(deps.log, 'event_tail', intervalMs, poll)
  const stopWake = isLogFollowingBus(bus) ? bus.onReconnect(() => void poll()) : () => {}
  return () => {
    stop()
    stopWake()
    unsubscribe()
  }
}
