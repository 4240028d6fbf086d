import { afterEach, describe, expect, it, vi } from 'vitest'
import { createFrameAgent } from '../frame/agent.ts'
import { createRefresher } from '../frame/refresher.ts'
import { FrameApiError, type ServerApi, type TokenAnswer } from '../frame/server-api.ts'
import { answerRequest } from '../frame/session-requests.ts'
import { createTokenCache } from '../frame/token-cache.ts'
import {
  type FakeBrowser,
  type FakeWindow,
  fakeAuthkey,
  installBrowser,
  MemoryStorage,
  settle,
} from '../test-support/fake-window.ts'
import { createPassport, type Passport, PassportClientError, type PassportState } from './passport.ts'
import { pkceChallenge } from './pkce.ts'

const PASSPORT = 'http://passport.localhost:8080'
const NEWS = 'http://news.localhost:8081'
const authkey = fakeAuthkey('news')
const LIFETIME_MS = 10 * 60_000

/**
 * A page on News with the real frame agent running in the iframe the SDK creates; only the
 * passport server behind the frame is faked.
 */
function setup(
  options: {
    url?: string
    canSeeCookies?: () => Promise<boolean>
    /** The first frames load an error page (the passport was down): no agent answers there. */
    deadFrames?: number
  } = {},
) {
  const frameStorage = new MemoryStorage()
  const frameCache = createTokenCache('news', frameStorage)
  const answer = (token: string): TokenAnswer => ({
    token,
    expiresAt: Date.now() + LIFETIME_MS,
    serverTime: Date.now(),
    refreshToken: 'r'.repeat(43),
    refreshAt: Date.now() + LIFETIME_MS - 60_000,
    refreshExpiresAt: Date.now() + 86_400_000,
  })
  const api = {
    exchangeCode: vi.fn<ServerApi['exchangeCode']>(async () => answer('tok-from-code')),
    tokenFromSession: vi.fn<ServerApi['tokenFromSession']>(async () => answer('tok-from-session')),
    check: vi.fn<ServerApi['check']>(async () => ({
      valid: true,
      reason: null,
      expiresAt: Date.now() + LIFETIME_MS,
      serverTime: Date.now(),
    })),
    logout: vi.fn<ServerApi['logout']>(async () => {}),
    refresh: vi.fn<ServerApi['refresh']>(async () => answer('tok-from-refresh')),
    post: vi.fn<ServerApi['post']>(async () => ({})),
  }
  const frames: FakeWindow[] = []
  const browser = installBrowser({
    url: options.url ?? `${NEWS}/`,
    onFrame: (win) => {
      frames.push(win)
      if (frames.length <= (options.deadFrames ?? 0)) return
      createFrameAgent({
        site: { id: 'news', origins: [NEWS] },
        win,
        api,
        cache: frameCache,
        loadSession: async () => ({ createRefresher, answerRequest }),
        canSeeCookies: options.canSeeCookies ?? (async () => false),
        setTimer: () => 0,
        clearTimer: () => {},
      })
    },
  })
  return { browser, api, frames, frameCache }
}

let browser: FakeBrowser | undefined
let passport: Passport | undefined
afterEach(() => {
  passport?.destroy()
  browser?.uninstall()
  passport = undefined
  browser = undefined
})

function start(env: ReturnType<typeof setup>, options: Partial<Parameters<typeof createPassport>[0]> = {}) {
  browser = env.browser
  passport = createPassport({ authkey, passportOrigin: PASSPORT, ...options })
  return passport
}

const waitFor = (check: () => void) => vi.waitFor(check, { timeout: 2000, interval: 2 })

const seedSilentAttempt = (b: FakeBrowser, msAgo: number) =>
  b.localStorage.setItem('passport:news:silent_at', String(Date.now() - msAgo))
const seedPending = (b: FakeBrowser, pending: Record<string, string>) =>
  b.sessionStorage.setItem('passport:news:pending', JSON.stringify(pending))
const seedHint = (b: FakeBrowser, hint: unknown) =>
  b.localStorage.setItem('passport:news:hint', JSON.stringify(hint))

const pending = {
  state: 'state-123',
  codeVerifier: 'verifier-123',
  redirectUri: `${NEWS}/`,
  returnTo: `${NEWS}/article/7`,
}
const callbackUrl = (fragment: Record<string, string>) => `${NEWS}/#${new URLSearchParams(fragment)}`

describe('createPassport', () => {
  it('refuses an authkey without a readable site', () => {
    const env = setup()
    browser = env.browser
    expect(() => createPassport({ authkey: 'garbage', passportOrigin: PASSPORT })).toThrow(
      expect.objectContaining({ code: 'invalid_authkey' }),
    )
  })

  it.each([`${PASSPORT}/`, `${PASSPORT}/frame`, 'http://*.localhost:8080', '*', 'null'])(
    'refuses the passport origin %j',
    (passportOrigin) => {
      const env = setup()
      browser = env.browser
      expect(() => createPassport({ authkey, passportOrigin })).toThrow(PassportClientError)
      expect(env.browser.document.iframes).toHaveLength(0)
    },
  )
})

describe('silent sign-in on a first visit', () => {
  it('leaves at once for /authorize?prompt=none with PKCE, without creating the frame', async () => {
    const env = setup({ url: `${NEWS}/article/7?x=1#comments` })
    const p = start(env)
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
    const nav = env.browser.location.navigations[0] as { kind: string; url: string }
    expect(nav.kind).toBe('replace') // no history entry for the hop
    const url = new URL(nav.url)
    expect(url.origin + url.pathname).toBe(`${PASSPORT}/authorize`)
    const stored = JSON.parse(env.browser.sessionStorage.getItem('passport:news:pending') as string)
    expect(stored).toEqual({
      state: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      codeVerifier: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      redirectUri: `${NEWS}/`,
      returnTo: `${NEWS}/article/7?x=1`,
    })
    expect(Object.fromEntries(url.searchParams)).toEqual({
      response_type: 'code',
      response_mode: 'fragment',
      client_id: 'news',
      redirect_uri: `${NEWS}/`,
      state: stored.state,
      code_challenge: await pkceChallenge(stored.codeVerifier),
      code_challenge_method: 'S256',
      prompt: 'none',
    })
    expect(url.toString()).not.toContain(stored.codeVerifier)
    expect(url.toString()).not.toContain(authkey) // A13: the authkey stays out of URLs
    const silentAt = Number(env.browser.localStorage.getItem('passport:news:silent_at'))
    expect(Math.abs(silentAt - Date.now())).toBeLessThan(5000)
    expect(env.browser.document.iframes).toHaveLength(0)
    expect(p.state).toEqual({ status: 'loading' })
  })

  it('uses the configured redirectUri', async () => {
    const env = setup()
    start(env, { redirectUri: `${NEWS}/callback` })
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
    const url = new URL((env.browser.location.navigations[0] as { url: string }).url)
    expect(url.searchParams.get('redirect_uri')).toBe(`${NEWS}/callback`)
  })

  it('does not leave again within 60 s of the last silent attempt: it asks the frame and ends signed out', async () => {
    const env = setup()
    seedSilentAttempt(env.browser, 10_000)
    const p = start(env)
    await expect(p.ready).resolves.toEqual({ status: 'signed_out', reason: null })
    expect(env.browser.location.navigations).toEqual([])
    expect(env.browser.document.iframes).toHaveLength(1)
    expect(env.api.tokenFromSession).not.toHaveBeenCalled() // cookies blocked: the frame does not try
  })

  it('leaves again once the retry window has passed', async () => {
    const env = setup()
    seedSilentAttempt(env.browser, 61_000)
    start(env)
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
  })

  it('honours silentRetrySeconds', async () => {
    const short = setup()
    seedSilentAttempt(short.browser, 10_000)
    start(short, { silentRetrySeconds: 5 })
    await waitFor(() => expect(short.browser.location.navigations).toHaveLength(1))
  })

  it('never leaves with silent: false', async () => {
    const env = setup()
    const p = start(env, { silent: false })
    await expect(p.ready).resolves.toEqual({ status: 'signed_out', reason: null })
    expect(env.browser.location.navigations).toEqual([])
  })

  it('signs in without navigating where the frame can see the passport session', async () => {
    const env = setup({ canSeeCookies: async () => true })
    seedSilentAttempt(env.browser, 10_000)
    const p = start(env)
    await expect(p.ready).resolves.toMatchObject({ status: 'signed_in' })
    await expect(p.getToken()).resolves.toBe('tok-from-session')
    expect(env.browser.location.navigations).toEqual([])
  })

  it('leaves at most once per window: no-session answer, then reload, stays put', async () => {
    // 1st load: no hint, leaves silently.
    const env = setup()
    start(env)
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
    const state = JSON.parse(env.browser.sessionStorage.getItem('passport:news:pending') as string).state
    passport?.destroy()
    env.browser.uninstall()

    // The passport answers "no session" in the fragment: signed out, no new trip.
    const back = setup({ url: callbackUrl({ error: 'login_required', state }) })
    back.browser.localStorage.setItem(
      'passport:news:silent_at',
      env.browser.localStorage.getItem('passport:news:silent_at') as string,
    )
    back.browser.sessionStorage.setItem(
      'passport:news:pending',
      env.browser.sessionStorage.getItem('passport:news:pending') as string,
    )
    const p2 = start(back)
    await expect(p2.ready).resolves.toEqual({ status: 'signed_out', reason: null })
    expect(back.browser.location.navigations).toEqual([])
    passport?.destroy()

    // A reload of the page within the window: still no trip.
    back.browser.location.href = `${NEWS}/`
    const p3 = createPassport({ authkey, passportOrigin: PASSPORT })
    passport = p3
    await expect(p3.ready).resolves.toMatchObject({ status: 'signed_out' })
    await settle()
    expect(back.browser.location.navigations).toEqual([])
  })
})

describe('the passport callback in the fragment', () => {
  it('exchanges the code in the frame, removes the fragment, and returns to the original page', async () => {
    const env = setup({ url: callbackUrl({ code: 'code-1', state: pending.state, iss: PASSPORT }) })
    seedPending(env.browser, pending)
    const p = start(env)
    await expect(p.ready).resolves.toMatchObject({ status: 'signed_in' })
    expect(env.api.exchangeCode).toHaveBeenCalledExactlyOnceWith(
      authkey,
      'code-1',
      pending.codeVerifier,
      pending.redirectUri,
    )
    expect(env.browser.history.replaced).toEqual([`${NEWS}/`])
    expect(env.browser.location.href).toBe(`${NEWS}/`)
    expect(env.browser.location.navigations).toEqual([{ kind: 'replace', url: pending.returnTo }])
    expect(env.browser.sessionStorage.getItem('passport:news:pending')).toBeNull() // one use
    await expect(p.getToken()).resolves.toBe('tok-from-code')
    expect(env.api.tokenFromSession).not.toHaveBeenCalled()
  })

  it('A13: removes the fragment before anything can read it later, and keeps the token out of storage', async () => {
    const env = setup({ url: callbackUrl({ code: 'code-1', state: pending.state }) })
    seedPending(env.browser, { ...pending, returnTo: `${NEWS}/` })
    const p = start(env)
    expect(env.browser.location.href).toBe(`${NEWS}/`) // synchronously, during createPassport
    await p.ready
    expect(env.browser.location.navigations).toEqual([]) // already where it started
    const pageStorage = JSON.stringify([
      env.browser.localStorage.entries(),
      env.browser.sessionStorage.entries(),
    ])
    expect(pageStorage).not.toContain('tok-from-code')
    expect(JSON.parse(env.browser.localStorage.getItem('passport:news:hint') as string)).toMatchObject({
      status: 'signed_in',
    })
  })

  it.each([
    ['a state that does not match', { code: 'attacker-code', state: 'attacker-state' }, pending],
    ['no pending sign-in in this tab', { code: 'attacker-code', state: pending.state }, null],
    [
      'another issuer',
      { code: 'attacker-code', state: pending.state, iss: 'http://evil.localhost:8083' },
      pending,
    ],
  ])('refuses a code with %s, and never exchanges it', async (_name, fragment, stored) => {
    const env = setup({ url: callbackUrl(fragment) })
    if (stored) seedPending(env.browser, stored)
    seedSilentAttempt(env.browser, 1000) // the trip that came back
    const p = start(env)
    await expect(p.ready).resolves.toEqual({ status: 'signed_out', reason: null })
    expect(env.api.exchangeCode).not.toHaveBeenCalled()
    expect(env.browser.location.href).toBe(`${NEWS}/`) // fragment removed all the same
    expect(env.browser.sessionStorage.getItem('passport:news:pending')).toBeNull()
    expect(env.browser.location.navigations).toEqual([])
  })

  it("does not use another site's pending sign-in", async () => {
    const env = setup({ url: callbackUrl({ code: 'c', state: pending.state }) })
    env.browser.sessionStorage.setItem('passport:shop:pending', JSON.stringify(pending))
    seedSilentAttempt(env.browser, 1000)
    const p = start(env)
    await p.ready
    expect(env.api.exchangeCode).not.toHaveBeenCalled()
  })

  it.each([
    [{ error: 'login_required' }, null],
    [{ error: 'login_required', reason: 'replaced' }, 'replaced'],
    [{ error: 'access_denied', reason: '<script>' }, null],
  ])('ends signed out on an error answer %j, without another trip', async (fragment, reason) => {
    const env = setup({ url: callbackUrl({ ...fragment, state: pending.state }) })
    seedPending(env.browser, pending)
    const p = start(env)
    await expect(p.ready).resolves.toEqual({ status: 'signed_out', reason })
    expect(env.browser.location.href).toBe(`${NEWS}/`)
    expect(env.browser.location.navigations).toEqual([])
    expect(env.browser.document.iframes).toHaveLength(0)
  })

  it('ends signed out when the frame refuses the code', async () => {
    const env = setup({ url: callbackUrl({ code: 'used-code', state: pending.state }) })
    seedPending(env.browser, pending)
    const { FrameApiError } = await import('../frame/server-api.ts')
    env.api.exchangeCode.mockRejectedValue(new FrameApiError('invalid_grant'))
    const p = start(env)
    await expect(p.ready).resolves.toEqual({ status: 'signed_out', reason: null })
    expect(env.browser.location.navigations).toEqual([])
  })

  it.each([`${NEWS}/#comments`, `${NEWS}/#state=only-state`, `${NEWS}/#code=c`])(
    'leaves an unrelated fragment alone: %s',
    async (url) => {
      const env = setup({ url })
      seedPending(env.browser, pending)
      seedSilentAttempt(env.browser, 1000)
      const p = start(env)
      await p.ready
      expect(env.browser.location.href).toBe(url)
      expect(env.browser.history.replaced).toEqual([])
      expect(env.api.exchangeCode).not.toHaveBeenCalled()
      expect(env.browser.sessionStorage.getItem('passport:news:pending')).not.toBeNull()
    },
  )
})

describe('revisit with a signed-in hint', () => {
  it("is answered from the frame's cache: no navigation, no server call", async () => {
    const env = setup()
    seedHint(env.browser, { status: 'signed_in', expiresAt: Date.now() + LIFETIME_MS })
    env.frameCache.write({ token: 'cached-token', expiresAt: Date.now() + LIFETIME_MS, clockOffsetMs: 0 })
    const p = start(env)
    await expect(p.ready).resolves.toMatchObject({ status: 'signed_in' })
    await expect(p.getToken()).resolves.toBe('cached-token')
    expect(env.browser.location.navigations).toEqual([])
    expect(Object.values(env.api).every((fn) => fn.mock.calls.length === 0)).toBe(true)
  })

  it('leaves silently when the frame has no token any more', async () => {
    const env = setup()
    seedHint(env.browser, { status: 'signed_in', expiresAt: Date.now() + LIFETIME_MS })
    start(env)
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
    expect(env.browser.location.navigations[0]?.url).toContain('prompt=none')
  })

  it('ends signed out instead when a silent attempt was made within the window', async () => {
    const env = setup()
    seedHint(env.browser, { status: 'signed_in', expiresAt: Date.now() + LIFETIME_MS })
    seedSilentAttempt(env.browser, 1000)
    const p = start(env)
    await expect(p.ready).resolves.toEqual({ status: 'signed_out', reason: null })
    expect(env.browser.location.navigations).toEqual([])
  })
})

describe('a signed-in page', () => {
  async function signedIn(options: { canSeeCookies?: () => Promise<boolean> } = {}) {
    const env = setup(options)
    seedHint(env.browser, { status: 'signed_in', expiresAt: Date.now() + LIFETIME_MS })
    env.frameCache.write({ token: 'cached-token', expiresAt: Date.now() + LIFETIME_MS, clockOffsetMs: 0 })
    const p = start(env)
    await p.ready
    const changes: PassportState[] = []
    p.onChange((s) => changes.push(s))
    return { env, p, changes }
  }

  it('signs out when the frame reports a session event', async () => {
    const { env, p, changes } = await signedIn()
    const frame = env.frames[0] as FakeWindow
    frame.parent.postMessage({ v: 1, type: 'session_event', event: 'signed_out', reason: 'replaced' }, NEWS)
    await settle()
    expect(p.state).toEqual({ status: 'signed_out', reason: 'replaced' })
    expect(changes).toEqual([{ status: 'signed_out', reason: 'replaced' }])
    expect(JSON.parse(env.browser.localStorage.getItem('passport:news:hint') as string)).toMatchObject({
      status: 'signed_out',
      reason: 'replaced',
    })
    await expect(p.getToken()).rejects.toMatchObject({ code: 'login_required', reason: 'replaced' })
  })

  it("takes the new token when the frame refreshed on the passport's request: onChange sees the new expiry", async () => {
    const { env, p, changes } = await signedIn()
    const frame = env.frames[0] as FakeWindow
    const later = Date.now() + 2 * LIFETIME_MS
    env.frameCache.write({ token: 'refreshed-token', expiresAt: later, clockOffsetMs: 0 })
    frame.parent.postMessage({ v: 1, type: 'token_refreshed' }, NEWS)
    await settle()
    expect(changes).toHaveLength(1)
    expect(changes[0]).toMatchObject({ status: 'signed_in' })
    expect((changes[0] as { expiresAt: number }).expiresAt).toBeGreaterThan(Date.now() + LIFETIME_MS)
    await expect(p.getToken()).resolves.toBe('refreshed-token')
  })

  it('ignores a forged session event or token from another window (A8)', async () => {
    const { env, p, changes } = await signedIn()
    const evil = installEvilSender(env.browser)
    evil({ v: 1, type: 'session_event', event: 'signed_out', reason: 'revoked' })
    evil({
      v: 1,
      type: 'token_response',
      id: 'p2-guess',
      token: 'attacker',
      expiresAt: Date.now() + 1e9,
      expiresIn: 60_000,
    })
    await settle()
    expect(p.state).toMatchObject({ status: 'signed_in' })
    expect(changes).toEqual([])
    await expect(p.getToken()).resolves.toBe('cached-token')
  })

  it('logout signs out at the passport through the frame and tells listeners', async () => {
    const { env, p, changes } = await signedIn()
    await p.logout()
    expect(env.api.logout).toHaveBeenCalledExactlyOnceWith(authkey, 'cached-token')
    expect(env.frameCache.read()).toBeNull()
    expect(p.state).toEqual({ status: 'signed_out', reason: 'signed_out' })
    expect(changes).toEqual([{ status: 'signed_out', reason: 'signed_out' }])
    await expect(p.getToken()).rejects.toMatchObject({ code: 'login_required', reason: 'signed_out' })
  })

  it('refresh() asks the frame to rotate now and returns the new token', async () => {
    const { env, p } = await signedIn()
    env.frameCache.write({
      token: 'cached-token',
      expiresAt: Date.now() + LIFETIME_MS,
      clockOffsetMs: 0,
      refreshToken: 'r'.repeat(43),
      refreshAt: Date.now() + LIFETIME_MS - 60_000,
      refreshExpiresAt: Date.now() + 86_400_000,
    })
    await expect(p.refresh()).resolves.toBe('tok-from-refresh')
    expect(env.api.refresh).toHaveBeenCalledOnce()
    await expect(p.getToken()).resolves.toBe('tok-from-refresh')
  })

  it('refresh() refused: signed out with the reason; a network failure keeps the state', async () => {
    const { env, p } = await signedIn()
    env.frameCache.write({
      token: 'cached-token',
      expiresAt: Date.now() + LIFETIME_MS,
      clockOffsetMs: 0,
      refreshToken: 'r'.repeat(43),
      refreshAt: Date.now() + LIFETIME_MS - 60_000,
      refreshExpiresAt: Date.now() + 86_400_000,
    })
    env.api.refresh.mockRejectedValueOnce(new FrameApiError('temporarily_unavailable'))
    await expect(p.refresh()).rejects.toMatchObject({ code: 'temporarily_unavailable' })
    expect(p.state).toMatchObject({ status: 'signed_in' })
    env.api.refresh.mockRejectedValueOnce(new FrameApiError('invalid_grant', 'replaced'))
    await expect(p.refresh()).rejects.toMatchObject({ code: 'invalid_grant', reason: 'replaced' })
    expect(p.state).toEqual({ status: 'signed_out', reason: 'replaced' })
  })

  it('check reports an invalid token and signs out with its reason', async () => {
    const { env, p } = await signedIn()
    env.api.check.mockResolvedValue({ valid: false, reason: 'revoked', expiresAt: null, serverTime: 5 })
    await expect(p.check()).resolves.toEqual({
      valid: false,
      reason: 'revoked',
      expiresAt: null,
      serverTime: 5,
    })
    expect(p.state).toEqual({ status: 'signed_out', reason: 'revoked' })
  })

  it('onChange returns an unsubscribe function', async () => {
    const { p } = await signedIn()
    const seen: PassportState[] = []
    const off = p.onChange((s) => seen.push(s))
    off()
    await p.logout()
    expect(seen).toEqual([])
  })

  it('login leaves for the passport with a history entry and no prompt=none', async () => {
    const { env, p } = await signedIn()
    void p.login()
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
    const nav = env.browser.location.navigations[0] as { kind: string; url: string }
    expect(nav.kind).toBe('assign')
    expect(new URL(nav.url).searchParams.has('prompt')).toBe(false)
  })

  it('destroy removes the frame and stops listening', async () => {
    const { env, p } = await signedIn()
    expect(env.browser.window.listenerCount).toBe(1)
    p.destroy()
    expect(env.browser.window.listenerCount).toBe(0)
    expect(env.browser.document.iframes[0]?.removed).toBe(true)
  })
})

describe('token injection while a request is pending (A8)', () => {
  it('accepts no token from another window, even with the right request id', async () => {
    let answerCookies: (value: boolean) => void = () => {}
    const env = setup({ canSeeCookies: () => new Promise<boolean>((resolve) => (answerCookies = resolve)) })
    seedSilentAttempt(env.browser, 1000)
    const p = start(env)
    const frame = await vi.waitFor(() => {
      const f = env.frames[0]
      const request = f?.posted.find((m) => (m.message as { type: string }).type === 'token_request')
      if (!f || !request) throw new Error('no token_request yet')
      return { f, id: (request.message as { id: string }).id }
    })
    const evil = installEvilSender(env.browser)
    evil({
      v: 1,
      type: 'token_response',
      id: frame.id,
      token: 'attacker-token',
      expiresAt: Date.now() + 1e9,
      expiresIn: 60_000,
    })
    await settle()
    expect(p.state).toEqual({ status: 'loading' })
    answerCookies(false)
    await expect(p.ready).resolves.toEqual({ status: 'signed_out', reason: null })
    await expect(p.getToken()).rejects.toMatchObject({ code: 'login_required' })
  })
})

describe('the first question (issue 17: one round trip less before the token)', () => {
  it('goes to the frame right behind the hello, before the frame has answered it', async () => {
    const env = setup({ canSeeCookies: async () => true })
    seedSilentAttempt(env.browser, 1_000) // no silent trip: the frame is asked at once
    const p = start(env)
    const seen: string[] = []
    const type = (event: MessageEvent) => (event.data as { type: string }).type
    env.frames[0]?.addEventListener('message', (event) => seen.push(`frame got ${type(event)}`))
    env.browser.window.addEventListener('message', (event) => seen.push(`page got ${type(event)}`))
    await expect(p.ready).resolves.toMatchObject({ status: 'signed_in' })
    expect(seen.slice(0, 3)).toEqual(['frame got hello', 'frame got token_request', 'page got ready'])
    expect(env.api.tokenFromSession).toHaveBeenCalledOnce()
  })

  it('is refused, not retried, when the frame refuses the hello', async () => {
    const env = setup({ canSeeCookies: async () => true })
    env.browser.localStorage.setItem('passport:shop:silent_at', String(Date.now() - 1_000))
    // A page whose authkey names another site than the frame it loads: the frame answers the
    // hello with invalid_authkey and every question after it with invalid_request (never a token).
    browser = env.browser
    passport = createPassport({ authkey: fakeAuthkey('shop'), passportOrigin: PASSPORT })
    await expect(passport.ready).resolves.toEqual({ status: 'signed_out', reason: null })
    expect(env.api.tokenFromSession).not.toHaveBeenCalled()
    expect(env.browser.document.iframes.map((f) => f.removed)).toEqual([false])
  })
})

/** A window of the passport origin that is not the SDK's iframe (e.g. a popup the attacker opened). */
function installEvilSender(b: FakeBrowser) {
  const other = { postMessage() {} }
  return (data: unknown) => b.window.receive(data, { origin: PASSPORT, source: other })
}

describe('a passing outage (@see issue 14)', () => {
  const renewable = (expiresInMs: number) => ({
    token: 'cached-token',
    expiresAt: Date.now() + expiresInMs,
    clockOffsetMs: 0,
    refreshToken: 'r'.repeat(43),
    refreshAt: Date.now() + expiresInMs - 60_000,
    refreshExpiresAt: Date.now() + 86_400_000,
  })

  it('getToken near expiry: the passport unreachable or slow keeps the page signed in with the token it holds', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      const env = setup()
      seedHint(env.browser, { status: 'signed_in', expiresAt: Date.now() + LIFETIME_MS })
      env.frameCache.write(renewable(LIFETIME_MS))
      const p = start(env)
      await p.ready
      const changes: PassportState[] = []
      p.onChange((s) => changes.push(s))
      // 20 s left: the page asks the frame, whose refresh cannot reach the passport.
      vi.setSystemTime(Date.now() + LIFETIME_MS - 20_000)
      for (const code of ['temporarily_unavailable', 'timeout', 'server_error'] as const) {
        env.api.refresh.mockRejectedValueOnce(new FrameApiError(code))
        await expect(p.getToken()).resolves.toBe('cached-token')
      }
      expect(p.state).toMatchObject({ status: 'signed_in' })
      // Past its expiry there is no token to give, but still no sign-out.
      vi.setSystemTime(Date.now() + 30_000)
      env.api.refresh.mockRejectedValueOnce(new FrameApiError('temporarily_unavailable'))
      await expect(p.getToken()).rejects.toMatchObject({ code: 'temporarily_unavailable' })
      expect(changes).toEqual([])
      // The server's verdict does sign out (told by the frame's push and by the reply alike).
      env.api.refresh.mockRejectedValueOnce(new FrameApiError('invalid_grant', 'replaced'))
      await expect(p.getToken()).rejects.toMatchObject({ code: 'invalid_grant', reason: 'replaced' })
      expect(new Set(changes.map((s) => JSON.stringify(s)))).toEqual(
        new Set([JSON.stringify({ status: 'signed_out', reason: 'replaced' })]),
      )
    } finally {
      vi.useRealTimers()
    }
  })

  it('a revisit while the passport is unreachable stays loading, asks again with backoff, and signs in', async () => {
    const jitter = vi.spyOn(Math, 'random').mockReturnValue(0) // retries after 0.5 s, then 1 s
    try {
      const env = setup()
      seedHint(env.browser, { status: 'signed_in', expiresAt: Date.now() + LIFETIME_MS })
      env.frameCache.write(renewable(10_000)) // stale: the frame must refresh
      env.api.refresh
        .mockRejectedValueOnce(new FrameApiError('temporarily_unavailable'))
        .mockRejectedValueOnce(new FrameApiError('temporarily_unavailable'))
      const p = start(env)
      const changes: PassportState[] = []
      p.onChange((s) => changes.push(s))
      await vi.waitFor(() => expect(env.api.refresh).toHaveBeenCalledTimes(2), {
        timeout: 2_000,
        interval: 5,
      })
      expect(p.state).toEqual({ status: 'loading' })
      await expect(p.ready).resolves.toMatchObject({ status: 'signed_in' })
      expect(await p.getToken()).toBe('tok-from-refresh')
      expect(changes.map((s) => s.status)).toEqual(['signed_in'])
      expect(env.browser.location.navigations).toEqual([])
    } finally {
      jitter.mockRestore()
    }
  })

  it('a refused sign-in on a revisit still signs out at once (no retrying a verdict)', async () => {
    const env = setup()
    seedSilentAttempt(env.browser, 1_000)
    seedHint(env.browser, { status: 'signed_in', expiresAt: Date.now() + LIFETIME_MS })
    env.frameCache.write(renewable(10_000))
    env.api.refresh.mockRejectedValueOnce(new FrameApiError('invalid_grant', 'revoked'))
    const p = start(env)
    await expect(p.ready).resolves.toEqual({ status: 'signed_out', reason: 'revoked' })
    expect(env.api.refresh).toHaveBeenCalledOnce()
  })

  it('a page opened while the passport was down drops the dead frame and signs in with a fresh one', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      const env = setup({ deadFrames: 1 })
      seedHint(env.browser, { status: 'signed_in', expiresAt: Date.now() + LIFETIME_MS })
      env.frameCache.write(renewable(LIFETIME_MS))
      const p = start(env)
      const changes: PassportState[] = []
      p.onChange((s) => changes.push(s))
      await settle()
      await vi.advanceTimersByTimeAsync(15_000) // no hello answer from the error page
      expect(p.state).toEqual({ status: 'loading' })
      await vi.advanceTimersByTimeAsync(1_000) // the retry loads a new frame
      await vi.waitFor(() => expect(p.state).toMatchObject({ status: 'signed_in' }), {
        timeout: 2_000,
        interval: 5,
      })
      expect(env.browser.document.iframes.map((f) => f.removed)).toEqual([true, false])
      expect(changes.map((s) => s.status)).toEqual(['signed_in'])
    } finally {
      vi.useRealTimers()
    }
  })
})

describe('FedCM (issue 17)', () => {
  /**
   * A browser with FedCM whose dialog answers `answer` (a code, or a refusal). `silent` answers
   * `mediation: 'silent'`: by default a refusal, as Chromium's for a site the user never chose
   * the passport on in this browser (no dialog, NetworkError).
   */
  const withFedcm = (
    env: ReturnType<typeof setup>,
    answer: () => Promise<unknown>,
    silent: () => Promise<unknown> = async () => {
      throw new DOMException('not a returning account', 'NetworkError')
    },
  ) => {
    Object.assign(env.browser.window, { IdentityCredential: function IdentityCredential() {} })
    const get = vi.fn(async (options: unknown) =>
      (options as { mediation?: string }).mediation === 'silent' ? silent() : answer(),
    )
    vi.stubGlobal('navigator', { credentials: { get } })
    return get
  }
  afterEach(() => vi.unstubAllGlobals())

  it("login({mode:'fedcm'}): the chooser's code is redeemed by the frame with the verifier of its nonce, no navigation", async () => {
    const env = setup()
    const get = withFedcm(env, async () => ({ token: 'fedcm-code' }))
    seedSilentAttempt(env.browser, 1_000) // a signed-out page: no automatic attempt
    const p = start(env, { fedcm: true })
    await p.ready
    const state = await p.login({ mode: 'fedcm' })
    expect(state.status).toBe('signed_in')
    expect(env.browser.location.navigations).toEqual([])
    const options = get.mock.calls.at(-1)?.[0] as {
      identity: { providers: { configURL: string; clientId: string; params: { nonce: string } }[] }
      mediation: string
    }
    const provider = options.identity.providers[0]
    expect(provider?.configURL).toBe(`${PASSPORT}/fedcm/config.json`)
    expect(provider?.clientId).toBe('news')
    const [, code, verifier, redirectUri] = env.api.exchangeCode.mock.calls[0] ?? []
    expect(code).toBe('fedcm-code')
    expect(redirectUri).toBe(NEWS)
    expect(provider?.params.nonce).toBe(await pkceChallenge(verifier as string))
  })

  it("login({mode:'fedcm'}) falls back to the passport's page when FedCM gives nothing", async () => {
    const env = setup()
    withFedcm(env, async () => {
      throw new DOMException('no account', 'NetworkError')
    })
    seedSilentAttempt(env.browser, 1_000)
    const p = start(env, { fedcm: true })
    await p.ready
    void p.login({ mode: 'fedcm' })
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
    expect(env.browser.location.navigations[0]).toMatchObject({ kind: 'assign' })
    expect(env.api.exchangeCode).not.toHaveBeenCalled()
  })

  it('a site that did not opt in never asks FedCM, even with the browser able to', async () => {
    const env = setup()
    const get = withFedcm(env, async () => ({ token: 'fedcm-code' }))
    seedSilentAttempt(env.browser, 1_000)
    const p = start(env)
    await p.ready
    void p.login({ mode: 'fedcm' })
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
    expect(get).not.toHaveBeenCalled()
  })

  it('a first visit of a FedCM site tries the chooser before the silent hop, and needs no hop if it answers', async () => {
    const env = setup()
    const get = withFedcm(env, async () => ({ token: 'fedcm-code' }))
    const p = start(env, { fedcm: true })
    expect((await p.ready).status).toBe('signed_in')
    expect(get.mock.calls[0]?.[0]).toMatchObject({ mediation: 'optional' })
    expect(env.browser.location.navigations).toEqual([])
  })

  it("fedcmOnLoad 'silent': a first visit asks FedCM only silently (no chooser), then the silent hop", async () => {
    const env = setup()
    const get = withFedcm(env, async () => ({ token: 'chooser-code' }))
    start(env, { fedcm: true, fedcmOnLoad: 'silent' })
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
    expect(get.mock.calls.map((c) => (c[0] as { mediation: string }).mediation)).toEqual(['silent'])
    expect(env.browser.location.navigations[0]?.url).toContain('prompt=none')
    expect(env.api.exchangeCode).not.toHaveBeenCalled()
  })

  it("fedcmOnLoad 'silent': a returning site is still signed in on load without a dialog, and login() still shows the chooser", async () => {
    const env = setup()
    const get = withFedcm(
      env,
      async () => ({ token: 'chooser-code' }),
      async () => ({ token: 'auto-code' }),
    )
    const p = start(env, { fedcm: true, fedcmOnLoad: 'silent' })
    expect((await p.ready).status).toBe('signed_in')
    expect(env.api.exchangeCode.mock.calls[0]?.[1]).toBe('auto-code')
    await p.login({ mode: 'fedcm' })
    expect(get.mock.calls.map((c) => (c[0] as { mediation: string }).mediation)).toEqual([
      'silent',
      'optional',
    ])
    expect(env.browser.location.navigations).toEqual([])
  })

  it('a signed-out page within the silent limit: a returning site is signed in by FedCM without a dialog (silent), never the chooser', async () => {
    const env = setup()
    const get = withFedcm(
      env,
      async () => ({ token: 'chooser-code' }),
      async () => ({ token: 'auto-code' }),
    )
    seedSilentAttempt(env.browser, 1_000)
    const p = start(env, { fedcm: true })
    expect((await p.ready).status).toBe('signed_in')
    expect(get.mock.calls.map((c) => (c[0] as { mediation: string }).mediation)).toEqual(['silent'])
    expect(env.api.exchangeCode.mock.calls[0]?.[1]).toBe('auto-code')
    expect(env.browser.location.navigations).toEqual([])
  })

  it('a signed-out page within the silent limit stays signed out, with no dialog, where FedCM cannot sign in silently', async () => {
    const env = setup()
    const get = withFedcm(env, async () => ({ token: 'chooser-code' }))
    seedSilentAttempt(env.browser, 1_000)
    const p = start(env, { fedcm: true })
    expect(await p.ready).toEqual({ status: 'signed_out', reason: null })
    expect(get.mock.calls.map((c) => (c[0] as { mediation: string }).mediation)).toEqual(['silent'])
    expect(env.api.exchangeCode).not.toHaveBeenCalled()
  })

  it('a revisit whose frame lost its sign-in tries FedCM silently before the hop, and needs no hop if it answers', async () => {
    const env = setup()
    const get = withFedcm(
      env,
      async () => ({ token: 'chooser-code' }),
      async () => ({ token: 'auto-code' }),
    )
    seedHint(env.browser, { status: 'signed_in', expiresAt: Date.now() + LIFETIME_MS })
    const p = start(env, { fedcm: true })
    expect((await p.ready).status).toBe('signed_in')
    expect(get.mock.calls.map((c) => (c[0] as { mediation: string }).mediation)).toEqual(['silent'])
    expect(env.browser.location.navigations).toEqual([])
  })

  it('a revisit whose frame lost its sign-in goes on to the hop when FedCM cannot sign in silently', async () => {
    const env = setup()
    withFedcm(env, async () => ({ token: 'chooser-code' }))
    seedHint(env.browser, { status: 'signed_in', expiresAt: Date.now() + LIFETIME_MS })
    start(env, { fedcm: true })
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
    expect(env.browser.location.navigations[0]?.url).toContain('prompt=none')
  })

  it('a first visit of a FedCM site goes on to the silent hop when the chooser gives nothing', async () => {
    const env = setup()
    withFedcm(env, async () => {
      throw new DOMException('dismissed', 'NetworkError')
    })
    start(env, { fedcm: true })
    await waitFor(() => expect(env.browser.location.navigations).toHaveLength(1))
    expect(env.browser.location.navigations[0]?.url).toContain('prompt=none')
  })
})
