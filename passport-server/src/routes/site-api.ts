import { Hono } from 'hono'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { readForm } from '../middleware/body.ts'
import { countersOf } from '../services/counters.ts'
import { createSharedRateWindow } from '../services/rate-window.ts'
import { authenticateClient } from '../services/registry.ts'
import { revokeForSite } from '../services/revocation.ts'
import { endSession } from '../services/sessions.ts'
import { checkSiteToken, findSiteTokenRow, statusBody } from '../services/token-status.ts'
import type { SiteRecord } from '../store/types.ts'

/**
 * Dead or foreign tokens one site credential may have checked per minute at `/token/introspect`
 * and `/token/status` together (attack E2, token scanning). A site backend using the SDK asks
 * about a token only after it verified it locally, so dead answers are rare for an honest one:
 * a refused token costs it two (introspection, then status). Live tokens are never limited.
 */
export const DEAD_ANSWERS_PER_SITE_PER_MINUTE = 300

/** Endpoints for site backends, authenticated with the site's client credentials. */
export function siteApiRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  // Shared across instances (with Redis): a scanner spread over the instances behind the load
  // balancer must not get the limit once per instance.
  const deadAnswers = createSharedRateWindow(
    countersOf(deps),
    'dead_answers',
    DEAD_ANSWERS_PER_SITE_PER_MINUTE,
    60_000,
  )

  /** Refuses a credential that has been scanning (checked before the token is even looked at). */
  const refuseScanner = async (site: SiteRecord) => {
    const gate = await deadAnswers.check(site.id)
    if (gate.allowed) return
    deps.log('excess_rate_limit_exceeded', { what: 'token_check', site: site.id })
    throw new PassportError('rate_limited', 'too many inactive tokens checked; wait', {
      retryAfterSeconds: gate.retryAfterSeconds,
    })
  }

  const readTokenParam = (form: Record<string, string>): string => {
    const token = form.token
    if (!token || token.length > 8192) throw new PassportError('invalid_request', 'missing token parameter')
    return token
  }

  /** RFC 7662 introspection. Another site's token, or a dead one, gets `{active:false}` only. */
  app.post('/token/introspect', async (c) => {
    c.header('Cache-Control', 'no-store')
    const form = await readForm(c)
    const site = await authenticateClient(deps, c.req.header('Authorization'), form)
    await refuseScanner(site)
    const status = await checkSiteToken(deps, readTokenParam(form), site.id)
    if (!status.valid) {
      await deadAnswers.hit(site.id)
      return c.json({ active: false })
    }
    const { record, holder: user } = status
    // RFC 9449 §6.2: a DPoP-bound token's key, for a resource server that checks the proof itself.
    const bound = site.dpopBoundTokens && record.jkt !== null
    return c.json({
      active: true,
      iss: deps.config.issuer,
      client_id: site.id,
      aud: site.id,
      sub: user.id,
      sid: record.sessionId,
      jti: record.jti,
      iat: Math.floor(record.issuedAt / 1000),
      exp: Math.floor(record.expiresAt / 1000),
      token_type: bound ? 'DPoP' : 'Bearer',
      ...(bound ? { cnf: { jkt: record.jkt } } : {}),
      username: user.username,
      name: user.name,
    })
  })

  /**
   * Validity with the reason, for the site's own tokens: what a site needs to tell its user
   * why they were signed out. Tokens of other sites are `unknown`.
   */
  app.post('/token/status', async (c) => {
    c.header('Cache-Control', 'no-store')
    const form = await readForm(c)
    const site = await authenticateClient(deps, c.req.header('Authorization'), form)
    await refuseScanner(site)
    const status = await checkSiteToken(deps, readTokenParam(form), site.id)
    if (!status.valid) await deadAnswers.hit(site.id)
    return c.json(statusBody(status, deps.clock.now()))
  })

  /**
   * RFC 7009 revocation: the device behind this site's token loses the site. Always 200 once
   * the site is authenticated, whatever the token was (the RFC's answer to token scanning).
   */
  app.post('/token/revoke', async (c) => {
    c.header('Cache-Control', 'no-store')
    const form = await readForm(c)
    const site = await authenticateClient(deps, c.req.header('Authorization'), form)
    await revokeForSite(deps, site, readTokenParam(form))
    return c.body(null, 200)
  })

  /**
   * The site backend's sign-out (what `/api/frame/logout` is for the frame): ends the passport
   * session behind this site's token, pushed to every site and tab. A replaced, revoked or
   * recently expired token still identifies its session; a token of another site or a day past
   * expiry is refused. The site's server-side session middleware calls it on `logout()`.
   */
  app.post('/token/logout', async (c) => {
    c.header('Cache-Control', 'no-store')
    const form = await readForm(c)
    const site = await authenticateClient(deps, c.req.header('Authorization'), form)
    const row = await findSiteTokenRow(deps, readTokenParam(form), site.id)
    if (!row) throw new PassportError('invalid_token', 'the token is not valid for this site')
    const session = await deps.store.sessions.get(row.sessionId)
    if (session) await endSession(deps, session, 'signed_out')
    return c.json({ signed_out: true })
  })

  return app
}
