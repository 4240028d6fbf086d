import { createServer } from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest'
import WebSocket from 'ws'
import type { PassportServer } from '../server.ts'
import { createDeviceApprovals } from '../services/device-approval.ts'
import { sweepExpiredSessions } from '../services/expiry-sweeper.ts'
import {
  createHttpLiveAuthenticator,
  createStoreLiveAuthenticator,
  type LiveAuthenticator,
} from '../services/live-auth.ts'
import { requestRefresh } from '../services/refresh-request.ts'
import { findLiveSession, SESSION_COOKIE } from '../services/sessions.ts'
import { createTestFrameKey, defaultFrameKey, type TestFrameKey } from '../test-dpop.ts'
import { frameApi, signIn, silentSignIn } from '../test-flows.ts'
import {
  ALL_LOGIN_MODES,
  addSite,
  addUser,
  freePort,
  type LogLine,
  startTestServer,
  type TestDeps,
} from '../test-support.ts'
import { attachLiveServer, CLOSE_SESSION_ENDED, CLOSE_UNAUTHENTICATED, LIVE_PROTOCOL } from './live-server.ts'

const SECRET = 'v'.repeat(40)
let server: PassportServer
let deps: TestDeps
let issuer: string
let wsBase: string
let news: Awaited<ReturnType<typeof addSite>>
let shop: Awaited<ReturnType<typeof addSite>>
let alice: Awaited<ReturnType<typeof addUser>>
let logs: LogLine[]

beforeAll(async () => {
  const started = await startTestServer({ liveValidationSecret: SECRET })
  ;({ server, deps, issuer, logs } = started)
  wsBase = `ws://127.0.0.1:${started.port}/live`
  alice = await addUser(deps, 'alice')
  news = await addSite(deps, { id: 'news', loginModes: ALL_LOGIN_MODES })
  shop = await addSite(deps, { id: 'shop', loginModes: ALL_LOGIN_MODES })
})
afterAll(() => server.close())

const api = (path: string, body: unknown) => frameApi(server.app, path, body, { Origin: issuer })

interface Opened {
  ws: WebSocket
  /** Every message after the challenge. */
  messages: Record<string, unknown>[]
  /** The proof this socket answered its challenge with (to replay it elsewhere). */
  proof: string | null
  closed: Promise<{ code: number }>
}

/**
 * Opens a socket the way the frame does: no credential in the URL; the server's first message
 * is a challenge, answered with the token and a DPoP proof by `key` (the frame's, by default)
 * over it. `answer` replaces that answer (an attacker's); null sends nothing. Resolves once
 * the answer is sent, or rejects with the HTTP status of a refused upgrade.
 */
function connect(
  input: {
    site?: string
    token?: string
    key?: TestFrameKey
    lastEventId?: number
    origin?: string
    answer?: (challenge: string) => string | null
  },
  base = wsBase,
): Promise<Opened> {
  const query = new URLSearchParams({
    ...(input.site ? { site: input.site } : {}),
    ...(input.lastEventId !== undefined ? { last_event_id: String(input.lastEventId) } : {}),
  })
  const ws = new WebSocket(`${base}?${query}`, [LIVE_PROTOCOL], {
    headers: { Origin: input.origin ?? issuer },
  })
  const messages: Record<string, unknown>[] = []
  const closed = new Promise<{ code: number }>((resolve) => ws.on('close', (code) => resolve({ code })))
  const key = input.key ?? defaultFrameKey
  return new Promise((resolve, reject) => {
    const opened: Opened = { ws, messages, proof: null, closed }
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as Record<string, unknown>
      if (message.type !== 'challenge') {
        messages.push(message)
        return
      }
      const challenge = String(message.nonce)
      const answer = input.answer
        ? input.answer(challenge)
        : (() => {
            opened.proof = key.proof({
              method: 'GET',
              url: `${issuer.replace(/^http/, 'ws')}/live`,
              accessToken: input.token ?? '',
              nonce: challenge,
            })
            return JSON.stringify({ type: 'auth', token: input.token ?? '', proof: opened.proof })
          })()
      if (answer !== null) ws.send(answer)
      resolve(opened)
    })
    ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    ws.on('error', reject)
  })
}

const until = async (check: () => boolean, ms = 1000) => {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > ms) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 10))
  }
  return Date.now() - start
}

const liveOn = (site: typeof news, token: string, lastEventId?: number) =>
  connect({ site: site.site.id, token, ...(lastEventId !== undefined ? { lastEventId } : {}) })

describe('live channel: refresh_now', () => {
  test("reaches the device's sockets on that site only, with the request id", async () => {
    const { jar, token } = await signIn(server.app, news, alice, new Map(), issuer)
    const shopToken = (await silentSignIn(server.app, shop, jar, issuer)).token ?? ''
    // Another user's device on the same site (one device per site: alice's own would replace hers).
    const other = await signIn(server.app, shop, await addUser(deps, 'carol'), new Map(), issuer)
    const onNews = await liveOn(news, token)
    const onShop = await liveOn(shop, shopToken)
    const otherShop = await liveOn(shop, other.token)
    await until(() => [onNews, onShop, otherShop].every((s) => s.messages.length === 1))
    const session = await findLiveSession(deps, jar.get(SESSION_COOKIE) ?? '')
    const { requestId } = await requestRefresh(deps, { sessionId: session?.id ?? '', siteId: 'shop' })
    await until(() => onShop.messages.length === 2)
    expect(onShop.messages[1]).toEqual({ type: 'refresh_now', request_id: requestId })
    await new Promise((r) => setTimeout(r, 100))
    expect(onNews.messages).toHaveLength(1)
    expect(otherShop.messages).toHaveLength(1)
    for (const s of [onNews, onShop, otherShop]) s.ws.close()
  })
})

describe('live channel: pushed endings', () => {
  test('F5: a sign-out reaches every socket of the session on every site within a second, then closes', async () => {
    const { jar, token } = await signIn(server.app, news, alice, new Map(), issuer)
    const shopToken = (await silentSignIn(server.app, shop, jar, issuer)).token ?? ''
    const onNews = await liveOn(news, token)
    const onShop = await liveOn(shop, shopToken)
    await until(() => onNews.messages.length > 0 && onShop.messages.length > 0)
    expect(onNews.messages[0]).toMatchObject({ type: 'welcome' })

    await api('logout', { authkey: shop.authkey, token: shopToken })
    const took = await until(() => onNews.messages.length === 2 && onShop.messages.length === 2)
    expect(took).toBeLessThan(1000)
    for (const socket of [onNews, onShop]) {
      expect(socket.messages[1]).toMatchObject({ type: 'session_event', reason: 'signed_out', site_id: null })
      expect((await socket.closed).code).toBe(CLOSE_SESSION_ENDED)
    }
  })

  test("a newer sign-in on another device ends only that site's socket, with replaced", async () => {
    const first = await signIn(server.app, news, alice, new Map(), issuer)
    const firstShop = (await silentSignIn(server.app, shop, first.jar, issuer)).token ?? ''
    const onNews = await liveOn(news, first.token)
    const onShop = await liveOn(shop, firstShop)
    await until(() => onNews.messages.length === 1 && onShop.messages.length === 1)
    await signIn(server.app, news, alice, new Map(), issuer) // the second device
    await until(() => onNews.messages.length === 2)
    expect(onNews.messages[1]).toMatchObject({ type: 'session_event', reason: 'replaced', site_id: 'news' })
    await new Promise((r) => setTimeout(r, 100))
    expect(onShop.messages).toHaveLength(1)
    expect(onShop.ws.readyState).toBe(WebSocket.OPEN)
    onShop.ws.close()
  })

  test('F8: a sign-out made while disconnected: the reconnect is refused (4401) and the check says why', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const before = await liveOn(news, token)
    await until(() => before.messages.length === 1)
    before.ws.close()
    await before.closed
    await api('logout', { authkey: news.authkey, token })
    const after = await liveOn(news, token, before.messages[0]?.last_event_id as number)
    expect((await after.closed).code).toBe(CLOSE_UNAUTHENTICATED)
    expect(after.messages).toEqual([])
    const check = await api('check', { authkey: news.authkey, token })
    expect(await check.json()).toMatchObject({ valid: false, reason: 'signed_out' })
  })
})

describe('live channel: timeouts', () => {
  test('a session idle past the idle timeout (fake clock) is pushed as expired: "timed out"', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const socket = await liveOn(news, token)
    await until(() => socket.messages.length === 1)
    const idle = deps.config.sessionIdleSeconds * 1000
    deps.clock.advance(idle)
    try {
      await sweepExpiredSessions(deps)
      await until(() => socket.messages.length === 2)
      expect(socket.messages[1]).toMatchObject({ type: 'session_event', reason: 'expired' })
    } finally {
      deps.clock.advance(-idle)
    }
  })

  test('a session reaching its lifetime (fake clock) is pushed as expired', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const socket = await liveOn(news, token)
    await until(() => socket.messages.length === 1)
    deps.clock.advance(deps.config.sessionTtlSeconds * 1000)
    try {
      await sweepExpiredSessions(deps)
      await until(() => socket.messages.length === 2)
      expect(socket.messages[1]).toMatchObject({ type: 'session_event', reason: 'expired' })
    } finally {
      deps.clock.advance(-deps.config.sessionTtlSeconds * 1000)
    }
  })
})

describe('live channel: refused upgrades and unanswered challenges (F1-F4, issue 13)', () => {
  test.each([
    ['no site', { token: 'x' }, 'HTTP 400'],
    ['a malformed site', { site: '../news', token: 'x' }, 'HTTP 400'],
  ])('F1: %s: refused before any socket', async (_, input, expected) => {
    await expect(connect(input)).rejects.toThrow(expected)
  })

  test('F3: a hostile Origin: 403 before any socket, whatever it would answer', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    await expect(connect({ site: 'news', token, origin: 'http://evil.localhost:8083' })).rejects.toThrow(
      'HTTP 403',
    )
    await expect(connect({ site: 'news', token, origin: 'http://news.localhost:8081' })).rejects.toThrow(
      'HTTP 403',
    )
  })

  test("F2, F4: a live token taken from News's page, forged Origin, answered with the thief's own key: 4401, nothing heard", async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const stolen = await connect({ site: 'news', token, key: createTestFrameKey() })
    expect((await stolen.closed).code).toBe(CLOSE_UNAUTHENTICATED)
    expect(stolen.messages).toEqual([])
    // The device itself is untouched.
    const own = await liveOn(news, token)
    await until(() => own.messages.length === 1)
    expect(own.messages[0]).toMatchObject({ type: 'welcome' })
    own.ws.close()
  })

  test('the token with no proof, a garbage answer, or a binary one: 4401', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    for (const answer of [
      () => JSON.stringify({ type: 'auth', token, proof: '' }),
      () => JSON.stringify({ type: 'auth', token }),
      () => 'not json',
      () => JSON.stringify({ type: 'welcome' }),
    ]) {
      const socket = await connect({ site: 'news', answer })
      expect((await socket.closed).code).toBe(CLOSE_UNAUTHENTICATED)
    }
  })

  test("F2: a proof captured on one socket is refused on another (it names the other's challenge)", async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const first = await liveOn(news, token)
    await until(() => first.messages.length === 1)
    const replayed = await connect({
      site: 'news',
      answer: () => JSON.stringify({ type: 'auth', token, proof: first.proof }),
    })
    expect((await replayed.closed).code).toBe(CLOSE_UNAUTHENTICATED)
    first.ws.close()
  })

  test("Shop's token on News's socket, and a dead token: 4401", async () => {
    const { jar, token } = await signIn(server.app, news, alice, new Map(), issuer)
    const shopToken = (await silentSignIn(server.app, shop, jar, issuer)).token ?? ''
    const crossed = await connect({ site: 'news', token: shopToken })
    expect((await crossed.closed).code).toBe(CLOSE_UNAUTHENTICATED)
    await api('logout', { authkey: news.authkey, token })
    const dead = await liveOn(news, token)
    expect((await dead.closed).code).toBe(CLOSE_UNAUTHENTICATED)
  })

  test('no answer within the time allowed: 4401', async () => {
    const apart = await startApart(SECRET, { authTimeoutMs: 100 })
    try {
      const silent = await connect({ site: 'news', answer: () => null }, apart.base)
      expect((await silent.closed).code).toBe(CLOSE_UNAUTHENTICATED)
      expect(apart.live.connectionCount()).toBe(0)
    } finally {
      apart.close()
    }
  })

  test('F6: an oversized message closes with 1009; a flood closes with 1008', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const big = await liveOn(news, token)
    await until(() => big.messages.length === 1)
    big.ws.send('x'.repeat(2000))
    expect((await big.closed).code).toBe(1009)

    const flood = await liveOn(news, token)
    await until(() => flood.messages.length === 1)
    for (let i = 0; i < 50; i++) flood.ws.send('{}')
    expect((await flood.closed).code).toBe(1008)
    expect(logs.map((l) => l.event)).toContain('ws_closed')
  })

  test('F4: rejections are logged with a reason and never log the token or the proof', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const stolen = await connect({ site: 'news', token, key: createTestFrameKey() })
    await stolen.closed
    const rejected = logs.filter((l) => l.event === 'ws_upgrade_rejected')
    expect(rejected.map((l) => l.fields.reason)).toContain('invalid_proof_or_token')
    expect(JSON.stringify(logs)).not.toContain(token)
    expect(JSON.stringify(logs)).not.toContain(stolen.proof ?? 'no proof')
  })
})

/** A live-channel server apart from the passport, authenticating sockets over HTTP with `secret`. */
async function startApart(secret: string, limits: Parameters<typeof attachLiveServer>[0]['limits'] = {}) {
  const apart = createServer()
  const port = await freePort()
  const live = attachLiveServer({
    server: apart,
    deps,
    authenticator: createHttpLiveAuthenticator({ passportUrl: issuer, secret }),
    limits,
  })
  await new Promise<void>((r) => apart.listen(port, '127.0.0.1', r))
  return {
    base: `ws://127.0.0.1:${port}/live`,
    live,
    close: () => {
      live.close()
      apart.close()
    },
  }
}

describe('live channel: capacity', () => {
  test('F7: a full server refuses upgrades with 503 before any work, and takes them again when room frees', async () => {
    const { base, live, close } = await startApart(SECRET, { maxConnections: 1 })
    try {
      const { token } = await signIn(server.app, news, alice, new Map(), issuer)
      const first = await connect({ site: 'news', token }, base)
      await until(() => first.messages.length === 1)
      expect(live.connectionCount()).toBe(1)
      await expect(connect({ site: 'news', token }, base)).rejects.toThrow('HTTP 503')
      first.ws.close()
      await first.closed
      await until(() => live.connectionCount() === 0)
      const again = await connect({ site: 'news', token }, base)
      await until(() => again.messages.length === 1)
      again.ws.close()
    } finally {
      close()
    }
  })
})

describe('live channel: a handler that throws (I5)', () => {
  test('I5: a throw while setting up a connection closes that socket with 1011; the server keeps serving', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const since = deps.store.events.since
    deps.store.events.since = async () => {
      throw new Error('disk I/O error')
    }
    try {
      const broken = await liveOn(news, token, 0) // resuming: the log is read
      expect((await broken.closed).code).toBe(1011)
    } finally {
      deps.store.events.since = since
    }
    const healthy = await liveOn(news, token)
    await until(() => healthy.messages.length === 1)
    expect(healthy.messages[0]).toMatchObject({ type: 'welcome' })
    healthy.ws.close()
  })
})

describe('live channel: connects per client address (F7)', () => {
  test('F7: beyond the connects one address may make per minute, 429 with Retry-After before any socket', async () => {
    const { base, close } = await startApart(SECRET, { maxConnectsPerAddress: 2 })
    try {
      const { token } = await signIn(server.app, news, alice, new Map(), issuer)
      for (let i = 0; i < 2; i++) {
        const ok = await connect({ site: 'news', token }, base)
        ok.ws.close()
      }
      const status = await new Promise<{ code: number; retryAfter: string | undefined }>((resolve) => {
        const ws = new WebSocket(`${base}?site=news`, [LIVE_PROTOCOL], { headers: { Origin: issuer } })
        ws.on('unexpected-response', (_req, res) =>
          resolve({ code: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }),
        )
        ws.on('error', () => {})
      })
      expect(status.code).toBe(429)
      expect(Number(status.retryAfter)).toBeGreaterThan(0)
      expect(
        logs.some((l) => l.event === 'ws_upgrade_rejected' && l.fields.reason === 'too_many_connects'),
      ).toBe(true)
    } finally {
      close()
    }
  })
})

describe('live channel running apart from the passport', () => {
  test('authenticates sockets over HTTP with the shared secret; a wrong secret accepts nothing', async () => {
    const right = await startApart(SECRET)
    const wrong = await startApart('w'.repeat(40))
    try {
      const { token } = await signIn(server.app, news, alice, new Map(), issuer)
      const refused = await connect({ site: 'news', token }, wrong.base)
      expect((await refused.closed).code).toBe(CLOSE_UNAUTHENTICATED)
      const ok = await connect({ site: 'news', token }, right.base)
      await until(() => ok.messages.length === 1)
      await api('logout', { authkey: news.authkey, token })
      await until(() => ok.messages.length === 2)
      expect(ok.messages[1]).toMatchObject({ type: 'session_event', reason: 'signed_out' })
    } finally {
      right.close()
      wrong.close()
    }
  })

  test("the validation endpoint refuses a thief's proof and a wrong secret, and never without the secret", async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const body = {
      token,
      proof: createTestFrameKey().proof({
        method: 'GET',
        url: `${issuer.replace(/^http/, 'ws')}/live`,
        accessToken: token,
        nonce: 'n'.repeat(43),
      }),
      nonce: 'n'.repeat(43),
      site: 'news',
    }
    const post = (authorization: string) =>
      server.app.request('/internal/live/validate', {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'Content-Type': 'application/json', Authorization: authorization },
      })
    expect((await post(`Bearer ${SECRET}`)).status).toBe(401)
    expect((await post(`Bearer ${'w'.repeat(40)}`)).status).toBe(401)
  })
})

describe('live channel: sign-in requests from another device', () => {
  const approvals = () => createDeviceApprovals(deps)
  const request = (username: string, address = '10.1.2.3') =>
    approvals().request({
      username,
      site: shop.site,
      kind: 'browser',
      context: '{}',
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0',
      address,
    })

  test("H7: reach every socket of the user (not another user's), without the code or choices, then their closing", async () => {
    const bob = await addUser(deps, `bob${Date.now()}`)
    const mine = await signIn(server.app, news, alice, new Map(), issuer)
    const myShop = (await silentSignIn(server.app, shop, mine.jar, issuer)).token ?? ''
    const bobs = await signIn(server.app, news, bob, new Map(), issuer)
    const onNews = await liveOn(news, mine.token)
    const onShop = await liveOn(shop, myShop)
    const onBob = await liveOn(news, bobs.token)
    await until(() => [onNews, onShop, onBob].every((s) => s.messages.length === 1))

    const opened = await request('alice')
    if (!opened.ok) throw new Error('refused')
    const took = await until(() => onNews.messages.length === 2 && onShop.messages.length === 2)
    expect(took).toBeLessThan(1000)
    for (const socket of [onNews, onShop]) {
      // Exactly these fields: never the code, nor numbers to choose it from; and none of what
      // the request says of itself (site, browser, address), which the frame fetches sealed.
      expect(socket.messages[1]).toEqual({
        type: 'approval_request',
        id: opened.approval.id,
        expires_at: opened.approval.expiresAt,
        same_network: false, // asked from 10.1.2.3, this socket is 127.0.0.1
      })
    }
    const approver = await findLiveSession(deps, mine.jar.get(SESSION_COOKIE))
    if (!approver) throw new Error('no session')
    await approvals().decide({ approvalId: opened.approval.id, approver, answer: { deny: true } })
    await until(() => onNews.messages.length === 3 && onShop.messages.length === 3)
    expect(onNews.messages[2]).toEqual({ type: 'approval_closed', id: opened.approval.id, outcome: 'denied' })
    await new Promise((r) => setTimeout(r, 100))
    expect(onBob.messages).toHaveLength(1) // bob heard nothing
    for (const s of [onNews, onShop, onBob]) s.ws.close()
  })

  test('a socket that connects later is sent the requests still open', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const opened = await request('alice', '127.0.0.1') // from this socket's own address
    if (!opened.ok) throw new Error('refused')
    const late = await liveOn(news, token)
    await until(() => late.messages.some((m) => m.type === 'approval_request' && m.id === opened.approval.id))
    expect(late.messages.find((m) => m.id === opened.approval.id)).toMatchObject({ same_network: true })
    late.ws.close()
  })
})

const HEARTBEAT_SOCKETS = 10

describe('live channel: a throw or a reset costs one socket, never the process (@see issue 14)', () => {
  /** A live server apart, with the authenticator, logger and limits the test gives. */
  async function startWith(
    authenticator: LiveAuthenticator,
    log: TestDeps['log'] = deps.log,
    limits: Parameters<typeof attachLiveServer>[0]['limits'] = {},
  ) {
    const apart = createServer()
    const live = attachLiveServer({ server: apart, deps: { ...deps, log }, authenticator, limits })
    await new Promise<void>((r) => apart.listen(0, '127.0.0.1', r))
    const port = (apart.address() as AddressInfo).port
    return {
      port,
      base: `ws://127.0.0.1:${port}/live`,
      close: () => {
        live.close()
        apart.close()
      },
    }
  }
  const upgrade = (target = '/live?site=news') =>
    [
      `GET ${target} HTTP/1.1`,
      'Host: passport',
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      `Origin: ${issuer}`,
      `Sec-WebSocket-Protocol: ${LIVE_PROTOCOL}`,
      '',
      '',
    ].join('\r\n')
  /** Sends a raw upgrade; resolves with the status line. */
  const rawUpgrade = (port: number, target?: string) =>
    new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write(upgrade(target)))
      socket.on('data', (d) => {
        resolve(String(d).split('\r\n')[0] as string)
        socket.destroy()
      })
      socket.on('error', () => resolve('error'))
    })
  const slowRefusal: LiveAuthenticator = {
    authenticate: () => new Promise((resolve) => setTimeout(() => resolve(null), 100)),
  }

  test('the upgrade to //[ gets 400', async () => {
    const apart = await startWith(slowRefusal)
    try {
      expect(await rawUpgrade(apart.port, '//[')).toBe('HTTP/1.1 400 Bad Request')
      expect(await rawUpgrade(apart.port, 'http://[')).toBe('HTTP/1.1 400 Bad Request')
    } finally {
      apart.close()
    }
  })

  test('a client that resets while its answer is checked does not take the server down', async () => {
    const apart = await startWith(slowRefusal)
    try {
      const { token } = await signIn(server.app, news, alice, new Map(), issuer)
      const first = await connect({ site: 'news', token }, apart.base)
      await new Promise((r) => setTimeout(r, 20))
      ;(first.ws as unknown as { _socket: net.Socket })._socket.resetAndDestroy()
      await new Promise((r) => setTimeout(r, 200)) // the refusal meets the reset socket
      const second = await connect({ site: 'news', token }, apart.base)
      expect((await second.closed).code).toBe(CLOSE_UNAUTHENTICATED)
    } finally {
      apart.close()
    }
  })

  test('close() ends a socket still challenged at once, not after its answer time', async () => {
    const apart = await startWith(slowRefusal)
    try {
      const silent = await connect({ site: 'news', answer: () => null }, apart.base) // never answers
      apart.close()
      // Terminated (1006) by close(), not closed with CLOSE_UNAUTHENTICATED 5 s later: an upgraded
      // socket left open keeps the HTTP server's close() waiting for the browser to go.
      expect((await silent.closed).code).toBe(1006)
    } finally {
      apart.close()
    }
  })

  test('a socket whose answer is being checked when close() runs is ended, never welcomed', async () => {
    const real = createStoreLiveAuthenticator(deps)
    let checked: () => void = () => {}
    const answerChecked = new Promise<void>((resolve) => {
      checked = resolve
    })
    let release: () => void = () => {}
    const apart = await startWith({
      // A real yes, held back until the test lets it go (after close()).
      authenticate: async (input) => {
        const binding = await real.authenticate(input)
        checked()
        return new Promise((resolve) => {
          release = () => resolve(binding)
        })
      },
    })
    try {
      const { token } = await signIn(server.app, news, alice, new Map(), issuer)
      const socket = await connect({ site: 'news', token }, apart.base)
      await answerChecked
      apart.close()
      release()
      expect((await socket.closed).code).toBe(1006)
      expect(socket.messages.some((m) => m.type === 'welcome')).toBe(false)
    } finally {
      apart.close()
    }
  })

  test('an authenticator that throws ends that socket only', async () => {
    const apart = await startWith({
      authenticate: () => {
        throw new TypeError('authenticator bug')
      },
    })
    try {
      const { token } = await signIn(server.app, news, alice, new Map(), issuer)
      for (let i = 0; i < 2; i++) {
        const socket = await connect({ site: 'news', token }, apart.base)
        expect((await socket.closed).code).toBe(1006)
      }
      expect(logs).toContainEqual({
        event: 'server_error',
        fields: { listener: 'live_auth', error: 'TypeError', message: 'authenticator bug' },
      })
    } finally {
      apart.close()
    }
  })

  test('a socket listener that throws closes that socket; the others stay', async () => {
    // A logger that fails (stdout gone) inside the message listener, when it reports a flood.
    const failingLog: TestDeps['log'] = (event, fields) => {
      if (event === 'ws_closed') throw new Error('write EPIPE')
      deps.log(event, fields)
    }
    const apart = await startWith(createStoreLiveAuthenticator(deps), failingLog)
    try {
      const { token } = await signIn(server.app, news, alice, new Map(), issuer)
      const flooder = await connect({ site: 'news', token }, apart.base)
      const quiet = await connect({ site: 'news', token }, apart.base)
      // Welcomed (a request an earlier test left open may follow the welcome).
      await until(() => flooder.messages.length >= 1 && quiet.messages.length >= 1)
      for (let i = 0; i < 25; i++) flooder.ws.send('x')
      expect((await flooder.closed).code).toBe(1006) // terminated by the guard
      expect(quiet.ws.readyState).toBe(WebSocket.OPEN)
      expect(logs).toContainEqual({
        event: 'server_error',
        fields: { listener: 'live_message', error: 'Error', message: 'write EPIPE' },
      })
      quiet.ws.close()
    } finally {
      apart.close()
    }
  })

  /** Two sockets of one sign-in on a live server apart; `limits` as given. */
  async function twoSockets(limits: Parameters<typeof attachLiveServer>[0]['limits'] = {}) {
    const apart = await startWith(createStoreLiveAuthenticator(deps), deps.log, limits)
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const open = async () => {
      const socket = await connect({ site: 'news', token }, apart.base)
      await until(() => socket.messages.length >= 1) // welcomed
      return socket
    }
    const sessionId = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).sid
    return { apart, first: await open(), second: await open(), sessionId: sessionId as string }
  }

  test('a send that throws drops that socket; the others still get the event', async () => {
    const { apart, first, second, sessionId } = await twoSockets()
    // The next thing the server sends is the event: the first send of it throws.
    const send = vi.spyOn(WebSocket.prototype, 'send').mockImplementationOnce(() => {
      throw new Error('send failed')
    })
    try {
      await deps.events.publish({
        id: 999_999,
        type: 'session_ended',
        userId: alice.id,
        sessionId,
        reason: 'revoked',
        at: deps.clock.now(),
      })
      const codes = await Promise.all([first.closed, second.closed])
      expect(codes.map((c) => c.code).sort()).toEqual([1006, CLOSE_SESSION_ENDED])
      const heard = [first, second].filter((s) => s.messages.some((m) => m.type === 'session_event'))
      expect(heard).toHaveLength(1)
      expect(logs).toContainEqual({
        event: 'server_error',
        fields: { listener: 'live_send', error: 'Error', message: 'send failed' },
      })
    } finally {
      send.mockRestore()
      apart.close()
    }
  })

  test('the heartbeat spreads its pings over its period instead of pinging every socket at once', async () => {
    const apart = await startWith(createStoreLiveAuthenticator(deps), deps.log, { heartbeatMs: 400 })
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const sockets = []
    for (let i = 0; i < HEARTBEAT_SOCKETS; i++)
      sockets.push(await connect({ site: 'news', token }, apart.base))
    const firstPing: number[] = []
    for (const s of sockets) s.ws.once('ping', () => firstPing.push(Date.now()))
    try {
      await until(() => firstPing.length === sockets.length, 2_000)
      // One slice a tick (40 ms here): ten sockets' first pings span most of the period; all at
      // once they arrived within a few ms. Each is still pinged once a period (next test).
      expect(Math.max(...firstPing) - Math.min(...firstPing)).toBeGreaterThanOrEqual(200)
    } finally {
      for (const s of sockets) s.ws.close()
      apart.close()
    }
  })

  test('each socket is still pinged every period: one that stops answering is ended, the others stay', async () => {
    const apart = await startWith(createStoreLiveAuthenticator(deps), deps.log, { heartbeatMs: 200 })
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const sockets = []
    for (let i = 0; i < 3; i++) sockets.push(await connect({ site: 'news', token }, apart.base))
    const [silent, ...answering] = sockets as [Opened, ...Opened[]]
    ;(silent.ws as unknown as { pong: () => void }).pong = () => {} // answers no ping from now on
    try {
      expect((await silent.closed).code).toBe(1006) // terminated by the heartbeat
      await new Promise((r) => setTimeout(r, 500)) // more than two periods
      expect(answering.map((s) => s.ws.readyState)).toEqual([WebSocket.OPEN, WebSocket.OPEN])
    } finally {
      for (const s of sockets) s.ws.close()
      apart.close()
    }
  })

  test('a heartbeat ping that throws drops that socket; the others are still pinged', async () => {
    const { apart, first, second } = await twoSockets({ heartbeatMs: 50 })
    const ping = vi.spyOn(WebSocket.prototype, 'ping').mockImplementationOnce(() => {
      throw new Error('ping failed')
    })
    try {
      await until(() => [first, second].some((s) => s.ws.readyState === WebSocket.CLOSED), 2_000)
      await new Promise((r) => setTimeout(r, 200)) // a few more beats
      expect([first, second].map((s) => s.ws.readyState).sort()).toEqual([WebSocket.OPEN, WebSocket.CLOSED])
      expect(logs).toContainEqual({
        event: 'server_error',
        fields: { listener: 'live_heartbeat', error: 'Error', message: 'ping failed' },
      })
    } finally {
      ping.mockRestore()
      for (const s of [first, second]) s.ws.close()
      apart.close()
    }
  })
})
