import type { Handler, MiddlewareHandler } from 'hono'
import {
  createPassportSession,
  type EndReason,
  type PassportRequestState,
  type PassportSessionEngine,
  type PassportSessionOptions,
} from './passport-session.ts'
import type { SessionUser } from './session-store.ts'
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

/** What `passportSession()` puts on the context: the state, and `logout()`. */
export interface PassportContext extends PassportRequestState {
  /** Signs this browser out here and at the passport (every site); its open tabs are told. */
  logout(): Promise<void>
}

export type PassportSessionEnv = {
  Variables: { passportUser: SessionUser | null; passport: PassportContext }
}

/**
 * Hono middleware for a server-rendered site: a first-party session signed in at the passport
 * before the page is rendered (see `passport-session.ts` for the flow). Its routes live under
 * `basePath` (default `/passport`): `/callback` (register it as the site's redirect URI),
 * `/login?return_to=/page`, `POST /logout`, `/events` (server-sent sign-out events for open
 * tabs) and `POST /backchannel-logout` (register it as the back-channel logout URI).
 *
 * @example
 * app.use(passportSession({ issuer, siteId: 'docs', clientSecret, cookieSecret }))
 * app.get('/', (c) => c.html(c.get('passportUser') ? `Signed in as ${c.get('passportUser')?.username}` : 'Signed out'))
 */
export function passportSession(options: PassportSessionOptions): MiddlewareHandler<PassportSessionEnv> {
  const engine = createPassportSession(options)
  return async (c, next) => {
    const answer = await engine.handle(
      { method: c.req.method, url: c.req.url, header: (name) => c.req.header(name) },
      () => c.req.text(),
    )
    if (answer.kind === 'respond') {
      return new Response(answer.body, { status: answer.status, headers: answer.headers })
    }
    if (answer.kind === 'events') return eventStream(engine, answer)
    for (const [name, value] of answer.headers) c.header(name, value, { append: true })
    let sessionId = answer.sessionId
    c.set('passportUser', answer.state.user)
    c.set('passport', {
      ...answer.state,
      logout: async () => {
        for (const [name, value] of await engine.logout(c.req.url, sessionId)) {
          c.header(name, value, { append: true })
        }
        sessionId = null
      },
    })
    await next()
    return undefined
  }
}

function eventStream(
  engine: PassportSessionEngine,
  answer: { sessionId: string | null; endedReason: EndReason },
): Response {
  const encoder = new TextEncoder()
  let stop = () => {}
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      stop = engine.openEvents(
        answer,
        (chunk) => {
          try {
            controller.enqueue(encoder.encode(chunk))
          } catch {} // the tab went away meanwhile
        },
        () => {
          try {
            controller.close()
          } catch {}
        },
      )
    },
    cancel: () => stop(),
  })
  return new Response(body, {
    headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' },
  })
}
