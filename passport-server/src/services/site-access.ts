import type { AppDeps } from '../deps.ts'
import type { SessionEventRecord, StoreTx } from '../store/types.ts'
import { publishEvents, recordEvent } from './session-events.ts'

/** A device (its session) losing one site, and why. */
export interface SiteLoss {
  sessionId: string
  userId: string
  siteId: string
  /** `replaced`: a newer device signed in on a one-device site; `revoked`: anything else. */
  reason: 'revoked' | 'replaced'
  at: number
}

/**
 * The one rule for "a device loses a site", once its credentials there are revoked: it may not
 * come back to the site silently (an exclusion, which only a new sign-in on the site lifts), and
 * its open tabs of the site are to be told (a `site_access_ended` event, recorded in the same
 * transaction; the caller publishes it after the commit).
 */
export async function recordSiteLoss(tx: StoreTx, loss: SiteLoss): Promise<SessionEventRecord> {
  const { sessionId, userId, siteId, reason, at } = loss
  await tx.sessions.exclude({ sessionId, siteId, reason, at })
  return recordEvent(tx, { type: 'site_access_ended', userId, sessionId, siteId, reason, at })
}

/**
 * A device loses a site: its tokens and refresh credentials for the site are revoked, then
 * `recordSiteLoss`. Null when it held nothing there: only the exclusion is written then (it still
 * may not come back silently), and there is nothing to tell.
 */
export async function loseSite(tx: StoreTx, loss: SiteLoss): Promise<SessionEventRecord | null> {
  const { sessionId, siteId, reason, at } = loss
  const tokens = await tx.tokens.revokeSessionSite(sessionId, siteId, at, reason)
  const refresh = await tx.refresh.revokeSessionSite(sessionId, siteId, at, reason)
  if (tokens.length + refresh > 0) return recordSiteLoss(tx, loss)
  await tx.sessions.exclude({ sessionId, siteId, reason, at })
  return null
}

/**
 * `loseSite` (`revoked`) in a transaction of its own, its event published after the commit: RFC
 * 7009 revocation, the console's "End this site for the device", FedCM disconnect. False when
 * the device held nothing there (nothing is recorded or pushed then).
 */
export async function endSiteAccess(
  deps: Pick<AppDeps, 'store' | 'clock' | 'events'>,
  holder: { sessionId: string; userId: string },
  siteId: string,
): Promise<boolean> {
  const loss: SiteLoss = { ...holder, siteId, reason: 'revoked', at: deps.clock.now() }
  const event = await deps.store.transaction((tx) => loseSite(tx, loss))
  if (!event) return false
  await publishEvents(deps, [event])
  return true
}
