import type { Handler, MiddlewareHandler } from 'hono'
import type { PassportUser, SiteVerifier } from './verify.ts'

/**
 * Hono middleware: requires `Authorization: Bearer <passport token>` (or `DPoP <token>` with a
 * `DPoP` proof header, which DPoP-bound tokens need: `passport.authHeaders()` on the page makes
 * both), puts the user on the context as `passportUser`, or answers 401 `invalid_token` with
 * the reason (for the page to tell its user why they were signed out).
 *
 * `publicOrigin`: this site's origin as browsers address it, when a proxy in front changes
 * the Host the app sees (DPoP proofs name the URL the browser used).
 *
 * @example
 * app.use('/api/*', requirePassport(verifier))
 * app.get('/api/me', (c) => c.json(c.get('passportUser')))
 */
export function requirePassport(
  verifier: SiteVerifier,
  options: { publicOrigin?: string } = {},
): MiddlewareHandler<{ Variables: { passportUser: PassportUser } }> {
  return async (c, next) => {
    const [scheme, credential] = (c.req.header('Authorization') ?? '').split(' ', 2)
    const token = scheme === 'Bearer' || scheme === 'DPoP' ? (credential ?? '').trim() : ''
    const url = new URL(c.req.url)
    const result = await verifier.verify(token, {
      method: c.req.method,
      url: options.publicOrigin ? `${options.publicOrigin}${url.pathname}` : url.href,
      proof: c.req.header('DPoP'),
    })
    if (!result.ok) {
      c.header('WWW-Authenticate', 'Bearer error="invalid_token"')
      c.header('Cache-Control', 'no-store')
      return c.json({ error: 'invalid_token', reason: result.reason }, 401)
    }
    c.set('passportUser', result.user)
    await next()
    return undefined
  }
}

/**
 * Hono handler for the site's back-channel logout URI: verifies the logout token and answers
 * 200 (the passport stops retrying), or 400 for anything else (it retries, then gives up).
 *
 * @example
 * app.post('/backchannel-logout', backchannelLogout(verifier))
 */
export function backchannelLogout(
  verifier: SiteVerifier,
  onLogout: (result: { sub: string; sid: string; reason: string }) => void = () => {},
): Handler {
  return async (c) => {
    c.header('Cache-Control', 'no-store')
    const type = (c.req.header('Content-Type') ?? '').split(';')[0]?.trim()
    if (type !== 'application/x-www-form-urlencoded') return c.json({ error: 'invalid_request' }, 400)
    const form = new URLSearchParams(await c.req.text())
    const result = await verifier.verifyLogoutToken(form.get('logout_token'))
    if (!result.ok) return c.json({ error: 'invalid_request' }, 400)
    onLogout(result)
    return c.body(null, 200)
  }
}
