import type { AppDeps } from '../deps.ts'
import { repeatEvery } from '../guard.ts'
import { purgeAudit } from './audit.ts'
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
 * `purgeEvery`-th round also purges dead rows and audit rows past their retention.
 */
export function startExpirySweeper(
  deps: Pick<AppDeps, 'store' | 'clock' | 'events' | 'log' | 'config'>,
  intervalMs = 5_000,
  purgeEvery = 120,
): () => void {
  let round = 0
  return repeatEvery(deps.log, 'sweeper', intervalMs, async () => {
    round += 1
    await sweepExpiredSessions(deps)
    await expireDueApprovals(deps)
    if (round % purgeEvery === 0) {
      await deps.store.maintenance.purge(deps.clock.now())
      await purgeAudit(deps)
    }
  })
}
