import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { resolveConfig } from '../config.ts'
import { CONSOLE_LIVE_PATH, CONSOLE_LIVE_PROTOCOL } from '../live/console-socket.ts'
import { CLOSE_SESSION_ENDED, LIVE_PROTOCOL } from '../live/live-server.ts'
import { createDeps, listen, type PassportServer } from '../server.ts'
import { SESSION_COOKIE, startSession } from '../services/sessions.ts'
import { defaultFrameKey } from '../test-dpop.ts'
import { frameApi, signIn } from '../test-flows.ts'
import { addSite, addUser, freePort, testMasterKey } from '../test-support.ts'
import { closeRedis } from './client.ts'
import { deleteKeys, SHARED_REDIS_URL, uniquePrefix, waitFor } from './test-redis.ts'

/**
 * Two real passport servers (HTTP, live channel, background jobs) on one SQLite file and the
 * shared Redis, behind one public origin: what a sign-out on one does to a tab whose live socket
 * is on the other, and what "Your devices" sees.
 */
const keyPrefix = uniquePrefix()
let dir: string
let a: PassportServer
let b: PassportServer
let issuer: string

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'passport-two-'))
  const [portA, portB] = [await freePort(), await freePort()]
  issuer = `http://127.0.0.1:${portA}`
  const config = resolveConfig({
    issuer,
    scryptCost: 1024,
    redisUrl: SHARED_REDIS_URL,
    redisKeyPrefix: keyPrefix,
  })
  const storeFile = path.join(dir, 'passport.sqlite')
  const masterKey = testMasterKey()
  const log = () => {}
  a = await listen(await createDeps({ config, storeFile, masterKey, log }), portA, '127.0.0.1')
  b = await listen(await createDeps({ config, storeFile, masterKey, log }), portB, '127.0.0.1')
  await waitFor(() => a.deps.events.ready() && b.deps.events.ready(), 5_000, 'both buses ready')
})
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()])
  await deleteKeys(SHARED_REDIS_URL, keyPrefix)
  rmSync(dir, { recursive: true, force: true })
})

/** A frame's live socket on `server` (the answer to its challenge proven by the frame key). */
function liveSocket(server: PassportServer, site: string, token: string) {
  const ws = new WebSocket(
    `${server.internalUrl.replace(/^http/, 'ws')}/live?site=${site}`,
    [LIVE_PROTOCOL],
    {
      headers: { Origin: issuer },
    },
  )
  const messages: Record<string, unknown>[] = []
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  ws.on('message', (data) => {
    const message = JSON.parse(String(data)) as Record<string, unknown>
    if (message.type !== 'challenge') return void messages.push(message)
    const proof = defaultFrameKey.proof({
      method: 'GET',
      url: `${issuer.replace(/^http/, 'ws')}/live`,
      accessToken: token,
      nonce: String(message.nonce),
    })
    ws.send(JSON.stringify({ type: 'auth', token, proof }))
  })
  return { ws, messages, closed }
}

const sessionOf = (token: string) =>
  (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { sid: string }).sid

describe('two instances sharing Redis', () => {
  it('a sign-out on A reaches the socket on B within a second, and A counts that socket', async () => {
    const alice = await addUser(a.deps, 'alice')
    const news = await addSite(a.deps, { id: 'news', origins: [issuer] })
    const { token } = await signIn(a.app, news, alice, new Map(), issuer)
    const onB = liveSocket(b, 'news', token)
    await waitFor(() => onB.messages.some((m) => m.type === 'welcome'), 3_000, 'welcome on B')
    const sessionId = sessionOf(token)
    // "Your devices" asked on A sees the socket B holds.
    await waitFor(
      async () => (await a.deps.presence.countsBySession([sessionId])).get(sessionId) === 1,
      2_000,
      'presence on A',
    )
    expect(await a.deps.presence.countsBySessionSite(sessionId)).toEqual(new Map([['news', 1]]))

    const started = Date.now()
    const res = await frameApi(a.app, 'logout', { authkey: news.authkey, token }, { Origin: issuer })
    expect(res.status).toBeLessThan(300)
    await waitFor(() => onB.messages.some((m) => m.type === 'session_event'), 1_000, 'the sign-out on B')
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(onB.messages.filter((m) => m.type === 'session_event')).toEqual([
      expect.objectContaining({ type: 'session_event', reason: 'signed_out' }),
    ])
    expect(await onB.closed).toBe(CLOSE_SESSION_ENDED)
    await waitFor(
      async () => !(await a.deps.presence.countsBySession([sessionId])).has(sessionId),
      2_000,
      'the closed socket leaves presence',
    )
  })

  it("an admin's console on B shows a sign-in and a new token made on A, within a second", async () => {
    const root = await addUser(a.deps, 'root')
    await a.deps.store.users.setAdmin(root.id, true)
    const admin = await startSession(a.deps, root.id, 'Chrome/156.0 Linux')
    const bob = await addUser(a.deps, 'bob')
    const shop = await addSite(a.deps, { id: 'shop', origins: [issuer] })
    const console = new WebSocket(
      `${b.internalUrl.replace(/^http/, 'ws')}${CONSOLE_LIVE_PATH}`,
      CONSOLE_LIVE_PROTOCOL,
      {
        headers: { Origin: issuer, Cookie: `${SESSION_COOKIE}=${admin.cookieValue}` },
      },
    )
    const got: { type: string; row?: { id: string } }[] = []
    console.on('message', (data) => got.push(JSON.parse(String(data))))
    await waitFor(() => got.some((m) => m.type === 'snapshot'), 3_000, 'the snapshot on B')

    const started = Date.now()
    const { token } = await signIn(a.app, shop, bob, new Map(), issuer)
    const sessionId = sessionOf(token)
    await waitFor(
      () => got.some((m) => m.type === 'session' && m.row?.id === sessionId),
      1_000,
      "bob's row on B",
    )
    expect(Date.now() - started).toBeLessThan(1_000)
    console.close()
  })

  /**
   * Issue 15 (efficiency): a frame request's proof is spent and its key counted in one script,
   * not a `SET NX` and then an `INCR` script one round trip after the other.
   */
  it('a frame request spends its proof and counts its key in one Redis command; the proof replayed on B is refused and counts nothing', async () => {
    const carol = await addUser(a.deps, 'carol')
    const blog = await addSite(a.deps, { id: 'blog', origins: [issuer] })
    const { token } = await signIn(a.app, blog, carol, new Map(), issuer)
    const windowKey = `${keyPrefix}c:w:${createHash('sha256')
      .update(`frame_key:${defaultFrameKey.jkt}`)
      .digest('base64url')
      .slice(0, 27)}`
    const reader = new Redis(SHARED_REDIS_URL)
    const monitor = await new Redis(SHARED_REDIS_URL).monitor()
    // Commands this passport sent for its counters (not those a script ran inside Redis).
    const sent: string[][] = []
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((x) => x.startsWith(`${keyPrefix}c:`))) sent.push(args)
    })
    try {
      const counted = Number(await reader.get(windowKey))
      await new Promise((r) => setTimeout(r, 100))
      sent.length = 0
      const proof = defaultFrameKey.proof({
        url: `${issuer}/api/frame/check`,
        nonce: defaultFrameKey.nonce,
        accessToken: token,
      })
      const check = (server: PassportServer) =>
        frameApi(server.app, 'check', { authkey: blog.authkey, token }, { Origin: issuer }, { proof })
      expect((await check(a)).status).toBe(200)
      await waitFor(() => sent.length > 0, 2_000, 'the command in MONITOR')
      await new Promise((r) => setTimeout(r, 200))
      expect(sent).toHaveLength(1)
      const replayed = await check(b)
      expect(replayed.status).toBe(401)
      expect(await replayed.json()).toMatchObject({ error: 'invalid_dpop_proof' })
      expect(Number(await reader.get(windowKey))).toBe(counted + 1)
    } finally {
      monitor.disconnect()
      await closeRedis(reader)
    }
  })
})
