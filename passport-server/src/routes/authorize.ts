import { getConnInfo } from '@hono/node-server/conninfo'
import { type Context, Hono } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import { createDummyHash, verifyPassword } from '../auth/password.ts'
import type { AppDeps } from '../deps.ts'
import { readForm } from '../middleware/body.ts'
import { isSameOriginPost, issueCsrf } from '../middleware/csrf.ts'
import { type AuthorizeParams, renderErrorPage, renderLoginPage } from '../pages/login-page.ts'
import { sendPage } from '../pages/send-page.ts'
import { issueCode } from '../services/codes.ts'
import { createLoginThrottle } from '../services/login-throttle.ts'
import { CROSS_SITE_COOKIE, findLiveSession, SESSION_COOKIE, startSession } from '../services/sessions.ts'
import type { SessionRecord, SiteRecord } from '../store/types.ts'

const CODE_CHALLENGE = /^[A-Za-z0-9_-]{43}$/
const GENERIC_LOGIN_ERROR = 'Wrong username or password.'

/** Client and redirect target, checked before anything may be sent back to the site. */
async function resolveClient(deps: AppDeps, clientId: string | undefined, redirectUri: string | undefined) {
  const site = clientId && clientId.length <= 64 ? await deps.store.sites.get(clientId) : null
  if (!site || !redirectUri || !site.redirectUris.includes(redirectUri)) return null
  return site
}

/** Sends the browser back to the site with the result in the fragment (never in a query). */
function redirectToSite(c: Context, redirectUri: string, params: Record<string, string>) {
  c.header('Cache-Control', 'no-store')
  return c.redirect(`${redirectUri}#${new URLSearchParams(params)}`, 303)
}

/**
 * The sign-in round trip: `GET /authorize` (silent with `prompt=none`, or showing the form) and
 * `POST /login`. Both end in a 303 to the site's exact registered redirect URI with a one-time,
 * PKCE-bound code in the fragment.
 */
export function authorizeRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  let dummyHash: Promise<string> | undefined
  const throttle = createLoginThrottle(deps.clock)
  // The TCP peer; behind a proxy that is the proxy (documented): never a header a client sets.
  const clientAddress = (c: Context): string => {
    try {
      return getConnInfo(c).remote.address ?? 'unknown'
    } catch {
      return 'unknown' // app.request() in tests has no socket
    }
  }

  const cookieOptions = { path: '/', secure: true, httpOnly: true } as const

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
        ...extra,
      }),
      status,
    )

  const codeRedirect = async (
    c: Context,
    site: SiteRecord,
    session: SessionRecord,
    params: AuthorizeParams,
  ) => {
    const code = await issueCode(deps, {
      site,
      session,
      redirectUri: params.redirectUri,
      codeChallenge: params.codeChallenge,
    })
    return redirectToSite(c, params.redirectUri, { code, state: params.state, iss: deps.config.issuer })
  }

  app.get('/authorize', async (c) => {
    const q = c.req.query()
    const site = await resolveClient(deps, q.client_id, q.redirect_uri)
    if (!site || !q.redirect_uri) {
      // Never redirect to a target we cannot vouch for: an error page instead (no open redirect).
      return sendPage(c, renderErrorPage('Unknown site or unregistered redirect address.'), 400)
    }
    const state = q.state ?? ''
    const fail = (error: string, extra: Record<string, string> = {}) =>
      redirectToSite(c, q.redirect_uri as string, { error, state, ...extra })
    if (
      q.response_type !== 'code' ||
      !state ||
      state.length > 512 ||
      q.code_challenge_method !== 'S256' ||
      !CODE_CHALLENGE.test(q.code_challenge ?? '') ||
      (q.response_mode !== undefined && q.response_mode !== 'fragment') ||
      (q.prompt !== undefined && q.prompt !== 'none' && q.prompt !== 'login')
    ) {
      return fail('invalid_request')
    }
    const params: AuthorizeParams = {
      clientId: site.id,
      redirectUri: q.redirect_uri,
      state,
      codeChallenge: q.code_challenge as string,
    }
    const session = q.prompt === 'login' ? null : await findLiveSession(deps, getCookie(c, SESSION_COOKIE))
    const exclusion = session && (await deps.store.sessions.exclusion(session.id, site.id))
    if (session && !exclusion) return codeRedirect(c, site, session, params)
    if (q.prompt === 'none') {
      // Exactly one silent answer: the site learns "sign-in needed" and why, never a form.
      return fail('login_required', exclusion ? { reason: exclusion.reason } : {})
    }
    return showLogin(c, site, params, exclusion ? { notice: 'replaced' } : {})
  })

  app.post('/login', async (c) => {
    const form = await readForm(c)
    // Login CSRF: a cross-site form post must not sign the victim into someone else's account.
    if (!isSameOriginPost(c, form.csrf, deps.config.issuer)) {
      deps.log('malicious_csrf', {
        fetchSite: c.req.header('Sec-Fetch-Site'),
        origin: c.req.header('Origin'),
      })
      return sendPage(
        c,
        renderErrorPage('This sign-in form expired or came from another site. Start again from the site.'),
        403,
      )
    }
    const site = await resolveClient(deps, form.client_id, form.redirect_uri)
    if (
      !site ||
      !form.redirect_uri ||
      !form.state ||
      form.state.length > 512 ||
      !CODE_CHALLENGE.test(form.code_challenge ?? '')
    ) {
      return sendPage(c, renderErrorPage('Unknown site or unregistered redirect address.'), 400)
    }
    const params: AuthorizeParams = {
      clientId: site.id,
      redirectUri: form.redirect_uri,
      state: form.state,
      codeChallenge: form.code_challenge as string,
    }
    const username = (form.username ?? '').slice(0, 64)
    const password = (form.password ?? '').slice(0, 256)
    const address = clientAddress(c)
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
    // Keep the browser's session when it is already this user's (signing in again on a site
    // this device lost); otherwise always a fresh session id, so a planted cookie never
    // becomes authenticated (fixation).
    const current = await findLiveSession(deps, getCookie(c, SESSION_COOKIE))
    let session: SessionRecord
    if (current && current.userId === user.id) {
      session = current
    } else {
      const started = await startSession(deps, user.id, c.req.header('User-Agent') ?? '')
      session = started.session
      const maxAge = deps.config.sessionTtlSeconds
      setCookie(c, SESSION_COOKIE, started.cookieValue, { ...cookieOptions, sameSite: 'Lax', maxAge })
      setCookie(c, CROSS_SITE_COOKIE, started.cookieValue, { ...cookieOptions, sameSite: 'None', maxAge })
      deps.log('session_created', { user: user.id })
    }
    c.header('Set-Login', 'logged-in')
    return codeRedirect(c, site, session, params)
  })

  return app
}
