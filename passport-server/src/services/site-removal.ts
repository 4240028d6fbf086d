import type { AppDeps } from '../deps.ts'
import type { SessionEventRecord } from '../store/types.ts'
import { publishEvents, recordEvent } from './session-events.ts'

/**
 * `site remove`: the site is gone for its users too, at once. In one transaction its live
 * tokens and every refresh family are revoked (introspection says inactive, refresh says
 * `invalid_grant`), each device that held them gets a `site_access_ended` (`revoked`) in the
 * event log, pushed to its open tabs after the commit, and the registry forgets the site while
 * remembering its authkey version, so that the same id registered again never revives them.
 * Returns false when there was no such site.
 */
export async function removeSite(
  deps: Pick<AppDeps, 'store' | 'clock' | 'events' | 'log'>,
  siteId: string,
): Promise<boolean> {
  const now = deps.clock.now()
  const events = await deps.store.transaction(async (tx) => {
    if (!(await tx.sites.get(siteId))) return null
    const tokens = await tx.tokens.revokeSite(siteId, now, 'revoked')
    const families = await tx.refresh.revokeSite(siteId, now, 'revoked')
    await tx.sites.remove(siteId)
    const devices = new Map<string, string>()
    for (const held of [...tokens, ...families]) devices.set(held.sessionId, held.userId)
    const recorded: SessionEventRecord[] = []
    for (const [sessionId, userId] of devices) {
      recorded.push(
        await recordEvent(tx, {
          type: 'site_access_ended',
          userId,
          sessionId,
          siteId,
          reason: 'revoked',
          at: now,
        }),
      )
    }
    return recorded
  })
  if (!events) return false
  deps.log('site_removed', { site: siteId, devices: events.length })
  await publishEvents(deps, events)
  return true
}
