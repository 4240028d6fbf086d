import { readAuthkeySite } from '../protocol/authkey-hint.ts'
import type { EndReason, ErrorCode } from '../protocol/codes.ts'
import { parsePageRequest } from '../protocol/guards.ts'
import type { FrameMessage, PageRequest } from '../protocol/messages.ts'
import { isAllowedOrigin } from '../protocol/origins.ts'
import type { ApprovalsDeps } from './approvals.ts'
import type { LiveChannel, LiveDeps } from './live.ts'
import type { createRefresher, LockManagerLike, Refresher } from './refresher.ts'
import { FrameApiError, type ServerApi, type TokenAnswer } from './server-api.ts'
import type { answerRequest, RequestContext } from './session-requests.ts'
import type { SharedHooks, SharedState } from './shared-state.ts'
import { type CachedToken, type TokenCache, toCacheEntry } from './token-cache.ts'

/** What the agent gives the live channel; the browser adds its parts (socket, storage, proofs). */
export type LiveOpenDeps = Omit<
  LiveDeps,
  'wsOrigin' | 'openSocket' | 'openChannel' | 'storage' | 'prove' | 'onApproval'
> &
  Pick<ApprovalsDeps, 'setVisible' | 'serverNow'>
/** The live channel and the approval prompt its requests open. */
export type LiveSession = LiveChannel & { clearPrompt(): void }

/** The frame's on-demand session code (`session.ts`, `/frame-session.js`), as the agent uses it. */
export interface SessionModule {
  createRefresher: typeof createRefresher
  answerRequest: typeof answerRequest
}

export interface FrameSite {
  id: string
  origins: string[]
}

/** The slice of `window` the agent uses; a fake one in unit tests. */
export interface FrameWindow {
  parent: { postMessage(message: unknown, targetOrigin: string): void }
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void
}

export interface FrameAgentDeps {
  site: FrameSite
  win: FrameWindow
  api: ServerApi
  cache: TokenCache
  /**
   * The scheduled refresh and the page's occasional requests (`session.ts`), loaded on demand
   * (`/frame-session.js`, with the live channel) once the frame holds a sign-in or needs them.
   */
  loadSession: () => Promise<SessionModule>
  /** Whether the browser lets this frame send the passport's own cookies (third-party cookies allowed). */
  canSeeCookies: () => Promise<boolean>
  /**
   * Opens the live channel with the browser's parts and the approval prompt (`session.ts`, loaded
   * on demand once the frame holds or hands out a sign-in); without it (unit tests) the frame
   * only pulls.
   */
  live?: (deps: LiveOpenDeps) => Promise<LiveSession>
  /**
   * FedCM-connected sites only: the passport-wide state shared through storage access
   * (`shared-state.ts`, loaded on demand), which acts on its news through `hooks`. Resolves null
   * where the browser gives no access.
   */
  connectShared?: (hooks: SharedHooks) => Promise<SharedState | null>
  /**
   * Draws "Continue with Passport" (`continue-button.ts`, loaded on demand): its click asks the
   * browser for storage access, then calls `signIn` (rejects without a passport session). Absent in unit tests without a DOM.
   */
  showContinue?: (hooks: { signIn: () => Promise<void>; setVisible: (visible: boolean) => void }) => void
  /** A DPoP proof by the frame's key (for the site backend's URLs; see `proof_request`). */
  proveForSite?: (request: { method: string; url: string; accessToken: string }) => Promise<string>
  /** Web Locks of the frame's partition (`navigator.locks`); null where there are none. */
  locks?: LockManagerLike | null
  now?: () => number
  setTimer?: (fn: () => void, ms: number) => unknown
  clearTimer?: (handle: unknown) => void
  log?: (event: string, detail?: Record<string, unknown>) => void
}

/**
 * Requests from the page that may reach the server, handled per second; the excess is answered
 * `rate_limited` without touching the server or the queue (attack A10: a page flooding its
 * frame must not turn into a flood on the passport). An SDK sends a few on a page load. Not
 * counted: `hello`, and a token request the cache answers (no server call, however many).
 */
export const FRAME_MESSAGES_PER_SECOND = 10

/**
 * The passport frame's message handling: the site's token broker.
 *
 * Inbound order of checks (penpal, auth0 runIframe): `event.source` must be our parent, then
 * `event.origin` must byte-equal one of the site's registered origins, then the message must
 * be one of the known shapes. A sender failing the first two gets no reply at all: telling an
 * unregistered origin anything would be telling it something. Every reply goes to the exact
 * origin bound at `hello`, never to '*'.
 */
export function createFrameAgent(deps: FrameAgentDeps): void {
  const { site, win, api, cache } = deps
  const now = deps.now ?? (() => Date.now())
  const log = deps.log ?? (() => {})
  let bound: { origin: string; authkey: string } | null = null
  let queue: Promise<void> = Promise.resolve()
  let budget = { start: Number.NEGATIVE_INFINITY, count: 0 }
  /** Counts one request in this second's window; false past the limit (logged once per window). */
  const withinBudget = (): boolean => {
    const t = now()
    if (t - budget.start >= 1000) budget = { start: t, count: 0 }
    budget.count += 1
    if (budget.count === FRAME_MESSAGES_PER_SECOND + 1) log('pm_rate_limited')
    return budget.count <= FRAME_MESSAGES_PER_SECOND
  }

  const reply = (origin: string, message: FrameMessage) => win.parent.postMessage(message, origin)
  const replyError = (origin: string, id: string, code: ErrorCode, reason?: EndReason) =>
    reply(origin, { v: 1, type: 'error', id, code, ...(reason ? { reason } : {}) })

  /**
   * The refresher, loaded on first need: a frame holding a sign-in schedules its refresh, an
   * expired token or a forced refresh runs one. A chunk that could not be fetched is a passing
   * failure (`temporarily_unavailable`), fetched again on the next need.
   */
  let session: Promise<SessionModule> | null = null
  const loadSession = (): Promise<SessionModule> =>
    (session ??= deps.loadSession().catch(() => {
      session = null
      throw new FrameApiError('temporarily_unavailable')
    }))
  let refresher: Promise<Refresher> | null = null
  const withRefresher = (): Promise<Refresher> =>
    (refresher ??= loadSession().then(
      (m) =>
        m.createRefresher({
          siteId: site.id,
          api,
          cache,
          authkey: () => bound?.authkey ?? null,
          locks: deps.locks ?? null,
          now,
          ...(deps.setTimer ? { setTimer: deps.setTimer } : {}),
          ...(deps.clearTimer ? { clearTimer: deps.clearTimer } : {}),
          log,
          // The refresh credential died (signed out, replaced, revoked, expired): tell the page now.
          onSignedOut: (reason) => signedOut(reason),
        }),
      (err: unknown) => {
        refresher = null
        throw err
      },
    ))
  const schedule = () =>
    void withRefresher().then(
      (r) => r.schedule(),
      () => {},
    )
  /** Stops a loaded refresher's timer (one never loaded has none). */
  const stopRefresher = () =>
    void refresher?.then(
      (r) => r.stop(),
      () => {},
    )

  /** Asks the page this frame is bound to (only it) to show or hide the frame. */
  const display = (visible: boolean) => bound && reply(bound.origin, { v: 1, type: 'frame_display', visible })

  /** The sign-in ended (pushed, or learnt on a refresh or re-check): forget it, tell the page. */
  const signedOut = (reason: EndReason) => {
    stopRefresher()
    clearPrompt()
    cache.clear()
    if (bound) reply(bound.origin, { v: 1, type: 'session_event', event: 'signed_out', reason })
  }

  const tokenRefreshed = () => bound && reply(bound.origin, { v: 1, type: 'token_refreshed' })

  /**
   * The live channel, opened on first use (its code is fetched then): by a frame that holds a
   * sign-in or hands one out, which from then on also hears its site's other tabs. Calls keep
   * their order; a chunk that failed to load is fetched again on the next call, and a start asked
   * for meanwhile happens then.
   */
  let live: Promise<LiveSession | null> | null = null
  let startAsked = false
  const withLive = (use: (channel: LiveSession) => void) => {
    const open = deps.live
    if (!open) return
    live ??= open({
      siteId: site.id,
      token: async () => (await liveToken())?.token ?? null,
      authkey: () => bound?.authkey ?? null,
      check: api.check,
      locks: deps.locks ?? null,
      onEnded: signedOut,
      // Only the page this frame is bound to is asked; it learns that a prompt is up, never its numbers.
      setVisible: display,
      serverNow: () => now() + (cache.readRenewable()?.clockOffsetMs ?? 0),
      // "Refresh now" from the passport: the usual forced refresh (at most once per 30 s), then
      // the page is told so that its onChange sees the new expiry.
      onRefreshNow: async () => {
        const before = cache.read()?.token
        const changed = (await (await withRefresher()).refresh(true)).token !== before
        if (changed) tokenRefreshed()
        return changed
      },
      onRefreshed: () => tokenRefreshed(),
      ...(deps.setTimer ? { setTimer: deps.setTimer } : {}),
      log,
    }).then(
      (channel) => {
        startIfAsked(channel)
        return channel
      },
      () => {
        live = null
        return null
      },
    )
    void live.then((channel) => channel && use(channel))
  }
  /** Takes any approval prompt down (one never loaded shows none). */
  const clearPrompt = () => void live?.then((l) => l?.clearPrompt())
  const startIfAsked = (channel: LiveChannel) => {
    if (!startAsked) return
    startAsked = false
    channel.start()
  }
  const startLive = () => {
    startAsked = true
    withLive(startIfAsked)
  }

  const remember = (answer: TokenAnswer): CachedToken => {
    const entry = toCacheEntry(answer, now())
    cache.write(entry)
    schedule()
    startLive()
    return entry
  }
  /** The answer handing a token to the page; from then on this frame hears its site's other tabs. */
  const tokenReply = (
    id: string,
    entry: Pick<CachedToken, 'token' | 'expiresAt' | 'clockOffsetMs'>,
  ): FrameMessage => {
    withLive(() => {})
    return {
      v: 1,
      type: 'token_response',
      id,
      token: entry.token,
      expiresAt: entry.expiresAt,
      expiresIn: Math.max(0, entry.expiresAt - (now() + entry.clockOffsetMs)),
    }
  }
  /** A live token: the cached one, else one refreshed from the cached refresh credential. */
  const liveToken = async (): Promise<CachedToken | null> => {
    const cached = cache.read()
    if (cached) return cached
    if (cache.readRenewable()?.refreshToken) return (await withRefresher()).refresh(false)
    return null
  }

  const requestContext: RequestContext = {
    origins: site.origins,
    api,
    cache,
    now,
    liveToken,
    proveForSite: deps.proveForSite,
  }

  /** A token from the passport session (whose cookie reaches this frame now); the page is told. */
  const signInFromSession = async (authkey: string) => {
    remember(await api.tokenFromSession(authkey))
    if (bound) reply(bound.origin, { v: 1, type: 'session_event', event: 'signed_in' })
  }

  const connectShared = () =>
    deps
      .connectShared?.({
        run: (task) => {
          queue = queue.then(task)
        },
        authkey: () => bound?.authkey ?? null,
        held: () => cache.readRenewable(),
        signIn: signInFromSession,
        check: api.check,
        signedOut,
      })
      .catch(() => null) ?? Promise.resolve(null)
  let shared = connectShared()

  const handle = async (msg: PageRequest, origin: string): Promise<void> => {
    if (msg.type === 'hello') {
      if (readAuthkeySite(msg.authkey) !== site.id) {
        replyError(origin, msg.id, 'invalid_authkey')
        return
      }
      bound = { origin, authkey: msg.authkey }
      if (cache.readRenewable()) {
        schedule()
        startLive()
      }
      reply(origin, { v: 1, type: 'ready', id: msg.id, hasToken: cache.readRenewable() !== null })
      return
    }
    if (!bound) {
      replyError(origin, msg.id, 'invalid_request')
      return
    }
    const { authkey } = bound
    try {
      switch (msg.type) {
        case 'continue': {
          // The page asks when it is signed out (a frame holding a sign-in would only take another).
          reply(origin, { v: 1, type: 'ready', id: msg.id, hasToken: cache.readRenewable() !== null })
          // The click grants storage access: the passport's own cookie goes with the request then.
          deps.showContinue?.({ setVisible: display, signIn: () => signInFromSession(authkey) })
          return
        }
        case 'token_request': {
          const live = await liveToken()
          if (live) {
            reply(origin, tokenReply(msg.id, live))
            return
          }
          // With third-party cookies allowed the frame can sign in from the passport session
          // directly; where they are blocked it does not even try (no pointless request).
          // Storage access (FedCM-connected sites) comes before the question; a frame that holds
          // it sends the passport's cookie, so the browser need not be asked again (issue 17).
          if (!(await shared) && !(await deps.canSeeCookies())) {
            replyError(origin, msg.id, 'login_required')
            return
          }
          reply(origin, tokenReply(msg.id, remember(await api.tokenFromSession(authkey))))
          return
        }
        case 'code_exchange': {
          const entry = remember(await api.exchangeCode(authkey, msg.code, msg.codeVerifier, msg.redirectUri))
          reply(origin, tokenReply(msg.id, entry))
          // A FedCM sign-in has just granted this frame storage access: connect if not yet.
          shared = shared.then((s) => s ?? connectShared())
          void shared.then((s) => s?.announce('signed_in'))
          return
        }
        case 'refresh': {
          reply(origin, tokenReply(msg.id, await (await withRefresher()).refresh(true)))
          return
        }
        case 'proof_request':
        case 'check': {
          reply(origin, await (await loadSession()).answerRequest(requestContext, msg, authkey))
          return
        }
        case 'logout': {
          // Even a token past its expiry still names the session to end.
          const cached = cache.readRenewable()
          stopRefresher()
          withLive((l) => l.announceEnded('signed_out'))
          clearPrompt()
          cache.clear()
          if (cached) await api.logout(authkey, cached.token)
          void shared.then((s) => s?.announce('signed_out'))
          reply(origin, { v: 1, type: 'logged_out', id: msg.id })
          return
        }
      }
    } catch (err) {
      if (err instanceof FrameApiError) replyError(origin, msg.id, err.code, err.reason)
      else replyError(origin, msg.id, 'server_error')
    }
  }

  win.addEventListener('message', (event: MessageEvent) => {
    if (event.source !== win.parent || (win.parent as unknown) === win) {
      log('pm_source_rejected')
      return
    }
    if (!isAllowedOrigin(event.origin, site.origins) || (bound && bound.origin !== event.origin)) {
      log('pm_origin_rejected', { origin: event.origin })
      return
    }
    const msg = parsePageRequest(event.data)
    if (!msg) {
      log('pm_schema_rejected')
      const id = (event.data as { id?: unknown } | null)?.id
      if (typeof id === 'string' && id.length <= 64) replyError(event.origin, id, 'invalid_request')
      return
    }
    const answeredLocally = msg.type === 'hello' || (msg.type === 'token_request' && cache.read() !== null)
    if (!answeredLocally && !withinBudget()) {
      replyError(event.origin, msg.id, 'rate_limited')
      return
    }
    // One message at a time, in order: a token request never overtakes the exchange before it.
    queue = queue.then(() => handle(msg, event.origin))
  })
}
