import { Hono } from 'hono'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { readForm } from '../middleware/body.ts'
import { checkSiteToken } from '../services/minting.ts'
import { authenticateClient } from '../services/registry.ts'
import { revokeForSite } from '../services/revocation.ts'
import { endSession } from '../services/sessions.ts'
import { verifySiteToken } from '../tokens/site-token.ts'

/** Endpoints for site backends, authenticated with the site's client credentials. */
export function siteApiRoutes(deps: AppDeps): Hono {
  const app = new Hono()

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
    const status = await checkSiteToken(deps, readTokenParam(form), site.id)
    if (!status.valid) return c.json({ active: false })
    const { record, holder: user } = status
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
      token_type: 'Bearer',
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
    const status = await checkSiteToken(deps, readTokenParam(form), site.id)
    return c.json({
      valid: status.valid,
      reason: status.valid ? null : status.reason,
      expires_at: status.valid ? status.record.expiresAt : status.expiresAt,
      server_time: deps.clock.now(),
    })
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
    const verified = await verifySiteToken(deps.keys, readTokenParam(form), {
      issuer: deps.config.issuer,
      audience: site.id,
      nowMs: deps.clock.now(),
      allowExpired: true,
    })
    if (!verified.ok) throw new PassportError('invalid_token', 'the token is not valid for this site')
    const session = await deps.store.sessions.get(verified.claims.sid)
    if (session) await endSession(deps, session, 'signed_out')
    return c.json({ signed_out: true })
  })

  return app
}
