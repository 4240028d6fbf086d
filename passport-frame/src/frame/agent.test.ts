import { beforeEach, describe, expect, it, type Mock, vi } from 'vitest'
import { FakeWindow, fakeAuthkey, MemoryStorage, settle } from '../test-support/fake-window.ts'
import {
  createFrameAgent,
  FRAME_MESSAGES_PER_SECOND,
  type FrameAgentDeps,
  type LiveOpenDeps,
} from './agent.ts'
import { createRefresher } from './refresher.ts'
import { FrameApiError, type ServerApi, type TokenAnswer } from './server-api.ts'
import { answerRequest } from './session-requests.ts'
import { actOnNews, type SharedNews } from './shared-state.ts'
import { createTokenCache, type TokenCache } from './token-cache.ts'

const NEWS = 'http://news.localhost:8081'
const NEWS_TLS = 'https://news.example'
const site = { id: 'news', origins: [NEWS, NEWS_TLS] }
const authkey = fakeAuthkey('news')
const T0 = 1_700_000_000_000
const SKEW = 2_000 // server clock ahead of the browser

function tokenAnswer(token: string, lifetimeMs = 600_000): TokenAnswer {
  const expiresAt = T0 + SKEW + lifetimeMs
  return {
    token,
    expiresAt,
    serverTime: T0 + SKEW,
    refreshToken: null,
    refreshAt: expiresAt,
    refreshExpiresAt: expiresAt,
  }
}

interface Harness {
  page: FakeWindow
  frame: FakeWindow
  api: { [K in keyof ServerApi]: Mock<ServerApi[K]> }
  cache: TokenCache
  storage: MemoryStorage
  canSeeCookies: Mock<() => Promise<boolean>>
  log: Mock<(event: string, detail?: Record<string, unknown>) => void>
  clock: { now: number }
  /** Delivers a message to the frame (from the parent page by default) and lets the agent finish. */
  send(data: unknown, from?: { origin?: string; source?: unknown }): Promise<void>
  /** Messages the agent posted to its parent, with their targetOrigin. */
  replies(): Array<{ message: Record<string, unknown>; targetOrigin: string }>
  apiCalls(): number
}

function setup(
  options: {
    proveForSite?: FrameAgentDeps['proveForSite']
    connectShared?: FrameAgentDeps['connectShared']
    showContinue?: FrameAgentDeps['showContinue']
    live?: FrameAgentDeps['live']
    loadSession?: FrameAgentDeps['loadSession']
  } = {},
): Harness {
  const page = new FakeWindow(NEWS)
  const frame = new FakeWindow('http://passport.localhost:8080', page)
  const clock = { now: T0 }
  const storage = new MemoryStorage()
  const cache = createTokenCache('news', storage, () => clock.now)
  const api = {
    exchangeCode: vi.fn<ServerApi['exchangeCode']>(async () => tokenAnswer('tok-from-code')),
    tokenFromSession: vi.fn<ServerApi['tokenFromSession']>(async () => tokenAnswer('tok-from-session')),
    check: vi.fn<ServerApi['check']>(async () => ({
      valid: true,
      reason: null,
      expiresAt: T0 + 600_000,
      serverTime: T0,
    })),
    logout: vi.fn<ServerApi['logout']>(async () => {}),
    refresh: vi.fn<ServerApi['refresh']>(async () => tokenAnswer('tok-from-refresh')),
    post: vi.fn<ServerApi['post']>(async () => ({})),
  }
  const canSeeCookies = vi.fn(async () => false)
  const log = vi.fn<(event: string, detail?: Record<string, unknown>) => void>()
  createFrameAgent({
    site,
    win: frame,
    api,
    cache,
    loadSession: options.loadSession ?? (async () => ({ createRefresher, answerRequest })),
    canSeeCookies,
    now: () => clock.now,
    ...(options.proveForSite ? { proveForSite: options.proveForSite } : {}),
    ...(options.connectShared ? { connectShared: options.connectShared } : {}),
    ...(options.showContinue ? { showContinue: options.showContinue } : {}),
    ...(options.live ? { live: options.live } : {}),
    // Scheduled refreshes are the refresher's own tests; here only requests drive the agent.
    setTimer: () => 0,
    clearTimer: () => {},
    log,
  })
  return {
    page,
    frame,
    api,
    cache,
    storage,
    canSeeCookies,
    log,
    clock,
    send: async (data, from = {}) => {
      frame.receive(data, { origin: from.origin ?? NEWS, source: 'source' in from ? from.source : page })
      await settle()
    },
    replies: () => page.posted as Array<{ message: Record<string, unknown>; targetOrigin: string }>,
    apiCalls: () => Object.values(api).reduce((n, fn) => n + fn.mock.calls.length, 0),
  }
}

const hello = (id = 'h1', key = authkey) => ({ v: 1, type: 'hello', id, authkey: key })
const tokenRequest = (id = 't1') => ({ v: 1, type: 'token_request', id })

let h: Harness
beforeEach(() => {
  h = setup()
})

describe('hello', () => {
  it('binds the origin and answers ready to that exact origin', async () => {
    await h.send(hello())
    expect(h.replies()).toEqual([
      { message: { v: 1, type: 'ready', id: 'h1', hasToken: false }, targetOrigin: NEWS },
    ])
  })

  it('reports a cached token in ready.hasToken', async () => {
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    await h.send(hello())
    expect(h.replies()[0]?.message).toMatchObject({ type: 'ready', hasToken: true })
  })

  it('refuses an authkey of another site and stays unbound (A11)', async () => {
    await h.send(hello('h1', fakeAuthkey('shop')))
    await h.send(tokenRequest())
    expect(h.replies().map((r) => r.message)).toEqual([
      { v: 1, type: 'error', id: 'h1', code: 'invalid_authkey' },
      { v: 1, type: 'error', id: 't1', code: 'invalid_request' },
    ])
    expect(h.apiCalls()).toBe(0)
  })

  it('answers invalid_request to any other request before hello, without calling the server', async () => {
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    for (const [i, type] of ['token_request', 'check', 'logout'].entries()) {
      await h.send({ v: 1, type, id: `x${i}` })
    }
    await h.send({ v: 1, type: 'code_exchange', id: 'x3', code: 'c', codeVerifier: 'v', redirectUri: 'r' })
    expect(h.replies().map((r) => r.message)).toEqual(
      ['x0', 'x1', 'x2', 'x3'].map((id) => ({ v: 1, type: 'error', id, code: 'invalid_request' })),
    )
    expect(h.apiCalls()).toBe(0)
    expect(h.cache.read()?.token).toBe('cached') // logout before hello cleared nothing
  })
})

describe('inbound checks', () => {
  it('ignores a message whose source is not window.parent, even from the registered origin (A4)', async () => {
    const sibling = new FakeWindow(NEWS, h.page)
    for (const source of [sibling, h.frame, null, undefined, { postMessage() {} }]) {
      await h.send(hello(), { source })
      await h.send(tokenRequest(), { source })
    }
    expect(h.replies()).toEqual([])
    expect(h.apiCalls()).toBe(0)
    expect(h.log).toHaveBeenCalledWith('pm_source_rejected')
    expect(h.log).not.toHaveBeenCalledWith('pm_origin_rejected', expect.anything())
  })

  it('ignores everything when the frame is not inside a parent (top-level frame document)', async () => {
    const top = new FakeWindow('http://passport.localhost:8080')
    createFrameAgent({
      site,
      win: top,
      api: h.api,
      cache: h.cache,
      loadSession: async () => ({ createRefresher, answerRequest }),
      canSeeCookies: h.canSeeCookies,
    })
    top.receive(hello(), { origin: NEWS, source: top })
    await settle()
    expect(top.posted).toEqual([])
  })

  it.each([
    'http://evil.localhost:8083',
    'http://news.localhost:8081.evil.localhost',
    'http://evil-news.localhost:8081',
    'https://news.localhost:8081',
    'http://news.localhost:8082',
    'http://NEWS.localhost:8081',
    'http://news.localhost:8081/',
    'null',
    '',
    '*',
  ])('gives no reply and makes no server call for origin %j (A1, A2, A3)', async (origin) => {
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    h.canSeeCookies.mockResolvedValue(true)
    await h.send(hello(), { origin })
    await h.send(tokenRequest(), { origin })
    await h.send({ v: 1, type: 'logout', id: 'l1' }, { origin })
    await h.send({ v: 1, type: 'bogus', id: 'b1' }, { origin }) // not even a schema error reply
    expect(h.replies()).toEqual([])
    expect(h.apiCalls()).toBe(0)
    expect(h.canSeeCookies).not.toHaveBeenCalled()
    expect(h.cache.read()?.token).toBe('cached')
    expect(h.log).toHaveBeenCalledWith('pm_origin_rejected', { origin })
  })

  it('stays silent to an unregistered origin even after a registered one bound the frame', async () => {
    await h.send(hello())
    await h.send(tokenRequest(), { origin: 'http://evil.localhost:8083' })
    expect(h.replies()).toHaveLength(1) // only the ready
  })

  it('ignores later messages from another registered origin once an origin is bound', async () => {
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    await h.send(hello('h1'), { origin: NEWS })
    await h.send(hello('h2'), { origin: NEWS_TLS })
    await h.send(tokenRequest('t-other'), { origin: NEWS_TLS })
    await h.send({ v: 1, type: 'bad' as string, id: 'bad-other' }, { origin: NEWS_TLS })
    await h.send(tokenRequest('t-bound'), { origin: NEWS })
    expect(h.replies().map((r) => [r.message.id, r.targetOrigin])).toEqual([
      ['h1', NEWS],
      ['t-bound', NEWS],
    ])
    expect(h.log).toHaveBeenCalledWith('pm_origin_rejected', { origin: NEWS_TLS })
  })

  it('accepts any registered origin for the first hello', async () => {
    await h.send(hello(), { origin: NEWS_TLS })
    expect(h.replies()).toEqual([
      { message: { v: 1, type: 'ready', id: 'h1', hasToken: false }, targetOrigin: NEWS_TLS },
    ])
  })
})

describe('malformed messages from the bound parent (A9)', () => {
  beforeEach(async () => {
    await h.send(hello())
    h.page.posted.length = 0
  })

  it.each([
    ['unknown type', { v: 1, type: 'getToken', id: 'm1' }],
    ['extra key', { v: 1, type: 'token_request', id: 'm1', site: 'shop' }],
    ['wrong version', { v: 2, type: 'token_request', id: 'm1' }],
    ['own __proto__ key', JSON.parse('{"v":1,"type":"token_request","id":"m1","__proto__":{"admin":true}}')],
    ['oversized field', { v: 1, type: 'hello', id: 'm1', authkey: 'k'.repeat(1024 * 1024) }],
    ['numeric code', { v: 1, type: 'code_exchange', id: 'm1', code: 1, codeVerifier: 'v', redirectUri: 'r' }],
  ])('answers invalid_request to the bound origin for %s, and does nothing else', async (_name, data) => {
    await h.send(data)
    expect(h.replies()).toEqual([
      { message: { v: 1, type: 'error', id: 'm1', code: 'invalid_request' }, targetOrigin: NEWS },
    ])
    expect(h.apiCalls()).toBe(0)
    expect(h.log).toHaveBeenCalledWith('pm_schema_rejected')
    expect(({} as Record<string, unknown>).admin).toBeUndefined()
  })

  it.each([
    ['null', null],
    ['a string', 'token_request'],
    ['a number', 7],
    ['an array', [tokenRequest()]],
    ['no id', { v: 1, type: 'token_request' }],
    ['a numeric id', { v: 1, type: 'token_request', id: 5 }],
    ['an id over 64 characters', { v: 1, type: 'token_request', id: 'i'.repeat(65) }],
    ['an object id', { v: 1, type: 'token_request', id: { evil: true } }],
  ])('drops %s without a reply', async (_name, data) => {
    await h.send(data)
    expect(h.replies()).toEqual([])
    expect(h.apiCalls()).toBe(0)
    expect(h.log).toHaveBeenCalledWith('pm_schema_rejected')
  })
})

describe('token_request', () => {
  beforeEach(async () => {
    await h.send(hello())
    h.page.posted.length = 0
  })

  it('answers from a valid cache without calling the server or probing cookies', async () => {
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    await h.send(tokenRequest())
    expect(h.replies()).toEqual([
      {
        message: {
          v: 1,
          type: 'token_response',
          id: 't1',
          token: 'cached',
          expiresAt: T0 + 600_000,
          expiresIn: 600_000,
        },
        targetOrigin: NEWS,
      },
    ])
    expect(h.apiCalls()).toBe(0)
    expect(h.canSeeCookies).not.toHaveBeenCalled()
  })

  it('asks the server when the cached token is within 30 s of expiry, then caches the new one', async () => {
    h.cache.write({ token: 'stale', expiresAt: T0 + 29_000, clockOffsetMs: 0 })
    h.canSeeCookies.mockResolvedValue(true)
    await h.send(tokenRequest('t1'))
    expect(h.api.tokenFromSession).toHaveBeenCalledExactlyOnceWith(authkey)
    expect(h.replies()[0]?.message).toEqual({
      v: 1,
      type: 'token_response',
      id: 't1',
      token: 'tok-from-session',
      expiresAt: T0 + SKEW + 600_000,
      expiresIn: 600_000,
    })
    expect(h.cache.read()).toEqual({
      token: 'tok-from-session',
      expiresAt: T0 + SKEW + 600_000,
      clockOffsetMs: SKEW,
      obtainedAt: T0 + SKEW,
    })
    await h.send(tokenRequest('t2'))
    expect(h.api.tokenFromSession).toHaveBeenCalledOnce()
    expect(h.replies()[1]?.message).toMatchObject({ id: 't2', token: 'tok-from-session' })
  })

  it('answers login_required without any server call where cookies are blocked', async () => {
    await h.send(tokenRequest())
    expect(h.canSeeCookies).toHaveBeenCalledOnce()
    expect(h.apiCalls()).toBe(0)
    expect(h.replies()).toEqual([
      { message: { v: 1, type: 'error', id: 't1', code: 'login_required' }, targetOrigin: NEWS },
    ])
  })

  it('passes on the server error code and reason', async () => {
    h.canSeeCookies.mockResolvedValue(true)
    h.api.tokenFromSession.mockRejectedValue(new FrameApiError('login_required', 'replaced'))
    await h.send(tokenRequest())
    expect(h.replies()[0]?.message).toEqual({
      v: 1,
      type: 'error',
      id: 't1',
      code: 'login_required',
      reason: 'replaced',
    })
    expect(h.cache.read()).toBeNull()
  })

  it('answers server_error, with no detail, to an unexpected failure', async () => {
    h.canSeeCookies.mockResolvedValue(true)
    h.api.tokenFromSession.mockRejectedValue(new TypeError('secret internal detail'))
    await h.send(tokenRequest())
    expect(h.replies()[0]?.message).toEqual({ v: 1, type: 'error', id: 't1', code: 'server_error' })
  })
})

describe('code_exchange', () => {
  const exchange = (id = 'c1') => ({
    v: 1,
    type: 'code_exchange',
    id,
    code: 'the-code',
    codeVerifier: 'the-verifier',
    redirectUri: `${NEWS}/`,
  })

  beforeEach(async () => {
    await h.send(hello())
    h.page.posted.length = 0
  })

  it('exchanges with the bound authkey, caches the token with the clock offset, and answers', async () => {
    await h.send(exchange())
    expect(h.api.exchangeCode).toHaveBeenCalledExactlyOnceWith(
      authkey,
      'the-code',
      'the-verifier',
      `${NEWS}/`,
    )
    expect(h.replies()).toEqual([
      {
        message: {
          v: 1,
          type: 'token_response',
          id: 'c1',
          token: 'tok-from-code',
          expiresAt: T0 + SKEW + 600_000,
          expiresIn: 600_000,
        },
        targetOrigin: NEWS,
      },
    ])
    expect(h.cache.read()).toMatchObject({ token: 'tok-from-code', clockOffsetMs: SKEW })
  })

  it('handles messages one at a time: a token_request never overtakes the exchange before it', async () => {
    let finish: (answer: TokenAnswer) => void = () => {}
    h.api.exchangeCode.mockImplementation(() => new Promise<TokenAnswer>((resolve) => (finish = resolve)))
    h.frame.receive(exchange('c1'), { origin: NEWS, source: h.page })
    h.frame.receive(tokenRequest('t1'), { origin: NEWS, source: h.page })
    await settle()
    expect(h.replies()).toEqual([]) // the token_request waits behind the exchange
    finish(tokenAnswer('tok-from-code'))
    await settle()
    expect(h.replies().map((r) => [r.message.id, r.message.token])).toEqual([
      ['c1', 'tok-from-code'],
      ['t1', 'tok-from-code'],
    ])
    expect(h.canSeeCookies).not.toHaveBeenCalled()
    expect(h.api.tokenFromSession).not.toHaveBeenCalled()
  })

  it('passes on invalid_grant and caches nothing', async () => {
    h.api.exchangeCode.mockRejectedValue(new FrameApiError('invalid_grant'))
    await h.send(exchange())
    expect(h.replies()[0]?.message).toEqual({ v: 1, type: 'error', id: 'c1', code: 'invalid_grant' })
    expect(h.cache.read()).toBeNull()
  })
})

describe('check', () => {
  beforeEach(async () => {
    await h.send(hello())
    h.page.posted.length = 0
  })

  it('answers not valid without a server call when nothing is cached', async () => {
    await h.send({ v: 1, type: 'check', id: 'k1' })
    expect(h.apiCalls()).toBe(0)
    expect(h.replies()[0]).toEqual({
      message: {
        v: 1,
        type: 'check_response',
        id: 'k1',
        valid: false,
        reason: 'unknown',
        expiresAt: null,
        serverTime: T0,
      },
      targetOrigin: NEWS,
    })
  })

  it('asks the server about the cached token and keeps it while valid', async () => {
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    await h.send({ v: 1, type: 'check', id: 'k1' })
    expect(h.api.check).toHaveBeenCalledExactlyOnceWith(authkey, 'cached')
    expect(h.replies()[0]?.message).toEqual({
      v: 1,
      type: 'check_response',
      id: 'k1',
      valid: true,
      reason: null,
      expiresAt: T0 + 600_000,
      serverTime: T0,
    })
    expect(h.cache.read()?.token).toBe('cached')
  })

  it('forgets the cached token when the server says it is no longer valid', async () => {
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    h.api.check.mockResolvedValue({ valid: false, reason: 'replaced', expiresAt: null, serverTime: T0 })
    await h.send({ v: 1, type: 'check', id: 'k1' })
    expect(h.replies()[0]?.message).toMatchObject({
      type: 'check_response',
      valid: false,
      reason: 'replaced',
    })
    expect(h.cache.read()).toBeNull()
  })
})

describe('logout', () => {
  beforeEach(async () => {
    await h.send(hello())
    h.page.posted.length = 0
  })

  it('clears the cache, signs the token out at the server, and answers logged_out', async () => {
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    await h.send({ v: 1, type: 'logout', id: 'l1' })
    expect(h.api.logout).toHaveBeenCalledExactlyOnceWith(authkey, 'cached')
    expect(h.cache.read()).toBeNull()
    expect(h.storage.getItem('passport:token:news')).toBeNull()
    expect(h.replies()).toEqual([{ message: { v: 1, type: 'logged_out', id: 'l1' }, targetOrigin: NEWS }])
    await h.send(tokenRequest('t-after'))
    expect(h.replies()[1]?.message).toMatchObject({ type: 'error', id: 't-after', code: 'login_required' })
  })

  it('answers logged_out without a server call when nothing is cached', async () => {
    await h.send({ v: 1, type: 'logout', id: 'l1' })
    expect(h.apiCalls()).toBe(0)
    expect(h.replies()[0]?.message).toEqual({ v: 1, type: 'logged_out', id: 'l1' })
  })

  it('still clears the cache when the server refuses, and reports the error', async () => {
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    h.api.logout.mockRejectedValue(new FrameApiError('temporarily_unavailable'))
    await h.send({ v: 1, type: 'logout', id: 'l1' })
    expect(h.cache.read()).toBeNull()
    expect(h.replies()[0]?.message).toEqual({
      v: 1,
      type: 'error',
      id: 'l1',
      code: 'temporarily_unavailable',
    })
  })
})

describe('replies (A5)', () => {
  it('always target the bound origin, never "*"', async () => {
    h.canSeeCookies.mockResolvedValue(true)
    await h.send(hello('h', fakeAuthkey('shop')), { origin: NEWS_TLS }) // error before binding
    await h.send(hello(), { origin: NEWS_TLS })
    await h.send(tokenRequest())
    await h.send({ v: 1, type: 'check', id: 'k' }, { origin: NEWS_TLS })
    await h.send({ v: 1, type: 'bogus', id: 'b' }, { origin: NEWS_TLS })
    await h.send(
      { v: 1, type: 'code_exchange', id: 'c', code: 'x', codeVerifier: 'y', redirectUri: 'z' },
      { origin: NEWS_TLS },
    )
    await h.send({ v: 1, type: 'logout', id: 'l' }, { origin: NEWS_TLS })
    await h.send(tokenRequest('t2'), { origin: NEWS_TLS })
    const replies = h.replies()
    expect(replies.map((r) => r.message.id)).toEqual(['h', 'h1', 'k', 'b', 'c', 'l', 't2'])
    for (const reply of replies) expect(reply.targetOrigin).toBe(NEWS_TLS)
  })
})

describe('refresh through the agent', () => {
  const withRefresh = (token: string, expiresAt: number) => ({
    token,
    expiresAt,
    clockOffsetMs: 0,
    refreshToken: 'r'.repeat(43),
    refreshAt: expiresAt - 300_000,
    refreshExpiresAt: T0 + 86_400_000,
  })

  it('token_request with an expired token but a live refresh credential refreshes and answers', async () => {
    h.cache.write(withRefresh('old', T0 - 1_000))
    await h.send(hello())
    await h.send(tokenRequest('t1'))
    expect(h.api.refresh).toHaveBeenCalledExactlyOnceWith(authkey, 'r'.repeat(43))
    expect(h.replies()[1]?.message).toMatchObject({
      type: 'token_response',
      id: 't1',
      token: 'tok-from-refresh',
    })
    expect(h.api.tokenFromSession).not.toHaveBeenCalled()
  })

  it('a refresh request rotates now, even with a fresh token, and answers the new token', async () => {
    h.cache.write(withRefresh('fresh', T0 + 600_000))
    await h.send(hello())
    await h.send({ v: 1, type: 'refresh', id: 'r1' })
    expect(h.api.refresh).toHaveBeenCalledOnce()
    expect(h.replies()[1]).toEqual({
      message: expect.objectContaining({ type: 'token_response', id: 'r1', token: 'tok-from-refresh' }),
      targetOrigin: NEWS,
    })
  })

  it('a refused refresh tells the page signed_out with the reason, to its exact origin, and forgets the token', async () => {
    h.cache.write(withRefresh('old', T0 - 1_000))
    h.api.refresh.mockRejectedValue(new FrameApiError('invalid_grant', 'replaced'))
    await h.send(hello())
    await h.send(tokenRequest('t1'))
    expect(h.replies().slice(1)).toEqual([
      {
        message: { v: 1, type: 'session_event', event: 'signed_out', reason: 'replaced' },
        targetOrigin: NEWS,
      },
      {
        message: { v: 1, type: 'error', id: 't1', code: 'invalid_grant', reason: 'replaced' },
        targetOrigin: NEWS,
      },
    ])
    expect(h.cache.readRenewable()).toBeNull()
  })

  it('check with a dead refresh credential answers invalid with the reason', async () => {
    h.cache.write(withRefresh('old', T0 - 1_000))
    h.api.refresh.mockRejectedValue(new FrameApiError('invalid_grant', 'signed_out'))
    await h.send(hello())
    await h.send({ v: 1, type: 'check', id: 'c1' })
    expect(h.replies().at(-1)?.message).toMatchObject({
      type: 'check_response',
      valid: false,
      reason: 'signed_out',
    })
    expect(h.api.check).not.toHaveBeenCalled()
  })

  it('logout sends even an expired token, so the session still ends', async () => {
    h.cache.write(withRefresh('expired-token', T0 - 1_000))
    await h.send(hello())
    await h.send({ v: 1, type: 'logout', id: 'l1' })
    expect(h.api.logout).toHaveBeenCalledExactlyOnceWith(authkey, 'expired-token')
  })
})

describe('approval prompt hooks (given to the live channel, which brings the requests)', () => {
  let given: LiveOpenDeps
  const clearPrompt = vi.fn()
  beforeEach(async () => {
    clearPrompt.mockReset()
    h = setup({
      live: async (deps) => {
        given = deps
        return { start: () => {}, stop: () => {}, announceEnded: () => {}, clearPrompt }
      },
    })
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: SKEW })
    await h.send(hello())
  })

  it('asks only the bound page to show or hide the frame, never telling it the numbers', async () => {
    given.setVisible(true)
    given.setVisible(false)
    expect(h.replies().slice(-2)).toEqual([
      { message: { v: 1, type: 'frame_display', visible: true }, targetOrigin: NEWS },
      { message: { v: 1, type: 'frame_display', visible: false }, targetOrigin: NEWS },
    ])
  })

  it("gives the channel this device's live token for the site and its authkey", async () => {
    expect(await given.token()).toBe('cached')
    expect(given.authkey()).toBe(authkey)
  })

  it('server time for expiry uses the clock offset the token came with', () => {
    expect(given.serverNow()).toBe(T0 + SKEW)
  })

  it('a logout takes any prompt down', async () => {
    await h.send({ v: 1, type: 'logout', id: 'l1' })
    expect(clearPrompt).toHaveBeenCalled()
  })

  it('an ending pushed by the channel takes it down too', async () => {
    given.onEnded('replaced')
    await settle()
    expect(clearPrompt).toHaveBeenCalled()
    expect(h.replies().at(-1)?.message).toMatchObject({ type: 'session_event', reason: 'replaced' })
  })
})

describe('proof_request (DPoP-bound site tokens, issue 13)', () => {
  const prove = vi.fn<NonNullable<FrameAgentDeps['proveForSite']>>(async (r) => `proof:${r.method}:${r.url}`)
  const proofRequest = (url: string, method = 'GET') => ({
    v: 1,
    type: 'proof_request',
    id: 'p1',
    method,
    url,
  })
  beforeEach(() => {
    prove.mockClear()
    h = setup({ proveForSite: prove })
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
  })

  it("answers with the token and a proof for a URL on the site's own origin", async () => {
    await h.send(hello())
    await h.send(proofRequest(`${NEWS}/api/me?x=1`))
    expect(prove).toHaveBeenCalledExactlyOnceWith({
      method: 'GET',
      url: `${NEWS}/api/me?x=1`,
      accessToken: 'cached',
    })
    expect(h.replies().at(-1)).toEqual({
      message: {
        v: 1,
        type: 'proof_response',
        id: 'p1',
        token: 'cached',
        proof: `proof:GET:${NEWS}/api/me?x=1`,
      },
      targetOrigin: NEWS,
    })
  })

  it.each([
    ['the passport itself (its own API)', 'http://passport.localhost:8080/api/frame/approval'],
    ['another site', 'http://shop.localhost:8082/api/me'],
    ['a look-alike origin', 'http://news.localhost:8081.evil.localhost/api/me'],
    ['not a URL', 'api/me'],
  ])('refuses a proof for %s, and makes none', async (_, url) => {
    await h.send(hello())
    await h.send(proofRequest(url))
    expect(prove).not.toHaveBeenCalled()
    expect(h.replies().at(-1)?.message).toMatchObject({ type: 'error', code: 'invalid_request' })
  })

  it('refuses a malformed method before anything else', async () => {
    await h.send(hello())
    await h.send(proofRequest(`${NEWS}/api/me`, 'get'))
    expect(prove).not.toHaveBeenCalled()
    expect(h.replies().at(-1)?.message).toMatchObject({ type: 'error', code: 'invalid_request' })
  })

  it('says login_required without a token', async () => {
    h.cache.clear()
    await h.send(hello())
    await h.send(proofRequest(`${NEWS}/api/me`))
    expect(prove).not.toHaveBeenCalled()
    expect(h.replies().at(-1)?.message).toMatchObject({ type: 'error', code: 'login_required' })
  })
})

describe('message flood (A10)', () => {
  it('A10: 10,000 messages in a second from the bound page reach the server a handful of times, the excess answered rate_limited', async () => {
    await h.send(hello())
    const codeExchange = (i: number) => ({
      v: 1,
      type: 'code_exchange',
      id: `c${i}`,
      code: 'a'.repeat(43),
      codeVerifier: 'v'.repeat(43),
      redirectUri: `${NEWS}/`,
    })
    for (let i = 0; i < 10_000; i++) {
      h.frame.receive(i % 2 ? codeExchange(i) : { v: 1, type: 'check', id: `k${i}` }, {
        origin: NEWS,
        source: h.page,
      })
    }
    await settle()
    expect(h.apiCalls()).toBeLessThanOrEqual(FRAME_MESSAGES_PER_SECOND)
    const limited = h.replies().filter((r) => r.message.code === 'rate_limited')
    expect(limited.length).toBeGreaterThan(9_000)
    for (const r of limited) expect(r.targetOrigin).toBe(NEWS)
    // Logged once per window, not once per message.
    expect(h.log.mock.calls.filter(([event]) => event === 'pm_rate_limited')).toHaveLength(1)
    // The next second is served again.
    h.clock.now += 1000
    await h.send({ v: 1, type: 'check', id: 'after' })
    expect(h.replies().at(-1)?.message).toMatchObject({ type: 'check_response', id: 'after' })
  })

  it('A10: token requests the cache answers are never limited (no server call, however many)', async () => {
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    await h.send(hello())
    for (let i = 0; i < 1000; i++) h.frame.receive(tokenRequest(`t${i}`), { origin: NEWS, source: h.page })
    await settle()
    expect(h.apiCalls()).toBe(0)
    expect(h.replies().filter((r) => r.message.type === 'token_response')).toHaveLength(1000)
  })

  it('A10: a flood from an unregistered origin gets no reply and no server call at all', async () => {
    await h.send(hello())
    for (let i = 0; i < 10_000; i++) {
      h.frame.receive(
        { v: 1, type: 'token_request', id: `e${i}` },
        { origin: 'http://evil.localhost:8083', source: h.page },
      )
    }
    await settle()
    expect(h.apiCalls()).toBe(0)
    expect(h.replies()).toHaveLength(1) // the ready to the hello
  })
})

describe('the passport-wide shared state (FedCM-connected sites, issue 17)', () => {
  const connected = () => {
    let onNews: ((news: SharedNews) => void) | null = null
    const announce = vi.fn<(news: SharedNews) => void>()
    const harness = setup({
      connectShared: async (hooks) => {
        onNews = (n) => actOnNews(hooks, n)
        return { announce }
      },
    })
    return { harness, announce, news: (n: SharedNews) => onNews?.(n) }
  }

  it('a token request of a frame holding storage access goes to the passport without asking the browser again', async () => {
    // Storage access granted means the passport's cookie goes with the request: asking the
    // browser once more is a round trip the token would wait for (issue 17).
    const { harness } = connected()
    await harness.send(hello())
    await harness.send(tokenRequest())
    expect(harness.canSeeCookies).not.toHaveBeenCalled()
    expect(harness.api.tokenFromSession).toHaveBeenCalledWith(authkey)
    expect(harness.replies().at(-1)?.message).toMatchObject({
      type: 'token_response',
      id: 't1',
      token: 'tok-from-session',
    })
  })

  it('a FedCM frame the browser gave no storage access asks whether it sees cookies, and takes no token', async () => {
    const harness = setup({ connectShared: async () => null })
    await harness.send(hello())
    await harness.send(tokenRequest())
    expect(harness.canSeeCookies).toHaveBeenCalledOnce()
    expect(harness.api.tokenFromSession).not.toHaveBeenCalled()
    expect(harness.replies().at(-1)?.message).toMatchObject({
      type: 'error',
      id: 't1',
      code: 'login_required',
    })
  })

  it('a sign-in made on another connected site is taken up from the session and told to the page', async () => {
    const { harness, news } = connected()
    await harness.send(hello())
    news('signed_in')
    await settle()
    expect(harness.api.tokenFromSession).toHaveBeenCalledWith(authkey)
    expect(harness.replies().at(-1)).toEqual({
      message: { v: 1, type: 'session_event', event: 'signed_in' },
      targetOrigin: NEWS,
    })
  })

  it('a frame that holds a token ignores news of a sign-in; one not yet bound to a page ignores all news', async () => {
    const { harness, news } = connected()
    news('signed_in')
    await settle()
    expect(harness.api.tokenFromSession).not.toHaveBeenCalled()
    await harness.send(hello())
    harness.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    news('signed_in')
    await settle()
    expect(harness.api.tokenFromSession).not.toHaveBeenCalled()
  })

  it('a sign-out elsewhere is confirmed with the passport, then told to the page', async () => {
    const { harness, news } = connected()
    await harness.send(hello())
    harness.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    harness.api.check.mockResolvedValueOnce({
      valid: false,
      reason: 'signed_out',
      expiresAt: null,
      serverTime: T0,
    })
    news('signed_out')
    await settle()
    expect(harness.api.check).toHaveBeenCalledWith(authkey, 'cached')
    expect(harness.replies().at(-1)?.message).toEqual({
      v: 1,
      type: 'session_event',
      event: 'signed_out',
      reason: 'signed_out',
    })
    expect(harness.cache.readRenewable()).toBeNull()
  })

  it('a sign-out elsewhere the passport still calls valid changes nothing', async () => {
    const { harness, news } = connected()
    await harness.send(hello())
    harness.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    news('signed_out')
    await settle()
    expect(harness.cache.read()?.token).toBe('cached')
  })

  it('announces a sign-in made here (code exchange) and a sign-out made here', async () => {
    const { harness, announce } = connected()
    await harness.send(hello())
    await harness.send({
      v: 1,
      type: 'code_exchange',
      id: 'c1',
      code: 'c',
      codeVerifier: 'v'.repeat(43),
      redirectUri: NEWS,
    })
    await settle()
    expect(announce).toHaveBeenCalledWith('signed_in')
    await harness.send({ v: 1, type: 'logout', id: 'l1' })
    await settle()
    expect(announce).toHaveBeenLastCalledWith('signed_out')
  })
})

describe('"Continue with Passport" (browsers without FedCM, issue 17 §4)', () => {
  type Hooks = Parameters<NonNullable<FrameAgentDeps['showContinue']>>[0]
  const continueRequest = (id = 'c1') => ({ v: 1, type: 'continue', id })
  let hooks: Hooks | null
  beforeEach(() => {
    hooks = null
    h = setup({
      showContinue: (given) => {
        hooks = given
      },
    })
  })

  it('shows the button, makes the frame visible on its word, and answers ready', async () => {
    await h.send(hello())
    await h.send(continueRequest())
    expect(hooks).not.toBeNull()
    expect(h.replies().at(-1)?.message).toEqual({ v: 1, type: 'ready', id: 'c1', hasToken: false })
    hooks?.setVisible(true)
    expect(h.replies().at(-1)).toEqual({
      message: { v: 1, type: 'frame_display', visible: true },
      targetOrigin: NEWS,
    })
    expect(h.api.tokenFromSession).not.toHaveBeenCalled() // nothing before the click and the grant
  })

  it('after the grant takes a token from the passport session and tells the page it signed in', async () => {
    await h.send(hello())
    await h.send(continueRequest())
    await expect(hooks?.signIn()).resolves.toBeUndefined()
    expect(h.api.tokenFromSession).toHaveBeenCalledWith(authkey)
    expect(h.replies().at(-1)).toEqual({
      message: { v: 1, type: 'session_event', event: 'signed_in' },
      targetOrigin: NEWS,
    })
    await h.send(tokenRequest('t2'))
    expect(h.replies().at(-1)?.message).toMatchObject({
      type: 'token_response',
      id: 't2',
      token: 'tok-from-session',
    })
  })

  it('with no passport session fails to the button and tells the page nothing', async () => {
    h.api.tokenFromSession.mockRejectedValueOnce(new FrameApiError('login_required'))
    await h.send(hello())
    await h.send(continueRequest())
    const before = h.replies().length
    await expect(hooks?.signIn()).rejects.toThrow()
    expect(h.replies().length).toBe(before)
    expect(h.cache.readRenewable()).toBeNull()
  })

  it('is not shown before hello', async () => {
    await h.send(continueRequest('c0'))
    expect(h.replies().at(-1)?.message).toMatchObject({ type: 'error', id: 'c0', code: 'invalid_request' })
    expect(hooks).toBeNull()
  })

  it('is refused to another origin than the bound page', async () => {
    await h.send(hello())
    await h.send(continueRequest(), { origin: 'http://evil.localhost:8083' })
    expect(hooks).toBeNull()
  })

  it('where the frame cannot draw it, answers ready and does nothing else', async () => {
    h = setup()
    await h.send(hello())
    await h.send(continueRequest())
    expect(h.replies().at(-1)?.message).toEqual({ v: 1, type: 'ready', id: 'c1', hasToken: false })
    expect(h.apiCalls()).toBe(0)
  })
})

describe('the live channel, opened on demand', () => {
  const fakeLive = () => {
    const calls: string[] = []
    const channel = {
      start: () => void calls.push('start'),
      stop: () => void calls.push('stop'),
      announceEnded: (reason: string) => void calls.push(`ended:${reason}`),
      clearPrompt: () => {},
    }
    const open = vi.fn<NonNullable<FrameAgentDeps['live']>>(async () => channel)
    return { calls, open }
  }

  it('is not even loaded by a frame with no sign-in to hand out', async () => {
    const live = fakeLive()
    h = setup({ live: live.open })
    await h.send(hello())
    await h.send(tokenRequest())
    expect(h.replies()[1]?.message).toMatchObject({ type: 'error', code: 'login_required' })
    expect(live.open).not.toHaveBeenCalled()
  })

  it('starts once the page says hello to a frame holding a sign-in, after the page is answered', async () => {
    const live = fakeLive()
    h = setup({ live: live.open })
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    await h.send(hello())
    expect(h.replies()[0]?.message).toMatchObject({ type: 'ready', hasToken: true })
    expect(live.open).toHaveBeenCalledTimes(1)
    expect(live.calls).toEqual(['start'])
  })

  it('starts on a code exchange, and is loaded once whatever the number of uses', async () => {
    const live = fakeLive()
    h = setup({ live: live.open })
    await h.send(hello())
    await h.send({
      v: 1,
      type: 'code_exchange',
      id: 'c1',
      code: 'c0de',
      codeVerifier: 'v'.repeat(43),
      redirectUri: `${NEWS}/`,
    })
    await h.send(tokenRequest('t2'))
    await h.send({ v: 1, type: 'logout', id: 'l1' })
    expect(live.open).toHaveBeenCalledTimes(1)
    expect(live.calls).toEqual(['start', 'ended:signed_out'])
  })

  it('listens (without leading) in a frame that hands out a sign-in another tab made', async () => {
    const live = fakeLive()
    h = setup({ live: live.open })
    await h.send(hello())
    h.cache.write({ token: 'from-another-tab', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    await h.send(tokenRequest())
    expect(h.replies()[1]?.message).toMatchObject({ type: 'token_response', token: 'from-another-tab' })
    expect(live.open).toHaveBeenCalledTimes(1)
    expect(live.calls).toEqual([])
  })

  it('loads again on the next use when the chunk could not be fetched, and starts then', async () => {
    const live = fakeLive()
    live.open.mockRejectedValueOnce(new TypeError('Failed to fetch dynamically imported module'))
    h = setup({ live: live.open })
    h.cache.write({ token: 'cached', expiresAt: T0 + 600_000, clockOffsetMs: 0 })
    await h.send(hello())
    expect(live.calls).toEqual([])
    await h.send(tokenRequest())
    expect(h.replies()[1]?.message).toMatchObject({ type: 'token_response', token: 'cached' })
    expect(live.open).toHaveBeenCalledTimes(2)
    // The start hello asked for happens now; then the logout's announcement, in that order.
    await h.send({ v: 1, type: 'logout', id: 'l1' })
    expect(live.calls).toEqual(['start', 'ended:signed_out'])
  })

  it('the refresher too: not loaded without a sign-in, loaded to schedule one, a failed load is a passing failure', async () => {
    const loadSession = vi.fn<FrameAgentDeps['loadSession']>(async () => ({ createRefresher, answerRequest }))
    h = setup({ loadSession })
    await h.send(hello())
    await h.send(tokenRequest())
    expect(loadSession).not.toHaveBeenCalled()

    h = setup({ loadSession })
    h.cache.write({
      token: 'expired',
      expiresAt: T0 - 1,
      clockOffsetMs: 0,
      refreshToken: 'r1',
      refreshAt: T0 - 60_000,
      refreshExpiresAt: T0 + 86_400_000,
    })
    const unreachable = new TypeError('Failed to fetch dynamically imported module')
    loadSession.mockRejectedValueOnce(unreachable).mockRejectedValueOnce(unreachable)
    await h.send(hello()) // its schedule finds no chunk; the token request after it neither
    await h.send(tokenRequest('t2'))
    expect(h.replies()[1]?.message).toMatchObject({
      type: 'error',
      id: 't2',
      code: 'temporarily_unavailable',
    })
    await h.send(tokenRequest('t3'))
    expect(h.replies()[2]?.message).toMatchObject({
      type: 'token_response',
      id: 't3',
      token: 'tok-from-refresh',
    })
    expect(loadSession).toHaveBeenCalledTimes(3)
  })
})
