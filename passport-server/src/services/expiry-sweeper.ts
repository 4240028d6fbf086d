import type { AppDeps } from '../deps.ts'
import { expireDueApprovals } from './device-approval.ts'
import { endSession } from './sessions.ts'

/**
 * Ends sessions that reached their absolute lifetime or sat idle past the idle timeout, so that
 * "timed out" is an event like any other (logged, pushed to open tabs) rather than something
 * each request discovers alone. Returns how many it ended.
 */
export async function sweepExpiredSessions(
  deps: Pick<AppDeps, 'store' | 'clock' | 'events' | 'log' | 'config'>,
  limit = 500,
): Promise<number> {
  const now = deps.clock.now()
  const expired = await deps.store.sessions.listExpired(
    now,
    limit,
    now - deps.config.sessionIdleSeconds * 1000,
  )
  for (const session of expired) await endSession(deps, session, 'expired')
  return expired.length
}

/**
 * Every `intervalMs` ends expired sessions and sign-in requests from other devices; every
 * `purgeEvery`-th round also purges dead rows.
 */
export function startExpirySweeper(
  deps: Pick<AppDeps, 'store' | 'clock' | 'events' | 'log' | 'config'>,
  intervalMs = 5_000,
  purgeEvery = 120,
): () => void {
  let running = false
  let round = 0
  const timer = setInterval(() => {
    if (running) return
    running = true
    round += 1
    sweepExpiredSessions(deps)
      .then(() => expireDueApprovals(deps))
      .then(async () => {
        if (round % purgeEvery === 0) await deps.store.maintenance.purge(deps.clock.now())
      })
      .catch((err: unknown) => deps.log('sweeper_failed', { cause: String((err as Error)?.message ?? err) }))
      .finally(() => {
        running = false
      })
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}
