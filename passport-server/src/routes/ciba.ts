import { type Context, Hono } from 'hono'
import type { AppDeps } from '../deps.ts'
import { readForm } from '../middleware/body.ts'
import { APPROVAL_TTL_MS, type DeviceApprovals } from '../services/device-approval.ts'
import { issueIdToken } from '../services/id-tokens.ts'
import { mintSiteToken } from '../services/minting.ts'
import { allowsLoginMode, authenticateSite } from '../services/registry.ts'
import { startSession } from '../services/sessions.ts'
import type { SiteRecord } from '../store/types.ts'
import { clientAddress } from './client-address.ts'
import type { TokenGrant } from './token.ts'

export const CIBA_GRANT_TYPE = 'urn:openid:params:grant-type:ciba'
/** Seconds a client must wait between polls (CIBA `interval`). */
export const CIBA_POLL_INTERVAL_SECONDS = 2
const MAX_TRACKED_POLLS = 10_000

/**
 * OpenID Connect CIBA (Client-Initiated Backchannel Authentication), poll mode: a site backend
 * starts the same "sign in with another device" approval for a user, by username, and polls
 * the token endpoint for the outcome. The passport picks the two-digit code and returns it as
 * `binding_code` (an extension): the client shows it, and the user picks it on a signed-in
 * device, as in the browser flow. Limits (docs/device-approval.md): poll mode only, `login_hint`
 * only, no `user_code`, `requested_expiry` ignored (always 2 minutes), no refresh token.
 */
export function cibaRoutes(
  deps: AppDeps,
  approvals: DeviceApprovals,
): { routes: Hono; tokenGrant: TokenGrant } {
  const app = new Hono()
  const lastPoll = new Map<string, number>()

  const oauthError = (c: Context, status: 400 | 403 | 429, error: string, description?: string) =>
    c.json(description ? { error, error_description: description } : { error }, status)

  app.post('/bc-authorize', async (c) => {
    c.header('Cache-Control', 'no-store')
    const site = await authenticateSite(deps, c.req.header('Authorization'))
    const form = await readForm(c)
    // Checked before anything about the user: a client without the mode learns nothing here.
    if (!allowsLoginMode(site, 'ciba')) {
      return oauthError(c, 400, 'unauthorized_client', 'this client may not use CIBA')
    }
    if (!(form.scope ?? '').split(' ').includes('openid')) {
      return oauthError(c, 400, 'invalid_scope', 'scope must include openid')
    }
    if (form.login_hint_token !== undefined || form.id_token_hint !== undefined) {
      return oauthError(c, 400, 'invalid_request', 'only login_hint (a username) is supported')
    }
    const username = (form.login_hint ?? '').trim()
    if (!username || username.length > 64)
      return oauthError(c, 400, 'invalid_request', 'login_hint is required')
    const bindingMessage = form.binding_message ?? ''
    // Shown on the user's trusted devices as the site's words: no control characters, no
    // markup, and no format characters (bidi overrides and isolates U+202A-U+202E and
    // U+2066-U+2069, zero-width ones) nor line separators, which would let a client make the
    // prompt read differently from what it sent.
    if (bindingMessage.length > 64 || /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}<>]/u.test(bindingMessage)) {
      return oauthError(c, 400, 'invalid_binding_message', 'at most 64 plain characters')
    }
    // An authenticated client is told when the user does not exist, as the specification says.
    if (!(await deps.store.users.findByUsername(username))) return oauthError(c, 400, 'unknown_user_id')
    const result = await approvals.request({
      username,
      site,
      kind: 'ciba',
      context: bindingMessage,
      userAgent: `${site.name} (backchannel request)`,
      address: clientAddress(c, deps.config),
    })
    if (!result.ok) {
      if (result.retryAfterSeconds > 0) c.header('Retry-After', String(result.retryAfterSeconds))
      switch (result.refusal) {
        case 'too_many_pending':
          return oauthError(c, 403, 'access_denied', 'too many sign-in requests are waiting for this user')
        case 'blocked':
          return oauthError(c, 403, 'access_denied')
        case 'mode_not_allowed':
          return oauthError(c, 400, 'unauthorized_client', 'this client may not use CIBA')
        case 'rate_limited':
          return oauthError(c, 429, 'slow_down', 'too many sign-in requests')
      }
    }
    return c.json({
      auth_req_id: result.secret,
      expires_in: APPROVAL_TTL_MS / 1000,
      interval: CIBA_POLL_INTERVAL_SECONDS,
      binding_code: result.approval.code,
    })
  })

  /** The CIBA grant at `/token` (routes/token.ts authenticates the client and dispatches). */
  const tokenGrant = async (c: Context, site: SiteRecord, form: Record<string, string>) => {
    const authReqId = form.auth_req_id
    const view = await approvals.view(authReqId, 'ciba')
    if (!authReqId || !view || view.kind !== 'ciba' || view.siteId !== site.id) {
      return oauthError(c, 400, 'invalid_grant')
    }
    const now = deps.clock.now()
    const previous = lastPoll.get(view.id)
    if (lastPoll.size >= MAX_TRACKED_POLLS) lastPoll.delete(lastPoll.keys().next().value as string)
    lastPoll.set(view.id, now)
    switch (view.status) {
      case 'pending':
        return previous !== undefined && now - previous < CIBA_POLL_INTERVAL_SECONDS * 1000
          ? oauthError(c, 400, 'slow_down')
          : oauthError(c, 400, 'authorization_pending')
      case 'denied':
      case 'cancelled':
        return oauthError(c, 403, 'access_denied')
      case 'expired':
        return oauthError(c, 400, 'expired_token')
      case 'used':
        return oauthError(c, 400, 'invalid_grant')
    }
    const approval = await approvals.redeem(authReqId, 'ciba')
    if (!approval?.userId) return oauthError(c, 400, 'invalid_grant')
    // Disabled meanwhile: the request was approved by an account that may no longer sign in.
    if ((await deps.store.users.findById(approval.userId))?.disabled)
      return oauthError(c, 403, 'access_denied')
    lastPoll.delete(view.id)
    // The client's sign-in is a session of its own ("a device"): the user sees it under "Your
    // devices" and can sign it out there; it ends, pushed, like any other.
    const { session } = await startSession(
      deps,
      approval.userId,
      `${site.name} (backchannel request)`,
      'ciba',
    )
    const minted = await mintSiteToken(deps, site, session, null)
    deps.log('authn_ciba', { site: site.id, user: approval.userId })
    return c.json({
      access_token: minted.token,
      token_type: 'Bearer',
      expires_in: Math.max(0, Math.floor((minted.expiresAt - now) / 1000)),
      id_token: await issueIdToken(deps, {
        siteId: site.id,
        userId: approval.userId,
        authTimeMs: approval.decidedAt ?? now,
      }),
    })
  }

  return { routes: app, tokenGrant }
}
