import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import {
  createMemorySessionStore,
  type SessionStore,
  type SessionUser,
  type StoredSession,
} from './session-store.ts'
import { createSignedCookies } from './signed-cookie.ts'
import { createSiteVerifier } from './verify.ts'

/**
 * The engine of the server-side session middleware (`hono.ts`, `express.ts` adapt it): a site's
 * backend signs its users in at the passport with the standard authorization-code flow and
 * keeps a first-party session, before any page is rendered.
 *
 * - A page request (a top-level GET) with no session goes straight to the passport with
 *   `prompt=none`: PKCE verifier, state and the page asked for travel in a short-lived, signed,
 *   HttpOnly, SameSite=Lax cookie. The browser comes back to `<basePath>/callback` with a code
 *   (or `login_required`), the code is exchanged on this server with the client secret, and
 *   the page is answered with one redirect.
 * - `login_required` comes back to the page signed out; the answer is remembered in a signed
 *   cookie for `silentRetrySeconds`, so there is at most one silent try per period: never a loop.
 * - The site token and its refresh token stay on this server; the browser holds only an opaque
 *   session id. The token is refreshed here shortly before it expires; a refused refresh (the
 *   user signed out, a newer device signed in on the site) ends the session.
 * - Back-channel logout (`<basePath>/backchannel-logout`, register it with the passport) ends
 *   the sessions of that passport session at once and tells their open tabs over
 *   `<basePath>/events` (server-sent events: `event: signed_out`, `data: {"reason": …}`).
 */
export interface PassportSessionOptions {
  /** The passport's public origin (the tokens' `iss`). */
  issuer: string
  /** This site's id at the passport (its client id). */
  siteId: string
  /** The client secret printed by `passport site add`. */
  clientSecret: string
  /** A random secret of at least 32 characters that signs this site's sign-in cookies. */
  cookieSecret: string
  /** Where this server reaches the passport, when not at `issuer`. */
  internalUrl?: string
  /** Where the middleware's routes live (default `/passport`); `<site origin><basePath>/callback` must be a registered redirect URI. */
  basePath?: string
  /** The site's public origin; by default the request's (set it behind a proxy). */
  baseUrl?: string
  /** A `login_required` answer is trusted this long before the next silent try. Default 60. */
  silentRetrySeconds?: number
  /** Default: in this process's memory. */
  store?: SessionStore
  /** Clock, ms (tests). */
  now?: () => number
}

export type EndReason = 'replaced' | 'signed_out' | 'expired' | 'revoked' | 'unknown'

/** What page handlers get (`c.get('passport')`, `req.passport`). */
export interface PassportRequestState {
  user: SessionUser | null
  /** Why this browser is signed out, when the passport said (e.g. `replaced`); else null. */
  reason: EndReason | null
  /** The site token, for the site's own API calls on the server; null when signed out. */
  accessToken: string | null
}

export interface IncomingRequest {
  method: string
  /** The full URL as received. */
  url: string
  header(name: string): string | undefined
}

type Headers = [string, string][]

export type SessionAnswer =
  /** The middleware answers by itself (a redirect, the callback, back-channel logout). */
  | { kind: 'respond'; status: number; headers: Headers; body: string | null }
  /** The page's handler runs, with these headers added to its response. */
  | { kind: 'page'; state: PassportRequestState; sessionId: string | null; headers: Headers }
  /** The server-sent event stream of this browser's session (the adapter holds it open). */
  | { kind: 'events'; sessionId: string | null; endedReason: EndReason }

const END_REASONS = new Set<string>(['replaced', 'signed_out', 'expired', 'revoked', 'unknown'])
const AUTH_COOKIE_SECONDS = 600
/** Refresh the site token when it has less than this left. */
const REFRESH_MARGIN_MS = 60_000
const HEARTBEAT_MS = 25_000
const ENDED_MEMORY_MS = 5 * 60_000

const hashId = (value: string) => createHash('sha256').update(value).digest('base64url')
const randomValue = () => randomBytes(32).toString('base64url')
const sameString = (a: string, b: string) => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** A path on this site to come back to; anything else (another origin, `//host`, `/\host`) is `/`. */
export function safeReturnTo(value: unknown): string {
  if (typeof value !== 'string' || value.length > 2048 || !value.startsWith('/')) return '/'
  if (value.startsWith('//') || value.includes('\\') || /\p{Cc}/u.test(value)) return '/'
  const base = 'http://site.invalid'
  const url = new URL(value, base)
  const path = `${url.pathname}${url.search}`
  // Dot segments can normalise into `//host` ("/..//evil"): checked again after parsing.
  return url.origin === base && !path.startsWith('//') ? path : '/'
}

function readCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>()
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0) cookies.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim())
  }
  return cookies
}

/** A top-level page load: the only request worth sending to the passport first. */
function isPageNavigation(req: IncomingRequest): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false
  const mode = req.header('Sec-Fetch-Mode')
  if (mode !== undefined)
    return mode === 'navigate' && (req.header('Sec-Fetch-Dest') ?? 'document') === 'document'
  return (req.header('Accept') ?? '').includes('text/html')
}

const errorPage = (message: string): string =>
  `<!doctype html><meta charset="utf-8"><title>Sign-in</title><p>${message}</p><p><a href="/">Continue</a></p>`

export function createPassportSession(options: PassportSessionOptions) {
  const now = options.now ?? Date.now
  const basePath = (options.basePath ?? '/passport').replace(/\/$/, '')
  const passportBase = (options.internalUrl ?? options.issuer).replace(/\/$/, '')
  const silentRetrySeconds = options.silentRetrySeconds ?? 60
  const store = options.store ?? createMemorySessionStore(now)
  const signed = createSignedCookies(options.cookieSecret, now)
  const verifier = createSiteVerifier({
    issuer: options.issuer,
    siteId: options.siteId,
    clientSecret: options.clientSecret,
    ...(options.internalUrl ? { internalUrl: options.internalUrl } : {}),
    now,
  })
  const clientAuth = `Basic ${Buffer.from(
    `${encodeURIComponent(options.siteId)}:${encodeURIComponent(options.clientSecret)}`,
  ).toString('base64')}`
  const paths = {
    callback: `${basePath}/callback`,
    login: `${basePath}/login`,
    logout: `${basePath}/logout`,
    events: `${basePath}/events`,
    backchannel: `${basePath}/backchannel-logout`,
  }
  // Open event streams per session, and why recently ended sessions ended (a tab that connects
  // just after the end is told at once).
  const watchers = new Map<string, Set<(reason: EndReason) => void>>()
  const ended = new Map<string, { reason: EndReason; until: number }>()

  const originOf = (url: URL) => options.baseUrl?.replace(/\/$/, '') ?? url.origin
  const isSecure = (url: URL) => {
    const site = new URL(originOf(url))
    return site.protocol === 'https:' || site.hostname === 'localhost' || site.hostname.endsWith('.localhost')
  }
  // `__Host-` cookies: Secure, Path=/, no Domain, so no other subdomain can set or read them.
  const cookieNames = (url: URL) => {
    const prefix = isSecure(url) ? '__Host-' : ''
    return {
      session: `${prefix}passport_session`,
      auth: `${prefix}passport_auth`,
      silent: `${prefix}passport_silent`,
    }
  }
  const setCookie = (url: URL, name: string, value: string, maxAgeSeconds?: number): [string, string] => [
    'Set-Cookie',
    `${name}=${value}; Path=/; HttpOnly; SameSite=Lax${isSecure(url) ? '; Secure' : ''}${
      maxAgeSeconds === undefined ? '' : `; Max-Age=${maxAgeSeconds}`
    }`,
  ]
  const clearCookie = (url: URL, name: string) => setCookie(url, name, '', 0)
  const redirect = (location: string, headers: Headers = []): SessionAnswer => ({
    kind: 'respond',
    status: 302,
    headers: [['Location', location], ['Cache-Control', 'no-store'], ...headers],
    body: null,
  })
  const refuse = (url: URL, message: string): SessionAnswer => ({
    kind: 'respond',
    status: 400,
    headers: [
      ['Content-Type', 'text/html; charset=utf-8'],
      ['Cache-Control', 'no-store'],
      clearCookie(url, cookieNames(url).auth),
    ],
    body: errorPage(message),
  })

  const endLocally = (id: string, reason: EndReason) => {
    for (const [key, value] of ended) if (value.until <= now()) ended.delete(key)
    ended.set(id, { reason, until: now() + ENDED_MEMORY_MS })
    for (const tell of watchers.get(id) ?? []) tell(reason)
    watchers.delete(id)
  }

  /** To the passport, from this server, with the site's client credentials. */
  const passportPost = async (path: string, form: Record<string, string>) => {
    const res = await fetch(`${passportBase}${path}`, {
      method: 'POST',
      headers: { Authorization: clientAuth, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
    })
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> }
  }

  /** The redirect to the passport, with the sign-in in flight in a signed cookie. */
  const startSignIn = (url: URL, returnTo: string, silent: boolean): SessionAnswer => {
    const state = randomValue()
    const verifier = randomValue()
    const authorize = new URL('/authorize', options.issuer)
    authorize.search = new URLSearchParams({
      response_type: 'code',
      client_id: options.siteId,
      redirect_uri: `${originOf(url)}${paths.callback}`,
      scope: 'openid',
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      ...(silent ? { prompt: 'none' } : {}),
    }).toString()
    const auth = signed.seal('auth', { state, verifier, returnTo }, AUTH_COOKIE_SECONDS)
    return redirect(authorize.href, [setCookie(url, cookieNames(url).auth, auth, AUTH_COOKIE_SECONDS)])
  }

  const callback = async (url: URL, cookies: Map<string, string>): Promise<SessionAnswer> => {
    const names = cookieNames(url)
    const auth = signed.open('auth', cookies.get(names.auth))
    const params = url.searchParams
    // No sign-in of ours in flight in this browser, or another one: refused (login CSRF: a
    // code planted by someone else never becomes this browser's session).
    if (!auth || !sameString(params.get('state') ?? '', String(auth.state))) {
      return refuse(url, 'This sign-in was not started here, or it expired.')
    }
    // RFC 9207: the answer must come from our passport, not another server mixed up with it.
    if (params.get('iss') !== options.issuer) return refuse(url, 'This sign-in came from the wrong server.')
    const returnTo = safeReturnTo(auth.returnTo)
    const clearAuth = clearCookie(url, names.auth)
    const error = params.get('error')
    if (error !== null) {
      const reason = params.get('reason') ?? ''
      const remembered = signed.seal(
        'silent',
        { reason: END_REASONS.has(reason) ? reason : null },
        silentRetrySeconds,
      )
      return redirect(returnTo, [clearAuth, setCookie(url, names.silent, remembered, silentRetrySeconds)])
    }
    const exchanged = await passportPost('/token', {
      grant_type: 'authorization_code',
      code: params.get('code') ?? '',
      code_verifier: String(auth.verifier),
      redirect_uri: `${originOf(url)}${paths.callback}`,
    })
    const claims = exchanged.status === 200 ? await verifier.verifyIdToken(exchanged.body.id_token) : null
    if (!claims || typeof exchanged.body.access_token !== 'string') {
      return refuse(url, 'The sign-in could not be completed.')
    }
    // Always a new session id, so a planted session cookie never becomes signed in (fixation).
    const cookieValue = randomValue()
    await store.set({
      id: hashId(cookieValue),
      user: { sub: claims.sub, username: claims.username, name: claims.name },
      passportSid: claims.sid,
      accessToken: exchanged.body.access_token,
      accessExpiresAt: now() + Number(exchanged.body.expires_in) * 1000,
      refreshToken: typeof exchanged.body.refresh_token === 'string' ? exchanged.body.refresh_token : null,
      lastSeenAt: now(),
    })
    return redirect(returnTo, [
      clearAuth,
      clearCookie(url, names.silent),
      setCookie(url, names.session, cookieValue),
    ])
  }

  /** The session behind this cookie, its token refreshed when close to expiry; null if it ended. */
  const currentSession = async (cookieValue: string | undefined): Promise<StoredSession | null> => {
    if (!cookieValue || cookieValue.length > 128) return null
    const session = await store.get(hashId(cookieValue))
    if (!session) return null
    if (session.accessExpiresAt - now() > REFRESH_MARGIN_MS) {
      session.lastSeenAt = now()
      return session
    }
    const refreshed = session.refreshToken
      ? await passportPost('/token', {
          grant_type: 'refresh_token',
          refresh_token: session.refreshToken,
        }).catch(() => null)
      : null
    // The passport unreachable: the token serves until it expires; then the session ends.
    if (refreshed === null && session.refreshToken && session.accessExpiresAt > now()) return session
    if (refreshed?.status !== 200 || typeof refreshed.body.access_token !== 'string') {
      await store.delete(session.id)
      const reason = String(refreshed?.body.reason ?? '')
      endLocally(session.id, END_REASONS.has(reason) ? (reason as EndReason) : 'expired')
      return null
    }
    const next: StoredSession = {
      ...session,
      accessToken: refreshed.body.access_token,
      accessExpiresAt: now() + Number(refreshed.body.expires_in) * 1000,
      refreshToken: typeof refreshed.body.refresh_token === 'string' ? refreshed.body.refresh_token : null,
      lastSeenAt: now(),
    }
    await store.set(next)
    return next
  }

  const backchannelLogout = async (req: IncomingRequest, body: string): Promise<SessionAnswer> => {
    const type = (req.header('Content-Type') ?? '').split(';')[0]?.trim()
    const result =
      type === 'application/x-www-form-urlencoded'
        ? await verifier.verifyLogoutToken(new URLSearchParams(body).get('logout_token'))
        : null
    const headers: Headers = [['Cache-Control', 'no-store']]
    if (!result?.ok) return { kind: 'respond', status: 400, headers, body: null }
    const reason = END_REASONS.has(result.reason) ? (result.reason as EndReason) : 'signed_out'
    for (const id of await store.deleteByPassportSid(result.sid)) endLocally(id, reason)
    return { kind: 'respond', status: 200, headers, body: null }
  }

  /** Signs this browser out here and at the passport (every site), and remembers it here. */
  const logout = async (url: URL, sessionId: string | null): Promise<Headers> => {
    const names = cookieNames(url)
    const session = sessionId ? await store.get(sessionId) : null
    if (session) {
      await store.delete(session.id)
      endLocally(session.id, 'signed_out')
      await passportPost('/token/logout', { token: session.accessToken }).catch(() => undefined)
    }
    // Remembered as a silent failure: the next page does not sign straight back in, even if
    // the passport could not be told.
    const remembered = signed.seal('silent', { reason: null }, silentRetrySeconds)
    return [clearCookie(url, names.session), setCookie(url, names.silent, remembered, silentRetrySeconds)]
  }

  /** Decides what a request gets. `body` is read only for the back-channel logout POST. */
  const handle = async (req: IncomingRequest, readBody: () => Promise<string>): Promise<SessionAnswer> => {
    const url = new URL(req.url)
    const names = cookieNames(url)
    const cookies = readCookies(req.header('Cookie'))
    if (url.pathname === paths.callback && req.method === 'GET') return callback(url, cookies)
    if (url.pathname === paths.backchannel && req.method === 'POST')
      return backchannelLogout(req, await readBody())
    if (url.pathname === paths.login && req.method === 'GET') {
      return startSignIn(url, safeReturnTo(url.searchParams.get('return_to')), false)
    }
    const session = await currentSession(cookies.get(names.session))
    if (url.pathname === paths.events && req.method === 'GET') {
      const endedId = hashId(cookies.get(names.session) ?? '')
      return {
        kind: 'events',
        sessionId: session?.id ?? null,
        endedReason: ended.get(endedId)?.reason ?? 'unknown',
      }
    }
    if (url.pathname === paths.logout && req.method === 'POST') {
      // Only this site's own pages may sign out (a cross-site form could otherwise drop the cookie).
      const fetchSite = req.header('Sec-Fetch-Site')
      const origin = req.header('Origin')
      if (
        (fetchSite ?? 'same-origin') !== 'same-origin' ||
        (origin !== undefined && origin !== originOf(url))
      ) {
        return { kind: 'respond', status: 403, headers: [['Cache-Control', 'no-store']], body: null }
      }
      const headers = await logout(url, session?.id ?? null)
      return redirect(safeReturnTo(url.searchParams.get('return_to')), headers)
    }
    if (session) {
      const state = { user: session.user, reason: null, accessToken: session.accessToken }
      return { kind: 'page', state, sessionId: session.id, headers: [] }
    }
    const silent = signed.open('silent', cookies.get(names.silent))
    if (!silent && isPageNavigation(req))
      return startSignIn(url, safeReturnTo(`${url.pathname}${url.search}`), true)
    const reason = typeof silent?.reason === 'string' && END_REASONS.has(silent.reason) ? silent.reason : null
    return {
      kind: 'page',
      state: { user: null, reason: reason as EndReason | null, accessToken: null },
      sessionId: null,
      // A cookie of a session that ended is dropped.
      headers: cookies.has(names.session) ? [clearCookie(url, names.session)] : [],
    }
  }

  /**
   * Holds a session's event stream: a comment now and every 25 s (proxies close quiet
   * connections), `signed_out` with the reason when the session ends, then the end. A session
   * that already ended (or none) is told at once. Returns the function that stops it.
   */
  const openEvents = (
    answer: { sessionId: string | null; endedReason: EndReason },
    write: (chunk: string) => void,
    close: () => void,
  ) => {
    const tell = (reason: EndReason) => {
      write(`event: signed_out\ndata: ${JSON.stringify({ reason })}\n\n`)
      close()
    }
    const { sessionId } = answer
    if (!sessionId) {
      tell(answer.endedReason)
      return () => {}
    }
    write(': signed in\n\n')
    const heartbeat = setInterval(() => write(': heartbeat\n\n'), HEARTBEAT_MS)
    heartbeat.unref?.()
    const listener = (reason: EndReason) => {
      clearInterval(heartbeat)
      tell(reason)
    }
    const set = watchers.get(sessionId) ?? new Set()
    set.add(listener)
    watchers.set(sessionId, set)
    return () => {
      clearInterval(heartbeat)
      set.delete(listener)
      if (set.size === 0) watchers.delete(sessionId)
    }
  }

  return {
    handle,
    openEvents,
    /** For `logout()` in a page handler: the headers that sign this browser out. */
    logout: (requestUrl: string, sessionId: string | null) => logout(new URL(requestUrl), sessionId),
    paths,
  }
}

export type PassportSessionEngine = ReturnType<typeof createPassportSession>
