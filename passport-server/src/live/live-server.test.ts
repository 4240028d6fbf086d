import { createServer } from 'node:http'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import WebSocket from 'ws'
import type { PassportServer } from '../server.ts'
import { createDeviceApprovals } from '../services/device-approval.ts'
import { sweepExpiredSessions } from '../services/expiry-sweeper.ts'
import { createHttpTicketValidator } from '../services/live-tickets.ts'
import { findLiveSession, SESSION_COOKIE } from '../services/sessions.ts'
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
import { attachLiveServer, CLOSE_SESSION_ENDED, LIVE_PROTOCOL } from './live-server.ts'

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

async function ticketFor(site: typeof news, token: string) {
  const res = await api('live-ticket', { authkey: site.authkey, token })
  expect(res.status).toBe(200)
  return (await res.json()) as { ticket: string; registration_code: string; last_event_id: number }
}

interface Opened {
  ws: WebSocket
  messages: Record<string, unknown>[]
  closed: Promise<{ code: number }>
}

/** Opens a socket the way the frame does; resolves once open, or rejects with the HTTP status. */
function connect(
  input: { ticket?: string; code?: string; site?: string; lastEventId?: number; origin?: string },
  base = wsBase,
): Promise<Opened> {
  const query = new URLSearchParams({
    ...(input.ticket ? { ticket: input.ticket } : {}),
    ...(input.site ? { site: input.site } : {}),
    last_event_id: String(input.lastEventId ?? 0),
  })
  const protocols = [LIVE_PROTOCOL, ...(input.code ? [`code.${input.code}`] : [])]
  const ws = new WebSocket(`${base}?${query}`, protocols, { headers: { Origin: input.origin ?? issuer } })
  const messages: Record<string, unknown>[] = []
  ws.on('message', (data) => messages.push(JSON.parse(String(data))))
  const closed = new Promise<{ code: number }>((resolve) => ws.on('close', (code) => resolve({ code })))
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ ws, messages, closed }))
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

async function liveOn(site: typeof news, token: string, lastEventId?: number) {
  const t = await ticketFor(site, token)
  return connect({
    ticket: t.ticket,
    code: t.registration_code,
    site: site.site.id,
    lastEventId: lastEventId ?? t.last_event_id,
  })
}

describe('live channel: pushed endings', () => {
  test('a sign-out reaches every socket of the session on every site within a second, then closes', async () => {
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

  test('resume: an ending that happened while disconnected is delivered once on reconnect', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const before = await liveOn(news, token)
    await until(() => before.messages.length === 1)
    const lastSeen = before.messages[0]?.last_event_id as number
    // Take the ticket for the reconnect first (the token still works), then drop the socket.
    const t = await ticketFor(news, token)
    before.ws.close()
    await before.closed
    await api('logout', { authkey: news.authkey, token })
    const after = await connect({
      ticket: t.ticket,
      code: t.registration_code,
      site: 'news',
      lastEventId: lastSeen,
    })
    await until(() => after.messages.length === 2)
    expect(after.messages[1]).toMatchObject({ type: 'session_event', reason: 'signed_out' })
    expect((await after.closed).code).toBe(CLOSE_SESSION_ENDED)
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

describe('live channel: refused upgrades (F1-F4)', () => {
  test.each([
    ['no ticket', {}, 'HTTP 401'],
    ['a made-up ticket', { ticket: 'a'.repeat(43), code: 'b'.repeat(43), site: 'news' }, 'HTTP 401'],
  ])('%s: 401, no connection', async (_, input, expected) => {
    await expect(connect(input)).rejects.toThrow(expected)
  })

  test('a hostile Origin: 403 even with a valid ticket, and the ticket is not spent', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const t = await ticketFor(news, token)
    const input = { ticket: t.ticket, code: t.registration_code, site: 'news' }
    await expect(connect({ ...input, origin: 'http://evil.localhost:8083' })).rejects.toThrow('HTTP 403')
    await expect(connect({ ...input, origin: 'http://news.localhost:8081' })).rejects.toThrow('HTTP 403')
    const ok = await connect(input)
    ok.ws.close()
  })

  test('a reused ticket, a wrong registration code, a ticket for another site: 401', async () => {
    const { jar, token } = await signIn(server.app, news, alice, new Map(), issuer)
    const t = await ticketFor(news, token)
    const ok = await connect({ ticket: t.ticket, code: t.registration_code, site: 'news' })
    ok.ws.close()
    await expect(connect({ ticket: t.ticket, code: t.registration_code, site: 'news' })).rejects.toThrow(
      'HTTP 401',
    )

    const t2 = await ticketFor(news, token)
    await expect(connect({ ticket: t2.ticket, code: 'c'.repeat(43), site: 'news' })).rejects.toThrow(
      'HTTP 401',
    )
    // The wrong code spent it: the right code no longer helps.
    await expect(connect({ ticket: t2.ticket, code: t2.registration_code, site: 'news' })).rejects.toThrow(
      'HTTP 401',
    )

    const shopToken = (await silentSignIn(server.app, shop, jar, issuer)).token ?? ''
    const t3 = await ticketFor(shop, shopToken)
    await expect(connect({ ticket: t3.ticket, code: t3.registration_code, site: 'news' })).rejects.toThrow(
      'HTTP 401',
    )
  })

  test('an expired ticket: 401', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const t = await ticketFor(news, token)
    deps.clock.advance(31_000)
    try {
      await expect(connect({ ticket: t.ticket, code: t.registration_code, site: 'news' })).rejects.toThrow(
        'HTTP 401',
      )
    } finally {
      deps.clock.advance(-31_000)
    }
  })

  test('no ticket for a dead token, with the reason: the frame re-checks instead', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    await api('logout', { authkey: news.authkey, token })
    const res = await api('live-ticket', { authkey: news.authkey, token })
    expect(res.status).toBe(401)
    expect(await res.json()).toMatchObject({ error: 'invalid_token', reason: 'signed_out' })
  })

  test('an oversized message closes with 1009; a flood closes with 1008', async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const big = await liveOn(news, token)
    big.ws.send('x'.repeat(5000))
    expect((await big.closed).code).toBe(1009)

    const flood = await liveOn(news, token)
    for (let i = 0; i < 50; i++) flood.ws.send('{}')
    expect((await flood.closed).code).toBe(1008)
    expect(logs.map((l) => l.event)).toContain('ws_closed')
  })

  test('rejections are logged with a reason and never log the ticket', async () => {
    await connect({ ticket: 'a'.repeat(43), code: 'b'.repeat(43), site: 'news' }).catch(() => null)
    const rejected = logs.filter((l) => l.event === 'ws_upgrade_rejected')
    expect(rejected.map((l) => l.fields.reason)).toContain('invalid_ticket')
    expect(JSON.stringify(logs)).not.toContain('a'.repeat(43))
  })
})

/** A live-channel server apart from the passport, validating tickets over HTTP with `secret`. */
async function startApart(secret: string, limits: Parameters<typeof attachLiveServer>[0]['limits'] = {}) {
  const apart = createServer()
  const port = await freePort()
  const live = attachLiveServer({
    server: apart,
    deps,
    validator: createHttpTicketValidator({ passportUrl: issuer, secret }),
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
  test('a full server refuses upgrades with 503 before any work, and takes them again when room frees', async () => {
    const { base, live, close } = await startApart(SECRET, { maxConnections: 1 })
    try {
      const { token } = await signIn(server.app, news, alice, new Map(), issuer)
      const t1 = await ticketFor(news, token)
      const first = await connect({ ticket: t1.ticket, code: t1.registration_code, site: 'news' }, base)
      expect(live.connectionCount()).toBe(1)
      const t2 = await ticketFor(news, token)
      await expect(
        connect({ ticket: t2.ticket, code: t2.registration_code, site: 'news' }, base),
      ).rejects.toThrow('HTTP 503')
      first.ws.close()
      await first.closed
      await until(() => live.connectionCount() === 0)
      // The refused ticket was never spent: it still works now.
      const again = await connect({ ticket: t2.ticket, code: t2.registration_code, site: 'news' }, base)
      again.ws.close()
    } finally {
      close()
    }
  })
})

describe('live channel running apart from the passport', () => {
  test('validates tickets over HTTP with the shared secret; a wrong secret accepts nothing', async () => {
    const right = await startApart(SECRET)
    const wrong = await startApart('w'.repeat(40))
    try {
      const { token } = await signIn(server.app, news, alice, new Map(), issuer)
      const t = await ticketFor(news, token)
      await expect(
        connect({ ticket: t.ticket, code: t.registration_code, site: 'news' }, wrong.base),
      ).rejects.toThrow('HTTP 401')
      const t2 = await ticketFor(news, token)
      const ok = await connect({ ticket: t2.ticket, code: t2.registration_code, site: 'news' }, right.base)
      await until(() => ok.messages.length === 1)
      await api('logout', { authkey: news.authkey, token })
      await until(() => ok.messages.length === 2)
      expect(ok.messages[1]).toMatchObject({ type: 'session_event', reason: 'signed_out' })
    } finally {
      right.close()
      wrong.close()
    }
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

  test("reach every socket of the user (not another user's), without the code or choices, then their closing", async () => {
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
      // Exactly these fields: never the code, nor numbers to choose it from.
      expect(socket.messages[1]).toEqual({
        type: 'approval_request',
        id: opened.approval.id,
        site_name: shop.site.name,
        device: 'Firefox 132 on Linux',
        address: '10.1.2.3',
        binding_message: null,
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
