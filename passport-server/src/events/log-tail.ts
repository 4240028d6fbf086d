import type { AppDeps } from '../deps.ts'
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
  let running = false
  const timer = setInterval(() => {
    if (running) return
    running = true
    deps.store.events
      .after(high, 500)
      .then(async (rows) => {
        for (const row of rows) {
          high = row.id
          if (publishedHere.delete(row.id)) continue
          await publishEvents(deps, [row])
        }
      })
      .catch((err: unknown) =>
        deps.log('event_tail_failed', { cause: String((err as Error)?.message ?? err) }),
      )
      .finally(() => {
        running = false
      })
  }, intervalMs)
  timer.unref()
  return () => {
    clearInterval(timer)
    unsubscribe()
  }
}
