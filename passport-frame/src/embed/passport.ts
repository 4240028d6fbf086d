import { readAuthkeySite } from '../protocol/authkey-hint.ts'
import { type EndReason, isEndReason } from '../protocol/codes.ts'
import type { FrameReply } from '../protocol/messages.ts'
import { parseExactOrigin } from '../protocol/origins.ts'
import { isPassingFailure, retryDelayMs } from '../protocol/retry.ts'
import type { ExtrasContext } from './extras.ts'
import { loadExtras } from './extras-loader.ts'
import { createFrameClient, type FrameClient, PassportClientError } from './frame-client.ts'
import { createHintStore } from './hint.ts'
import { pkceChallenge, randomToken } from './pkce.ts'

export { PassportClientError }

/** Asking the frame again after a passing failure: 1 s, 2 s, 4 s … 30 s, each jittered. */
const RETRY = { startMs: 1_000, maxMs: 30_000 }

/**
 * Whether `err` is the passport's verdict on the sign-in (`login_required`, `invalid_grant` with
 * its reason, …). Only a verdict signs a page out: a timeout, an unreachable or busy passport
 * (@see issue 14: a passing outage looked like a sign-out) leaves the sign-in as it was.
 */
const isVerdict = (err: unknown): err is PassportClientError =>
  err instanceof PassportClientError && !isPassingFailure(err.code)

export interface PassportOptions {
  /** The site's authkey, as printed by `passport site add`. */
  authkey: string
  /** Origin of the passport server, e.g. `https://passport.example.com`. */
  passportOrigin: string
  /** Registered redirect URI the passport returns to. Default: this origin + `/`. */
  redirectUri?: string
  /** Leave silently for the passport when this site has no sign-in yet. Default true. */
  silent?: boolean
  /** After a silent attempt found no sign-in, wait this long before another. Default 60. */
  silentRetrySeconds?: number
  /**
   * The site is registered with `--fedcm true`: where the browser has FedCM, sign in through its
   * own "Continue as" dialog with no navigation (docs/fedcm.md). Default false.
   */
  fedcm?: boolean
  /**
   * With `fedcm`, the FedCM request a page load makes when no sign-in is known here: `optional`
   * (default) may show the browser's account chooser; `silent` never shows any browser UI (it
   * signs in only on a site the user chose the passport on before, else the silent hop follows),
   * so the chooser waits for `login({ mode: 'fedcm' })`. Script tag: `data-fedcm-on-load="silent"`.
   */
  fedcmOnLoad?: 'optional' | 'silent'
}

export type PassportState =
  | { status: 'loading' }
  | { status: 'signed_in'; expiresAt: number }
  | { status: 'signed_out'; reason: EndReason | null }

export interface CheckResult {
  valid: boolean
  reason: EndReason | null
  expiresAt: number | null
  serverTime: number
}

export interface Passport {
  readonly siteId: string
  /** The current state; `ready` resolves once it is no longer `loading`. */
  readonly state: PassportState
  readonly ready: Promise<PassportState>
  /** The site-bound token for this site. Rejects with `PassportClientError` (`login_required`, …). */
  getToken(): Promise<string>
  /** Asks the passport whether the current token is still valid, and why not. */
  check(): Promise<CheckResult>
  /**
   * Signs in. By default goes to the passport sign-in page and comes back signed in; with
   * `{ mode: 'fedcm' }`, where the browser has FedCM and the site opted in, the browser's own
   * account chooser signs the page in without leaving it (falling back to the redirect).
   */
  login(options?: { mode?: 'redirect' | 'fedcm' }): Promise<PassportState>
  /** Refreshes the token now (the frame normally does it on its own, minutes before expiry). */
  refresh(): Promise<string>
  /**
   * Headers for a request to this site's own backend (`url` on one of its registered origins):
   * `Authorization: DPoP <token>` and a `DPoP` proof by the frame's key for exactly this method
   * and URL. Sites registered with `--dpop-bound-tokens` need them; any site may use them.
   *
   * @example
   * fetch('/api/me', { headers: await passport.authHeaders('GET', new URL('/api/me', location.href).href) })
   */
  authHeaders(method: string, url: string): Promise<{ Authorization: string; DPoP: string }>
  /**
   * Shows the frame's "Continue with Passport" button (for browsers without FedCM): a click there
   * asks the browser for storage access, and the page signs in with no password (`onChange`).
   */
  showContinueButton(): void
  /** Ends the passport session (on every site) and forgets the token here. */
  logout(): Promise<void>
  /** Called on every state change; returns an unsubscribe function. */
  onChange(listener: (state: PassportState) => void): () => void
  destroy(): void
}

/**
 * Connects a page to the passport.
 *
 * @example
 * const passport = createPassport({ authkey, passportOrigin: 'https://passport.example.com' })
 * passport.onChange((state) => render(state))
 * const token = await passport.getToken() // send it to your backend
 */
export function createPassport(options: PassportOptions): Passport {
  const siteId = readAuthkeySite(options.authkey)
  if (!siteId) throw new PassportClientError('invalid_authkey')
  const passportOrigin = parseExactOrigin(options.passportOrigin)
  if (!passportOrigin) throw new PassportClientError('invalid_request')
  const redirectUri = options.redirectUri ?? `${location.origin}/`
  const silentRetryMs = (options.silentRetrySeconds ?? 60) * 1000
  const store = createHintStore(siteId)
  const listeners = new Set<(state: PassportState) => void>()

  let state: PassportState = { status: 'loading' }
  // `deadline` is on this page's clock (now + the time left by the server's clock), so a wrong
  // local clock never makes a live token look dead or a dead one look alive.
  let current: { token: string; deadline: number } | null = null
  let frame: FrameClient | null = null
  let destroyed = false

  const setState = (next: PassportState) => {
    state = next
    if (next.status === 'signed_in')
      store.writeHint({ status: 'signed_in', expiresAt: current?.deadline ?? 0 })
    if (next.status === 'signed_out') {
      current = null
      store.writeHint({ status: 'signed_out', reason: next.reason, at: Date.now() })
    }
    for (const listener of listeners) listener(next)
  }
  const signedIn = (reply: FrameReply): PassportState => {
    if (reply.type !== 'token_response') throw new PassportClientError('server_error')
    current = { token: reply.token, deadline: Date.now() + reply.expiresIn }
    setState({ status: 'signed_in', expiresAt: current.deadline })
    return state
  }
  const signedOut = (reason: EndReason | null | undefined): PassportState => {
    setState({ status: 'signed_out', reason: reason ?? null })
    return state
  }

  const ask = (body: Parameters<FrameClient['request']>[0]): Promise<FrameReply> => {
    if (!frame) {
      const created = createFrameClient({
        passportOrigin,
        frameUrl: `${passportOrigin}/frame/${siteId}`,
        display: (iframe, visible, hidden) =>
          void more().then(
            (m) => m.display(iframe, visible, hidden),
            () => {},
          ),
        onEvent: (event) => {
          if (event.type === 'token_refreshed') {
            // A refresh the passport asked for: take the new token (and its expiry) from the frame.
            if (state.status === 'signed_in') takeToken()
          } else if (event.event === 'signed_out') signedOut(event.reason)
          else if (state.status !== 'signed_in')
            ask({ type: 'token_request' }).then(signedIn, () => undefined)
        },
      })
      frame = created
      // The first question goes right behind the hello, not after its answer (one round trip
      // less before the first token, issue 17): the frame takes a page's messages in order. A
      // frame that did not answer hello (it loaded while the passport was down) never will: drop
      // it, so that the next question loads a fresh one (its pending questions fail `timeout`).
      created.request({ type: 'hello', authkey: options.authkey }).catch((err: PassportClientError) => {
        if (frame === created && err.code === 'timeout') {
          created.destroy()
          frame = null
        }
      })
    }
    return frame.request(body)
  }

  /** Top-level trip to the passport; `silent` asks it to answer at once, never with a form. */
  const leaveForPassport = async (silent: boolean): Promise<never> => {
    const codeVerifier = randomToken()
    const pendingState = randomToken()
    const challenge = pkceChallenge(codeVerifier) // hashed while the rest is written
    store.putPending({
      state: pendingState,
      codeVerifier,
      redirectUri,
      returnTo: location.href.split('#')[0] as string,
    })
    const url = new URL('/authorize', passportOrigin)
    url.search = new URLSearchParams({
      response_type: 'code',
      response_mode: 'fragment',
      client_id: siteId,
      redirect_uri: redirectUri,
      state: pendingState,
      code_challenge: await challenge,
      code_challenge_method: 'S256',
      ...(silent ? { prompt: 'none' } : {}),
    }).toString()
    if (silent) {
      store.markSilentAttempt(Date.now())
      location.replace(url) // no history entry: Back never lands on the passport hop
    } else {
      location.assign(url)
    }
    return new Promise<never>(() => {}) // the page is going away
  }

  /**
   * The occasional parts (`extras.ts`: check, refresh, proofs, FedCM, showing the frame), fetched
   * on first use; a fetch that failed is a passing failure, tried again on the next use.
   */
  let extras: ReturnType<typeof loadExtras> | null = null
  const more = () =>
    (extras ??= loadExtras(passportOrigin).catch(() => {
      extras = null
      throw new PassportClientError('temporarily_unavailable')
    }))
  const ctx: ExtrasContext = {
    passportOrigin,
    siteId,
    ask,
    signedIn,
    signedOut,
    token: () => (current as { token: string }).token,
    isVerdict,
    fail: (code) => new PassportClientError(code),
    randomToken,
    pkceChallenge,
  }
  /**
   * FedCM (where the browser has it and the site opted in); null if it gave nothing, or at once
   * where it is not usable. `silent`: Chromium signs in by itself ("auto-reauthentication", a
   * brief notice and no click) only where the user chose the passport on this site before, in
   * this browser, at most once per 10 minutes per site; anywhere else it refuses at once with no
   * UI (docs/fedcm.md).
   */
  const fedcmUsable = options.fedcm === true && 'IdentityCredential' in window
  const signInWithFedcm = async (mediation: CredentialMediationRequirement): Promise<PassportState | null> =>
    fedcmUsable
      ? more().then(
          (m) => m.fedcm(ctx, mediation),
          () => null,
        )
      : null

  /** The passport's answer in this URL's fragment, if it is one we are waiting for. */
  const takeCallback = () => {
    if (!location.hash.includes('state=')) return null
    const params = new URLSearchParams(location.hash.slice(1))
    const returnedState = params.get('state')
    if (!returnedState || !(params.has('code') || params.has('error'))) return null
    history.replaceState(history.state, '', location.href.split('#')[0])
    const pending = store.takePending()
    const iss = params.get('iss')
    if (!pending || pending.state !== returnedState || (iss !== null && iss !== passportOrigin)) return null
    return { pending, code: params.get('code'), error: params.get('error'), reason: params.get('reason') }
  }

  const start = async (): Promise<PassportState> => {
    const callback = takeCallback()
    if (callback?.code) {
      // Back from the passport: the extras come while the frame exchanges the code, so that a
      // DPoP site's first request (`authHeaders`) does not wait for them after it.
      more().catch(() => {})
      try {
        signedIn(
          await ask({
            type: 'code_exchange',
            code: callback.code,
            codeVerifier: callback.pending.codeVerifier,
            redirectUri: callback.pending.redirectUri,
          }),
        )
        if (callback.pending.returnTo !== location.href.split('#')[0])
          location.replace(callback.pending.returnTo)
        return state
      } catch (err) {
        return signedOut(err instanceof PassportClientError ? err.reason : null)
      }
    }
    if (callback) {
      // A FedCM site's frame tells a signed-out page of a sign-in made on another such site.
      if (fedcmUsable) takeToken()
      return signedOut(isEndReason(callback.reason) ? callback.reason : null)
    }

    const hint = store.readHint()
    const silentAllowed = options.silent !== false && Date.now() - store.lastSilentAttempt() > silentRetryMs
    if (hint?.status === 'signed_in') {
      // Fast revisit: the frame answers from its cache (or refreshes from the refresh
      // credential it keeps), no passport round trip. While the passport cannot be reached the
      // page stays `loading` and asks again, with backoff: only a verdict signs it out.
      for (let attempt = 0; ; attempt++) {
        try {
          return signedIn(await ask({ type: 'token_request' }))
        } catch (err) {
          if (isVerdict(err)) {
            if (silentAllowed && err.code === 'login_required') {
              // A returning FedCM site may be signed in again by the browser with no dialog.
              return (await signInWithFedcm('silent')) ?? leaveForPassport(true)
            }
            return signedOut(err.reason)
          }
          await new Promise((resolve) => setTimeout(resolve, retryDelayMs(attempt, RETRY)))
          if (destroyed) return state
        }
      }
    }
    // FedCM-connected: the frame may see the passport session already (storage access), else
    // the browser's own chooser signs in here (on a returning site `optional` is the same
    // dialog-free auto-reauthentication as `silent`); only then the top-level hop.
    if (fedcmUsable && silentAllowed) {
      try {
        return signedIn(await ask({ type: 'token_request' }))
      } catch {}
      store.markSilentAttempt(Date.now())
      const viaFedcm = await signInWithFedcm(options.fedcmOnLoad === 'silent' ? 'silent' : 'optional')
      if (viaFedcm) return viaFedcm
    }
    // No sign-in known here: one silent trip, at most once per `silentRetrySeconds` for this
    // site across tabs, so a signed-out visitor can never be caught in a redirect loop.
    if (silentAllowed) return leaveForPassport(true)
    // Signed out here: where the browser lets the frame see the passport session, it can still
    // sign this site in without any navigation.
    try {
      return signedIn(await ask({ type: 'token_request' }))
    } catch {
      // No chooser here (the site asked within its silent limit): only the dialog-free FedCM.
      return (
        (await signInWithFedcm('silent')) ?? signedOut(hint?.status === 'signed_out' ? hint.reason : null)
      )
    }
  }

  /** The frame's current token, when another tab or the passport made a new one. */
  const takeToken = () => void ask({ type: 'token_request' }).then(signedIn, () => undefined)
  const ready = start()
  const afterReady = <T>(use: (m: Awaited<ReturnType<typeof loadExtras>>) => Promise<T>) =>
    ready.then(more).then(use)

  // Another tab of this site signed in (it wrote the hint in the site's own storage): this tab
  // takes the token from the frame, which the tabs share, with no navigation and no reload.
  const onStorage = (event: StorageEvent) => {
    if (event.key !== store.hintKey || state.status !== 'signed_out') return
    if (store.readHint()?.status !== 'signed_in') return
    takeToken()
  }
  window.addEventListener('storage', onStorage)

  return {
    siteId,
    get state() {
      return state
    },
    ready,
    getToken: async () => {
      await ready
      if (current && current.deadline > Date.now() + 30_000) return current.token
      if (state.status !== 'signed_in') {
        throw new PassportClientError(
          'login_required',
          state.status === 'signed_out' ? (state.reason ?? undefined) : undefined,
        )
      }
      const held = current
      try {
        const reply = await ask({ type: 'token_request' })
        signedIn(reply)
        return (current as unknown as { token: string }).token
      } catch (err) {
        if (isVerdict(err)) {
          signedOut(err.reason)
          throw err
        }
        // A passing failure: the token this page holds still serves while it lasts.
        if (held && held.deadline > Date.now()) return held.token
        throw err
      }
    },
    check: () => afterReady((m) => m.check(ctx)),
    refresh: () => afterReady((m) => m.refresh(ctx)),
    authHeaders: (method, url) => afterReady((m) => m.authHeaders(ctx, method, url)),
    login: async (how) => {
      // FedCM where usable (else null at once), with the redirect as the fallback.
      return (how?.mode === 'fedcm' && (await signInWithFedcm('optional'))) || leaveForPassport(false)
    },
    showContinueButton: () => void ask({ type: 'continue' }).catch(() => {}),
    logout: async () => {
      try {
        await ask({ type: 'logout' })
      } finally {
        signedOut('signed_out')
      }
    },
    onChange: (listener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    destroy: () => {
      destroyed = true
      window.removeEventListener('storage', onStorage)
      frame?.destroy()
      frame = null
      listeners.clear()
    },
  }
}
