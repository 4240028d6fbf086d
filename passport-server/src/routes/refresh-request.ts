import { Hono } from 'hono'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { readForm } from '../middleware/body.ts'
import { createRateWindow } from '../services/rate-window.ts'
import { requestRefresh } from '../services/refresh-request.ts'
import { authenticateClient } from '../services/registry.ts'
import { checkSiteToken } from '../services/token-status.ts'

/**
 * Refresh requests one site credential may make per minute. The frame itself rotates at most
 * once per 30 s per site whatever it is asked, so this only bounds the work a backend can cause
 * on the bus and the sockets.
 */
export const REFRESH_REQUESTS_PER_SITE_PER_MINUTE = 600

/**
 * `POST /token/refresh-request`: a site backend asks that the device holding one of its tokens
 * refresh it now (the monitoring terminal's "Refresh now", for backends). Client credentials as
 * at `/token` (`client_secret_basic` or `client_secret_post`); `token` = a live token of this
 * site (a site backend knows its token, not our session id). The frame refreshes through its
 * normal, proof-bound path, so the request grants nothing: it only moves a refresh earlier.
 *
 * Answers `202 {"request_id", "live_sockets"}` (how many of the device's sockets on this site
 * are open now, 0: nobody will hear it, the device's own schedule still refreshes). A token of
 * another site, unknown, expired or ended gets `400 invalid_grant` with one description for
 * all, so the endpoint tells a scanner nothing that introspection would not.
 */
export function refreshRequestRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  const perSite = createRateWindow(deps.clock, REFRESH_REQUESTS_PER_SITE_PER_MINUTE, 60_000)

  app.post('/token/refresh-request', async (c) => {
    c.header('Cache-Control', 'no-store')
    const form = await readForm(c)
    const site = await authenticateClient(deps, c.req.header('Authorization'), form)
    const gate = perSite.take(site.id)
    if (!gate.allowed) {
      deps.log('excess_rate_limit_exceeded', { what: 'refresh_request', site: site.id })
      throw new PassportError('rate_limited', 'too many refresh requests; wait', {
        retryAfterSeconds: gate.retryAfterSeconds,
      })
    }
    const token = form.token
    if (!token || token.length > 8192) throw new PassportError('invalid_request', 'missing token parameter')
    const status = await checkSiteToken(deps, token, site.id)
    if (!status.valid) {
      throw new PassportError('invalid_grant', 'the token is not a live token of this site')
    }
    const target = { sessionId: status.record.sessionId, siteId: site.id }
    const [{ requestId }, sockets] = await Promise.all([
      requestRefresh(deps, target),
      deps.presence.countsBySessionSite(target.sessionId),
    ])
    deps.log('refresh_requested', { site: site.id, session: target.sessionId, by: 'site_backend' })
    return c.json({ request_id: requestId, live_sockets: sockets.get(site.id) ?? 0 }, 202)
  })

  return app
}
