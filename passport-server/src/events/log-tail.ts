import type { AppDeps } from '../deps.ts'
import { repeatEvery } from '../guard.ts'
import { publishEvents } from './record.ts'

/**
 * Publishes events that another process wrote to the shared event log (the CLI revoking a
 * session, another instance on the same store), so this instance's live connections hear of
 * them too. Events this process published itself are skipped: each is published once here.
 * (Server-side only; browsers are pushed to, never polled.)
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
  const stop = repeatEvery(deps.log, 'event_tail', intervalMs, async () => {
    for (const row of await deps.store.events.after(high, 500)) {
      high = row.id
      if (publishedHere.delete(row.id)) continue
      await publishEvents(deps, [row])
    }
  })
  return () => {
    stop()
    unsubscribe()
  }
}
