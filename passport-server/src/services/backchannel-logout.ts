import type { AppDeps } from '../deps.ts'
import { errorFields } from '../errors.ts'
import type { SessionEndEvent } from '../events/bus.ts'
import { runGuarded } from '../guard.ts'
import { signLogoutToken } from '../tokens/logout-token.ts'
import { countersOf } from './counters.ts'

export interface BackchannelOptions {
  /** Waits before each retry after the first attempt. */
  retryDelaysMs: number[]
  timeoutMs: number
  fetchImpl: typeof fetch
  setTimer: (fn: () => void, ms: number) => unknown
}

/** How long an event's back-channel delivery stays claimed (its copies arrive within seconds). */
const CLAIM_MS = 10 * 60_000

const defaults: BackchannelOptions = {
  retryDelaysMs: [1_000, 5_000, 25_000],
  timeoutMs: 5_000,
  fetchImpl: (input, init) => fetch(input, init),
  setTimer: (fn, ms) => setTimeout(fn, ms).unref(),
}

/**
 * OIDC back-channel logout: on every session end, each site that registered a back-channel
 * logout URI and was used by that session gets a signed logout token, by POST, retried on
 * failure (a 2xx ends it). A site's own access ending (replaced, revoked) goes to that site only.
 * Returns the unsubscribe function.
 */
export function startBackchannelLogout(
  deps: Pick<AppDeps, 'store' | 'keys' | 'clock' | 'config' | 'events' | 'log' | 'counters'>,
  options: Partial<BackchannelOptions> = {},
): () => void {
  const o = { ...defaults, ...options }
  // Every instance hears every session event (Redis bus, log tail): the one that claims the
  // event for a site sends it, so a site gets one logout token, not one per instance. With Redis
  // away each instance claims alone (a duplicate, which a logout receiver shrugs off, rather
  // than none); a claim store too full to remember answers `full`, and the token is sent.
  const claims = countersOf(deps)
  const firstToClaim = async (event: SessionEndEvent, siteId: string) =>
    (await claims.claimOnce(`backchannel:${event.id}:${siteId}`, CLAIM_MS)) !== 'replayed'

  const deliver = async (
    uri: string,
    siteId: string,
    event: SessionEndEvent,
    attempt: number,
  ): Promise<void> => {
    const token = await signLogoutToken(deps.keys, {
      issuer: deps.config.issuer,
      siteId,
      userId: event.userId,
      sessionId: event.sessionId,
      reason: event.reason,
      endedAtMs: event.at,
      nowMs: deps.clock.now(),
    })
    let ok = false
    try {
      const res = await o.fetchImpl(uri, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ logout_token: token }),
        signal: AbortSignal.timeout(o.timeoutMs),
        redirect: 'manual',
      })
      ok = res.status >= 200 && res.status < 300
    } catch {}
    if (ok) return deps.log('backchannel_logout_sent', { site: siteId, attempt })
    const delay = o.retryDelaysMs[attempt]
    if (delay === undefined)
      return deps.log('backchannel_logout_failed', { site: siteId, attempts: attempt + 1 })
    // A retry runs from a bare timer: nothing above it would catch a failure (signing, say).
    o.setTimer(
      () => void runGuarded(deps.log, 'backchannel_logout', () => deliver(uri, siteId, event, attempt + 1)),
      delay,
    )
  }

  return deps.events.subscribe((event) => {
    void (async () => {
      const siteIds = event.siteId ? [event.siteId] : await deps.store.sessions.sitesOf(event.sessionId)
      for (const siteId of siteIds) {
        const site = await deps.store.sites.get(siteId)
        if (site?.backchannelLogoutUri && (await firstToClaim(event, siteId)))
          await deliver(site.backchannelLogoutUri, siteId, event, 0)
      }
    })().catch((err: unknown) => deps.log('backchannel_logout_failed', errorFields(err)))
  })
}
