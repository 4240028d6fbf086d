import { type Context, Hono } from 'hono'
import { isLegacyHash, verifyPassword } from '../crypto/password.ts'
import { randomSecret } from '../crypto/random.ts'
import {
  decoyCredential,
  deriveScramCredential,
  encodeScramCredential,
  hashScramPassword,
} from '../crypto/scram.ts'
import type { AppDeps } from '../deps.ts'
import { readForm } from '../middleware/body.ts'
import { issueCsrf, refuseForeignPost } from '../middleware/csrf.ts'
import { type AuthorizeParams, renderErrorPage, renderLoginPage } from '../pages/login-page.ts'
import { passkeyScriptUrl } from '../pages/passkey-parts.ts'
import { sendPage } from '../pages/send-page.ts'
import { loginThrottleOf } from '../services/login-throttle.ts'
import { allowsLoginMode } from '../services/registry.ts'
import { redeemSignInTicket } from '../services/sign-in-tickets.ts'
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
const NO_FORM_ERROR =
  'This passport signs in without sending your password: turn on JavaScript and try again.'

/**
 * The sign-in round trip: `GET /authorize` (silent with `prompt=none`, or showing the form) and
 * `POST /login`. Both end in a 303 to the site's exact registered redirect URI with a one-time,
 * PKCE-bound code in the fragment.
 */
export function authorizeRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  let dummyHash: Promise<string> | undefined
  const throttle = loginThrottleOf(deps)

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
        passkeyScript: passkeyScriptUrl(deps.config.issuer),
        passwordForm: deps.config.passwordForm,
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
    if (!deps.config.passwordForm) {
      // PASSPORT_PASSWORD_FORM=off: the password never travels, not even as a fallback.
      return showLogin(c, site, params, { error: NO_FORM_ERROR }, 401)
    }
    const username = (form.username ?? '').slice(0, 64)
    const password = (form.password ?? '').slice(0, 256)
    const address = clientAddress(c, deps.config)
    const gate = await throttle.check(username, address)
    if (!gate.allowed && gate.scope === 'address') {
      deps.log('excess_rate_limit_exceeded', { what: 'login', retryAfter: gate.retryAfterSeconds })
      c.header('Retry-After', String(gate.retryAfterSeconds))
      return sendPage(c, renderErrorPage('Too many sign-in attempts from here. Try again later.'), 429)
    }
    // The page's fallback after a refused SCRAM proof: that attempt was counted on the socket.
    const counted =
      form.fallback !== undefined &&
      (await redeemSignInTicket(deps, form.fallback, { kind: 'fallback', siteId: site.id, address })) ===
        username
    const user = username ? await deps.store.users.findByUsername(username) : null
    // Unknown users are checked against a dummy credential of the current kind (SCRAM, PBKDF2)
    // so both failures take the same time; a locked account is checked too, and answered the
    // same way whatever the password.
    dummyHash ??= hashScramPassword(randomSecret(), deps.config.scramIterations)
    const ok = await verifyPassword(password, user?.passwordHash ?? (await dummyHash))
    // A disabled account gets the same answer as a wrong password: nothing to probe.
    if (!user || !ok || !gate.allowed || user.disabled) {
      const locked = counted ? false : await throttle.failed(username, address)
      deps.log(locked ? 'authn_login_lock' : 'authn_login_fail', { site: site.id })
      return showLogin(c, site, params, { error: GENERIC_LOGIN_ERROR, username }, 401)
    }
    await throttle.succeeded(username)
    if (isLegacyHash(user.passwordHash)) {
      // Upgrade: from now on this account signs in over SCRAM with no password on the wire. The
      // salt is the decoy salt this username was already answered with (no visible change).
      const { salt } = decoyCredential(deps.keys.scramSecret, user.username, deps.config.scramIterations)
      const credential = await deriveScramCredential(password, salt, deps.config.scramIterations)
      await deps.store.users.setPasswordHash(user.id, encodeScramCredential(credential))
      deps.log('password_upgraded', { user: user.id, scheme: 'scram-sha-256' })
    }
    const session = await signInBrowser(deps, c, user.id, 'password')
    return codeRedirect(deps, c, site, session, params)
  })

  return app
}
