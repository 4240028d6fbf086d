import type { Hono } from 'hono'
import { pkceChallenge, randomSecret } from './crypto/random.ts'
import { defaultFrameKey, type TestFrameKey } from './test-dpop.ts'
import { TEST_ISSUER } from './test-support.ts'

/**
 * Drives the passport over `app.request()` the way a browser and the frame would, so route
 * tests read as flows. Cookies are a plain name→value jar; nothing here is used in production.
 */

export type CookieJar = Map<string, string>

export function cookieHeader(jar: CookieJar): string {
  return [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
}

/** Applies a response's Set-Cookie headers to the jar (Max-Age=0 deletes). */
export function storeCookies(jar: CookieJar, res: Response): void {
  for (const line of res.headers.getSetCookie()) {
    const pair = line.split(';')[0] ?? ''
    const eq = pair.indexOf('=')
    const name = pair.slice(0, eq).trim()
    if (/max-age=0/i.test(line)) jar.delete(name)
    else jar.set(name, pair.slice(eq + 1).trim())
  }
}

export interface AuthorizeRequest {
  clientId: string
  redirectUri: string
  state: string
  verifier: string
  challenge: string
}

export function authorizeRequest(clientId: string, redirectUri: string | undefined): AuthorizeRequest {
  const verifier = randomSecret()
  return {
    clientId,
    redirectUri: redirectUri ?? '',
    state: randomSecret(),
    verifier,
    challenge: pkceChallenge(verifier),
  }
}

export function authorizeUrl(req: AuthorizeRequest, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: req.clientId,
    redirect_uri: req.redirectUri,
    state: req.state,
    code_challenge: req.challenge,
    code_challenge_method: 'S256',
    // As the page SDK asks; a site backend takes the standard default (the query).
    response_mode: 'fragment',
    ...extra,
  })
  return `/authorize?${q}`
}

/** The fragment parameters of a 303 back to the site. */
export function fragmentOf(res: Response): URLSearchParams {
  const location = res.headers.get('Location') ?? ''
  return new URLSearchParams(location.slice(location.indexOf('#') + 1))
}

/** The body of the sign-in form post. */
export function loginForm(
  req: AuthorizeRequest,
  credentials: { username: string; password: string },
  csrf: string,
) {
  return new URLSearchParams({
    csrf,
    client_id: req.clientId,
    redirect_uri: req.redirectUri,
    state: req.state,
    code_challenge: req.challenge,
    response_mode: 'fragment',
    username: credentials.username,
    password: credentials.password,
  })
}

/** Opens the login form (getting the CSRF cookie) and posts the credentials, same-origin. */
export async function postLogin(
  app: Hono,
  jar: CookieJar,
  req: AuthorizeRequest,
  credentials: { username: string; password: string },
  headers: Record<string, string> = {},
): Promise<Response> {
  const csrf = await openSignInPage(app, jar, req)
  return formPost(app, '/login', jar, Object.fromEntries(loginForm(req, credentials, csrf)), headers)
}

/** The CSRF value a passport page's forms carry ('' when it has no form). */
export function csrfOf(html: string): string {
  return /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? ''
}

/** Opens the sign-in page for `req` (the browser gets its CSRF cookie); returns the forms' CSRF value. */
export async function openSignInPage(app: Hono, jar: CookieJar, req: AuthorizeRequest): Promise<string> {
  const page = await app.request(authorizeUrl(req), { headers: { Cookie: cookieHeader(jar) } })
  storeCookies(jar, page)
  return csrfOf(await page.text())
}

/** A same-origin form post on a passport page, with this browser's cookies (kept up to date). */
export async function formPost(
  app: Hono,
  path: string,
  jar: CookieJar,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<Response> {
  const res = await app.request(path, {
    method: 'POST',
    body: new URLSearchParams(form),
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Origin: TEST_ISSUER,
      'Sec-Fetch-Site': 'same-origin',
      Cookie: cookieHeader(jar),
      ...headers,
    },
  })
  storeCookies(jar, res)
  return res
}

export interface FrameCallOptions {
  /** The frame key that proves the request (default: every test device's `defaultFrameKey`). */
  key?: TestFrameKey
  /** This exact `DPoP` header instead of a fresh proof; null sends none. */
  proof?: string | null
}

/**
 * A POST from the frame (same-origin on the passport) to its JSON API, as the frame makes it: a
 * `token` in the body goes in `Authorization: DPoP …`, and a fresh DPoP proof by the frame key
 * goes with it, made again once with the server's nonce when the server asks for one.
 */
export async function frameApi(
  app: Hono,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  options: FrameCallOptions = {},
): Promise<Response> {
  const key = options.key ?? defaultFrameKey
  let payload = body
  let token: string | undefined
  if (typeof body === 'object' && body !== null && typeof (body as { token?: unknown }).token === 'string') {
    const { token: sent, ...rest } = body as { token: string }
    token = sent
    payload = rest
  }
  const url = `${headers.Origin ?? TEST_ISSUER}/api/frame/${path}`
  const send = async () => {
    const proof =
      options.proof === undefined
        ? key.proof({ url, nonce: key.nonce, ...(token !== undefined ? { accessToken: token } : {}) })
        : options.proof
    const res = await app.request(`/api/frame/${path}`, {
      method: 'POST',
      body: typeof payload === 'string' ? payload : JSON.stringify(payload),
      headers: {
        'Content-Type': 'application/json',
        Origin: TEST_ISSUER,
        'Sec-Fetch-Site': 'same-origin',
        ...(proof !== null ? { DPoP: proof } : {}),
        ...(token !== undefined ? { Authorization: `DPoP ${token}` } : {}),
        ...headers,
      },
    })
    key.nonce = res.headers.get('DPoP-Nonce') ?? key.nonce
    return res
  }
  const res = await send()
  if (res.status === 401 && options.proof === undefined) {
    const error = ((await res.clone().json()) as { error?: string }).error
    if (error === 'use_dpop_nonce') return send()
  }
  return res
}

export async function exchangeCode(
  app: Hono,
  authkey: string,
  req: AuthorizeRequest,
  code: string,
  headers: Record<string, string> = {},
  options: FrameCallOptions = {},
): Promise<Response> {
  return frameApi(
    app,
    'token',
    {
      grant_type: 'authorization_code',
      authkey,
      code,
      code_verifier: req.verifier,
      redirect_uri: req.redirectUri,
    },
    headers,
    options,
  )
}

export interface SignedIn {
  jar: CookieJar
  token: string
  body: {
    access_token: string
    refresh_token: string
    expires_at: number
    expires_in: number
    refresh_at: number
    server_time: number
  }
}

/** The whole first sign-in on one site: login form, code, token. */
export async function signIn(
  app: Hono,
  site: { authkey: string; site: { id: string; redirectUris: string[] } },
  credentials: { username: string; password: string },
  jar: CookieJar = new Map(),
  issuer = TEST_ISSUER,
): Promise<SignedIn> {
  const req = authorizeRequest(site.site.id, site.site.redirectUris[0])
  const login = await postLogin(app, jar, req, credentials, { Origin: issuer })
  if (login.status !== 303) throw new Error(`login failed: ${login.status}`)
  const code = fragmentOf(login).get('code') ?? ''
  const res = await exchangeCode(app, site.authkey, req, code, { Origin: issuer })
  if (res.status !== 200) throw new Error(`code exchange failed: ${res.status} ${await res.text()}`)
  const body = (await res.json()) as SignedIn['body']
  return { jar, token: body.access_token, body }
}

/** A second site picked up silently by the same browser (top-level `prompt=none`). */
export async function silentSignIn(
  app: Hono,
  site: { authkey: string; site: { id: string; redirectUris: string[] } },
  jar: CookieJar,
  issuer = TEST_ISSUER,
): Promise<{ res: Response; token?: string }> {
  const req = authorizeRequest(site.site.id, site.site.redirectUris[0])
  const res = await app.request(authorizeUrl(req, { prompt: 'none' }), {
    headers: { Cookie: cookieHeader(jar) },
  })
  const code = fragmentOf(res).get('code')
  if (!code) return { res }
  const tokenRes = await exchangeCode(app, site.authkey, req, code, { Origin: issuer })
  const body = (await tokenRes.json()) as { access_token: string }
  return { res, token: body.access_token }
}

export function basicAuth(siteId: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(siteId)}:${encodeURIComponent(secret)}`).toString('base64')}`
}

export function sitePost(app: Hono, path: string, form: Record<string, string>, authorization?: string) {
  return app.request(path, {
    method: 'POST',
    body: new URLSearchParams(form),
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      ...(authorization ? { Authorization: authorization } : {}),
    },
  })
}

/** Matches anything shaped like a JWT/JWE (two or more base64url segments joined by dots). */
export const COMPACT_TOKEN = /[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./
