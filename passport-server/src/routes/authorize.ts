import { type Context, Hono } from 'hono'
import { createDummyHash, verifyPassword } from '../auth/password.ts'
import type { AppDeps } from '../deps.ts'
import { readForm } from '../middleware/body.ts'
import { issueCsrf, refuseForeignPost } from '../middleware/csrf.ts'
import { type AuthorizeParams, renderErrorPage, renderLoginPage } from '../pages/login-page.ts'
import { sendPage } from '../pages/send-page.ts'
import { createLoginThrottle } from '../services/login-throttle.ts'
import { allowsLoginMode } from '../services/registry.ts'
import type { SiteRecord } from '../store/types.ts'
import { clientAddress } from './client-address.ts'
import { sessionFromCookies } from './session-cookies.ts'
import {
  codeRedirect,
  isCodeChallenge,
  readResponseMode,
  readSignInParams,
  redirectToSite,
  resolveClient,
  signInBrowser,
} from './sign-in-flow.ts'

const GENERIC_LOGIN_ERROR = 'Wrong username or password.'

/**
 * The sign-in round trip: `GET /authorize` (silent with `prompt=none`, or showing the form) and
 * `POST /login`. Both end in a 303 to the site's exact registered redirect URI with a one-time,
 * PKCE-bound code in the fragment.
 */
export function authorizeRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  let dummyHash: Promise<string> | undefined
  const throttle = createLoginThrottle(deps.clock)

  const showLogin = (
    c: Context,
    site: SiteRecord,
    params: AuthorizeParams,
    extra: { error?: string; username?: string; notice?: 'replaced' } = {},
    status: 200 | 401 = 200,
  ) =>
    sendPage(
      c,
      renderLoginPage({
        siteName: site.name,
        params,
        csrf: issueCsrf(c),
        redirectOrigin: new URL(params.redirectUri).origin,
        offerDevice: allowsLoginMode(site, 'device'),
        ...extra,
      }),
      status,
    )

  app.get('/authorize', async (c) => {
    const q = c.req.query()
    const site = await resolveClient(deps, q.client_id, q.redirect_uri)
    if (!site || !q.redirect_uri) {
      // Never redirect to a target we cannot vouch for: an error page instead (no open redirect).
      return sendPage(c, renderErrorPage('Unknown site or unregistered redirect address.'), 400)
    }
    const state = q.state ?? ''
    const responseMode = readResponseMode(q.response_mode)
    // An unknown response_mode is answered the standard way (query), with iss (RFC 9207).
    const fail = (error: string, extra: Record<string, string> = {}) =>
      redirectToSite(c, q.redirect_uri as string, responseMode ?? 'query', {
        error,
        state,
        iss: deps.config.issuer,
        ...extra,
      })
    if (
      !responseMode ||
      q.response_type !== 'code' ||
      !state ||
      state.length > 512 ||
      q.code_challenge_method !== 'S256' ||
      !isCodeChallenge(q.code_challenge) ||
      (q.prompt !== undefined && q.prompt !== 'none' && q.prompt !== 'login')
    ) {
      return fail('invalid_request')
    }
    const params: AuthorizeParams = {
      clientId: site.id,
      redirectUri: q.redirect_uri,
      state,
      codeChallenge: q.code_challenge as string,
      responseMode,
    }
    // A cookie of an ended session is cleared here, with `Set-Login: logged-out`.
    const found = await sessionFromCookies(deps, c)
    const session = q.prompt === 'login' ? null : found
    const exclusion = session && (await deps.store.sessions.exclusion(session.id, site.id))
    if (session && !exclusion) return codeRedirect(deps, c, site, session, params)
    if (q.prompt === 'none') {
      // Exactly one silent answer: the site learns "sign-in needed" and why, never a form.
      return fail('login_required', exclusion ? { reason: exclusion.reason } : {})
    }
    return showLogin(c, site, params, exclusion ? { notice: 'replaced' } : {})
  })

  app.post('/login', async (c) => {
    const form = await readForm(c)
    const refused = refuseForeignPost(deps, c, form.csrf, 'sign_in')
    if (refused) return refused
    const signIn = await readSignInParams(deps, form)
    if (!signIn) return sendPage(c, renderErrorPage('Unknown site or unregistered redirect address.'), 400)
    const { site, params } = signIn
    const username = (form.username ?? '').slice(0, 64)
    const password = (form.password ?? '').slice(0, 256)
    const address = clientAddress(c, deps.config)
    const gate = throttle.check(username, address)
    if (!gate.allowed && gate.scope === 'address') {
      deps.log('excess_rate_limit_exceeded', { what: 'login', retryAfter: gate.retryAfterSeconds })
      c.header('Retry-After', String(gate.retryAfterSeconds))
      return sendPage(c, renderErrorPage('Too many sign-in attempts from here. Try again later.'), 429)
    }
    const user = username ? await deps.store.users.findByUsername(username) : null
    // Unknown users are checked against a dummy hash so both failures take the same time; a
    // locked account is checked too, and answered the same way whatever the password.
    dummyHash ??= createDummyHash(deps.config.scryptCost)
    const ok = await verifyPassword(password, user?.passwordHash ?? (await dummyHash))
    if (!user || !ok || !gate.allowed) {
      const locked = throttle.failed(username, address)
      deps.log(locked ? 'authn_login_lock' : 'authn_login_fail', { site: site.id })
      return showLogin(c, site, params, { error: GENERIC_LOGIN_ERROR, username }, 401)
    }
    throttle.succeeded(username)
    const session = await signInBrowser(deps, c, user.id, 'password')
    return codeRedirect(deps, c, site, session, params)
  })

  return app
}
