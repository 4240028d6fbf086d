import { type Context, Hono } from 'hono'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { readForm } from '../middleware/body.ts'
import { redeemCode } from '../services/codes.ts'
import { issueIdToken } from '../services/id-tokens.ts'
import { mintSiteToken } from '../services/minting.ts'
import { refreshSiteBackendGrant } from '../services/refresh.ts'
import { authenticateClient } from '../services/registry.ts'
import type { SiteRecord } from '../store/types.ts'
import { CIBA_GRANT_TYPE } from './ciba.ts'

export type TokenGrant = (c: Context, site: SiteRecord, form: Record<string, string>) => Promise<Response>

/**
 * The standard token endpoint for site backends, authenticated by the site's client
 * credentials (`client_secret_basic` or `client_secret_post`):
 *
 * - `authorization_code`: a code from `/authorize` (query or fragment), PKCE required, the exact
 *   redirect URI. Redeemed and minted by the same services as the frame's exchange, so newest
 *   wins and the events are the same. Answers the site token, a refresh token (a confidential
 *   client keeps it on its server) and an ID token.
 * - `refresh_token`: rotates it exactly as the frame does (grace window, reuse detection).
 * - CIBA's grant (routes/ciba.ts).
 */
export function tokenRoutes(deps: AppDeps, cibaGrant: TokenGrant): Hono {
  const app = new Hono()

  const param = (form: Record<string, string>, name: string, maxLength: number): string => {
    const value = form[name]
    if (!value || value.length > maxLength) throw new PassportError('invalid_request', `missing ${name}`)
    return value
  }

  const codeGrant: TokenGrant = async (c, site, form) => {
    const code = await redeemCode(deps, {
      site,
      code: param(form, 'code', 256),
      codeVerifier: param(form, 'code_verifier', 256),
      redirectUri: param(form, 'redirect_uri', 2048),
    })
    const [session, user] = await Promise.all([
      deps.store.sessions.get(code.sessionId),
      deps.store.users.findById(code.userId),
    ])
    if (!session || !user) throw new PassportError('invalid_grant', 'the sign-in behind this code has ended')
    // A site backend's grant: no frame key; its refresh family is bound to the client credentials.
    const minted = await mintSiteToken(deps, site, session, null)
    const now = deps.clock.now()
    return c.json({
      access_token: minted.token,
      token_type: 'Bearer',
      expires_in: Math.max(0, Math.floor((minted.expiresAt - now) / 1000)),
      refresh_token: minted.refreshToken,
      scope: 'openid',
      id_token: await issueIdToken(deps, {
        siteId: site.id,
        userId: user.id,
        authTimeMs: session.createdAt,
        claims: { sid: session.id, preferred_username: user.username, name: user.name },
      }),
    })
  }

  const refreshGrant: TokenGrant = async (c, site, form) => {
    const body = await refreshSiteBackendGrant(deps, site, param(form, 'refresh_token', 256))
    return c.body(body, 200, { 'Content-Type': 'application/json; charset=UTF-8' })
  }

  const grants: Record<string, TokenGrant> = {
    authorization_code: codeGrant,
    refresh_token: refreshGrant,
    [CIBA_GRANT_TYPE]: cibaGrant,
  }

  app.post('/token', async (c) => {
    c.header('Cache-Control', 'no-store')
    const form = await readForm(c)
    const site = await authenticateClient(deps, c.req.header('Authorization'), form)
    const grant = Object.hasOwn(grants, form.grant_type ?? '') ? grants[form.grant_type as string] : undefined
    if (!grant) return c.json({ error: 'unsupported_grant_type' }, 400)
    return grant(c, site, form)
  })

  return app
}
