import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { type Context, Hono } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import { randomSecret } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { readForm } from '../middleware/body.ts'
import { isSameOriginPost, issueCsrf, refuseForeignPost } from '../middleware/csrf.ts'
import { renderErrorPage, renderLoginPage } from '../pages/login-page.ts'
import { passkeyScriptUrl } from '../pages/passkey-parts.ts'
import { sendPage } from '../pages/send-page.ts'
import {
  CHALLENGE_TTL_MS,
  createPasskeys,
  PASSKEY_BINDING_COOKIE,
  type PasskeyRefusal,
  type Passkeys,
} from '../services/passkeys.ts'
import { createRateWindow } from '../services/rate-window.ts'
import { allowsLoginMode } from '../services/registry.ts'
import { findLiveSession, REAUTH_WINDOW_MS, SESSION_COOKIE, signedInRecently } from '../services/sessions.ts'
import type { SessionRecord } from '../store/types.ts'
import { clientAddress } from './client-address.ts'
import { codeRedirect, cookieOptions, readSignInParams, signInBrowser } from './sign-in-flow.ts'

/**
 * Passkeys over HTTP. The browser side (`/passkey.js`, built from `passport-frame/src/pages/`)
 * asks for options with a `fetch`, runs the ceremony, and posts the response in an ordinary
 * form, so a passkey sign-in ends like a password one: a top-level POST that sets the session
 * cookie and 303s back to the site with a code (`signInBrowser` + `codeRedirect`: the same
 * session, events, newest-wins and approvals as a password).
 *
 * - `POST /login/passkey/options` → sign-in options (JSON); `POST /login/passkey` → the site.
 * - `POST /account/passkeys/options` → registration options; `/register`, `/remove` → the
 *   account page (mounted by `accountRoutes`, which renders it).
 *
 * The challenge binding cookie is `SameSite=Strict` and `HttpOnly`: a ceremony is bound to the
 * browser that asked for its options, and only same-origin passport pages ever ask.
 */

/** Options requests per client address per window (each stores a challenge). */
export const OPTIONS_PER_ADDRESS = 120
/** Refused sign-ins per client address per window before 429 (like wrong passwords). */
export const FAILURES_PER_ADDRESS = 30
const WINDOW_MS = 10 * 60_000
const BINDING = /^[A-Za-z0-9_-]{43}$/
/** The refusal of an account change that needs a recent sign-in (a stable code). */
export const REAUTH_REQUIRED = 'reauth_required'
const REAUTH_MESSAGE =
  'Adding a passkey needs a sign-in in the last 10 minutes. Sign out, sign in again, then add it.'

/** What the sign-in page says for each refusal; the code is shown beside it, for support. */
const signInMessages: Partial<Record<PasskeyRefusal, string>> = {
  unknown_credential:
    'This passkey is not registered with the passport. Sign in with your password, then add it on your account page.',
  passkey_removed:
    'This passkey was removed from your account. Sign in with your password, then add it again if you want to use it.',
  challenge_expired: 'The passkey request expired. Try again.',
  user_verification_missing:
    'Your device did not verify you (PIN, fingerprint or face). Try again and unlock the passkey.',
}
const GENERIC_PASSKEY_ERROR = 'The passkey could not sign you in. Try again.'

export function passkeyMessage(refusal: PasskeyRefusal): string {
  return `${signInMessages[refusal] ?? GENERIC_PASSKEY_ERROR} (${refusal})`
}

/** This browser's binding value: the cookie it already has, or a new one set now. */
function bindingOf(c: Context): string {
  const existing = getCookie(c, PASSKEY_BINDING_COOKIE)
  if (existing && BINDING.test(existing)) return existing
  const value = randomSecret()
  setCookie(c, PASSKEY_BINDING_COOKIE, value, { ...cookieOptions, sameSite: 'Strict', maxAge: 3600 })
  return value
}

const optionsRefused = (c: Context) => {
  c.header('Cache-Control', 'no-store')
  return c.json({ error: 'invalid_request', error_description: 'same-origin form posts only' }, 403)
}

/** The sign-in side and the page script. */
export function passkeySignInRoutes(deps: AppDeps, passkeys: Passkeys = createPasskeys(deps)): Hono {
  const app = new Hono()
  const optionsLimit = createRateWindow(deps.clock, OPTIONS_PER_ADDRESS, WINDOW_MS)
  const failures = createRateWindow(deps.clock, FAILURES_PER_ADDRESS, WINDOW_MS)
  let script: string | undefined

  app.get('/passkey.js', async (c) => {
    if (script === undefined) {
      try {
        script = await readFile(path.join(deps.config.assetsDir, 'passkey.js'), 'utf8')
      } catch {
        deps.log('asset_missing', { file: 'passkey.js' })
        throw new PassportError('temporarily_unavailable', 'browser files are not built; run `npm run build`')
      }
    }
    c.header('Content-Type', 'text/javascript; charset=utf-8')
    c.header('Cache-Control', 'public, max-age=300')
    return c.body(script)
  })

  app.post('/login/passkey/options', async (c) => {
    const form = await readForm(c)
    if (!isSameOriginPost(c, form.csrf, deps.config.issuer)) return optionsRefused(c)
    const gate = optionsLimit.take(clientAddress(c, deps.config))
    if (!gate.allowed) {
      throw new PassportError('rate_limited', 'too many passkey requests', {
        retryAfterSeconds: gate.retryAfterSeconds,
      })
    }
    c.header('Cache-Control', 'no-store')
    return c.json(await passkeys.authenticationOptions(bindingOf(c)))
  })

  app.post('/login/passkey', async (c) => {
    const form = await readForm(c)
    const refused = refuseForeignPost(deps, c, form.csrf, 'sign_in')
    if (refused) return refused
    const signIn = await readSignInParams(deps, form)
    if (!signIn) return sendPage(c, renderErrorPage('Unknown site or unregistered redirect address.'), 400)
    const { site, params } = signIn
    const address = clientAddress(c, deps.config)
    const gate = failures.check(address)
    if (!gate.allowed) {
      deps.log('excess_rate_limit_exceeded', { what: 'passkey', retryAfter: gate.retryAfterSeconds })
      c.header('Retry-After', String(gate.retryAfterSeconds))
      return sendPage(c, renderErrorPage('Too many sign-in attempts from here. Try again later.'), 429)
    }
    const result = await passkeys.authenticate({
      response: form.response,
      binding: getCookie(c, PASSKEY_BINDING_COOKIE),
    })
    const user = result.ok ? await deps.store.users.findById(result.userId) : null
    if (!result.ok || !user) {
      failures.hit(address)
      const refusal = result.ok ? 'unknown_credential' : result.refusal
      c.header('Cache-Control', 'no-store')
      return sendPage(
        c,
        renderLoginPage({
          siteName: site.name,
          params,
          csrf: issueCsrf(c),
          redirectOrigin: new URL(params.redirectUri).origin,
          offerDevice: allowsLoginMode(site, 'device'),
          error: passkeyMessage(refusal),
          passkeyScript: passkeyScriptUrl(deps.config.issuer),
        }),
        401,
      )
    }
    const session = await signInBrowser(deps, c, user.id, 'passkey')
    return codeRedirect(deps, c, site, session, params)
  })

  return app
}

/** How the account page's routes hand over: its post check and its renderer. */
export interface AccountPage {
  readAccountPost(
    c: Context,
  ): Promise<{ form: Record<string, string>; current: SessionRecord } | { refused: Response }>
  show(c: Context, current: SessionRecord, notice?: string): Promise<Response>
}

/** Registration and removal, from the account page ("Your devices"). */
export function passkeyAccountRoutes(
  deps: AppDeps,
  page: AccountPage,
  passkeys: Passkeys = createPasskeys(deps),
): Hono {
  const app = new Hono()

  app.post('/account/passkeys/options', async (c) => {
    const form = await readForm(c)
    if (!isSameOriginPost(c, form.csrf, deps.config.issuer)) return optionsRefused(c)
    c.header('Cache-Control', 'no-store')
    const current = await findLiveSession(deps, getCookie(c, SESSION_COOKIE))
    const user = current && (await deps.store.users.findById(current.userId))
    if (!current || !user) return c.json({ error: 'login_required' }, 401)
    // A passkey is lasting access: only a recent sign-in may add one (docs/sign-in.md).
    if (!signedInRecently(current, deps.clock.now())) {
      deps.log('passkey_register_fail', { user: current.userId, refusal: REAUTH_REQUIRED })
      return c.json({ error: REAUTH_REQUIRED, error_description: REAUTH_MESSAGE }, 403)
    }
    return c.json(await passkeys.registrationOptions({ user, session: current, binding: bindingOf(c) }))
  })

  app.post('/account/passkeys/register', async (c) => {
    const post = await page.readAccountPost(c)
    if ('refused' in post) return post.refused
    const { form, current } = post
    const user = await deps.store.users.findById(current.userId)
    if (!user) return sendPage(c, renderErrorPage('You are not signed in at the passport.'), 401)
    // Checked again here, with the challenge's five minutes of grace: the options were asked in time.
    if (!signedInRecently(current, deps.clock.now(), REAUTH_WINDOW_MS + CHALLENGE_TTL_MS)) {
      deps.log('passkey_register_fail', { user: current.userId, refusal: REAUTH_REQUIRED })
      return sendPage(c, renderErrorPage(`${REAUTH_MESSAGE} (${REAUTH_REQUIRED})`), 403)
    }
    const result = await passkeys.register({
      response: form.response,
      user,
      session: current,
      binding: getCookie(c, PASSKEY_BINDING_COOKIE),
    })
    return page.show(
      c,
      current,
      result.ok ? 'Passkey added.' : `The passkey was not added (${result.refusal}).`,
    )
  })

  app.post('/account/passkeys/remove', async (c) => {
    const post = await page.readAccountPost(c)
    if ('refused' in post) return post.refused
    const { form, current } = post
    if (!(await passkeys.remove(current.userId, form.passkey ?? ''))) {
      return sendPage(c, renderErrorPage('No such passkey.'), 404)
    }
    return page.show(c, current, 'Passkey removed: it no longer signs you in.')
  })

  return app
}
