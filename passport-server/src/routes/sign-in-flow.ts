import type { Context } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import type { AuthorizeParams, ResponseMode } from '../pages/login-page.ts'
import { recordAudit } from '../services/audit.ts'
import { issueCode } from '../services/codes.ts'
import { CROSS_SITE_COOKIE, findLiveSession, SESSION_COOKIE, startSession } from '../services/sessions.ts'
import type { SessionRecord, SignInMethod, SiteRecord } from '../store/types.ts'
import { clientAddress } from './client-address.ts'

/** The steps every way of signing in on the passport page shares (password, another device). */

const CODE_CHALLENGE = /^[A-Za-z0-9_-]{43}$/
export const cookieOptions = { path: '/', secure: true, httpOnly: true } as const

/** Client and redirect target, checked before anything may be sent back to the site. */
export async function resolveClient(
  deps: AppDeps,
  clientId: string | undefined,
  redirectUri: string | undefined,
) {
  const site = clientId && clientId.length <= 64 ? await deps.store.sites.get(clientId) : null
  if (!site || !redirectUri || !site.redirectUris.includes(redirectUri)) return null
  return site
}

/**
 * `response_mode`: the standard default for the code flow is the query (what a site backend and
 * a stock OIDC client read); the page SDK asks for the fragment, which never reaches a server.
 * Null for anything else.
 */
export function readResponseMode(value: string | undefined): ResponseMode | null {
  if (value === undefined || value === 'query') return 'query'
  return value === 'fragment' ? 'fragment' : null
}

export function isCodeChallenge(value: string | undefined): value is string {
  return CODE_CHALLENGE.test(value ?? '')
}

/** The sign-in parameters a passport form carries, checked again on every post; null if any is bad. */
export async function readSignInParams(
  deps: AppDeps,
  form: Record<string, string | undefined>,
): Promise<{ site: SiteRecord; params: AuthorizeParams } | null> {
  const site = await resolveClient(deps, form.client_id, form.redirect_uri)
  const responseMode = readResponseMode(form.response_mode)
  if (
    !site ||
    !responseMode ||
    !form.redirect_uri ||
    !form.state ||
    form.state.length > 512 ||
    !isCodeChallenge(form.code_challenge)
  ) {
    return null
  }
  return {
    site,
    params: {
      clientId: site.id,
      redirectUri: form.redirect_uri,
      state: form.state,
      codeChallenge: form.code_challenge,
      responseMode,
    },
  }
}

/**
 * Sends the browser back to the site with the result in the query or the fragment. The target
 * is the exact registered URI (never a fragment; a query of its own keeps its parameters).
 */
export function redirectToSite(
  c: Context,
  redirectUri: string,
  mode: ResponseMode,
  params: Record<string, string>,
) {
  c.header('Cache-Control', 'no-store')
  const separator = mode === 'fragment' ? '#' : redirectUri.includes('?') ? '&' : '?'
  return c.redirect(`${redirectUri}${separator}${new URLSearchParams(params)}`, 303)
}

/**
 * Signs this browser in as `userId`. Keeps the browser's session when it is already this
 * user's (signing in again on a site this device lost); otherwise always a fresh session id,
 * so a planted cookie never becomes authenticated (fixation).
 */
export async function signInBrowser(
  deps: AppDeps,
  c: Context,
  userId: string,
  method: SignInMethod,
): Promise<SessionRecord> {
  // A disabled account signs in nowhere, whichever way it came (the callers say so first).
  const user = await deps.store.users.findById(userId)
  if (!user || user.disabled) throw new PassportError('access_denied', 'this account is disabled')
  const current = await findLiveSession(deps, getCookie(c, SESSION_COOKIE))
  c.header('Set-Login', 'logged-in')
  if (current && current.userId === userId) return current
  const address = clientAddress(c, deps.config)
  const started = await startSession(deps, userId, c.req.header('User-Agent') ?? '', method, address)
  const maxAge = deps.config.sessionTtlSeconds
  setCookie(c, SESSION_COOKIE, started.cookieValue, { ...cookieOptions, sameSite: 'Lax', maxAge })
  setCookie(c, CROSS_SITE_COOKIE, started.cookieValue, { ...cookieOptions, sameSite: 'None', maxAge })
  deps.log('session_created', { user: userId, method })
  await recordAudit(deps, {
    type: 'sign_in',
    actor: null,
    userId,
    sessionId: started.session.id,
    detail: { method, address },
  })
  return started.session
}

/** The end of every sign-in: a one-time, PKCE-bound code for the site, in a 303 back to it. */
export async function codeRedirect(
  deps: AppDeps,
  c: Context,
  site: SiteRecord,
  session: SessionRecord,
  params: AuthorizeParams,
) {
  const code = await issueCode(deps, {
    site,
    session,
    redirectUri: params.redirectUri,
    codeChallenge: params.codeChallenge,
  })
  return redirectToSite(c, params.redirectUri, params.responseMode, {
    code,
    state: params.state,
    iss: deps.config.issuer,
  })
}
