import http from 'node:http'
import { afterEach, describe, expect, test } from 'vitest'
import WebSocket from 'ws'
import { CLOSE_RESTARTING, LIVE_PROTOCOL } from '../../passport-frame/src/protocol/live.ts'
import { listenLiveOnly } from './server.ts'
import { defaultFrameKey } from './test-dpop.ts'
import { signIn } from './test-flows.ts'
import { addSite, addUser, createTestDeps, startTestServer } from './test-support.ts'

type Started = Awaited<ReturnType<typeof startTestServer>>
let running: Started | null = null
afterEach(async () => {
  await running?.server.close().catch(() => {})
  running = null
})

/** A live socket of the frame's kind; `token` null leaves the challenge unanswered. */
function openSocket(s: Started, token: string | null) {
  const ws = new WebSocket(`ws://127.0.0.1:${s.port}/live?site=news`, [LIVE_PROTOCOL], {
    headers: { Origin: s.issuer },
  })
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  const welcomed = new Promise<void>((resolve, reject) => {
    ws.on('error', reject)
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string; nonce?: string }
      if (message.type === 'welcome') resolve()
      if (message.type !== 'challenge') return
      if (token === null) return resolve()
      const proof = defaultFrameKey.proof({
        method: 'GET',
        url: `${s.issuer.replace(/^http/, 'ws')}/live`,
        accessToken: token,
        nonce: String(message.nonce),
      })
      ws.send(JSON.stringify({ type: 'auth', token, proof }))
    })
  })
  return { ws, closed, welcomed }
}

/** A POST whose body is only half sent: a request in flight until `finish()`. */
function slowRequest(port: number) {
  const body = 'grant_type=refresh_token&refresh_token=x'
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/token',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': body.length },
  })
  const answered = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
  })
  answered.catch(() => {})
  req.write(body.slice(0, 10))
  return { answered, finish: () => req.end(body.slice(10)) }
}

const get = (port: number, path: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = ''
        res.on('data', (chunk) => {
          body += chunk
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      .on('error', reject)
  })

const upgradeStatus = (s: Started) =>
  new Promise<number>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}/live?site=news`, [LIVE_PROTOCOL], {
      headers: { Origin: s.issuer },
    })
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    ws.on('open', () => resolve(101))
    ws.on('error', () => resolve(0))
  })

describe('graceful shutdown (issue 15: SIGTERM in a rolling restart)', () => {
  test('drains: /readyz 503 and upgrades 503 at once; sockets closed with CLOSE_RESTARTING; the request in flight is answered', async () => {
    const s = await startTestServer()
    running = s
    const alice = await addUser(s.deps, 'alice')
    const news = await addSite(s.deps, { id: 'news' })
    const { token } = await signIn(s.server.app, news, alice, new Map(), s.issuer)
    const live = openSocket(s, token)
    await live.welcomed
    const unanswered = openSocket(s, null)
    await unanswered.welcomed
    const inFlight = slowRequest(s.port)
    await new Promise((r) => setTimeout(r, 50))

    const stopped = s.server.shutdown({ delayMs: 400, graceMs: 5_000 })
    let done = false
    void stopped.then(() => {
      done = true
    })
    const ready = await get(s.port, '/readyz')
    expect(ready.status).toBe(503)
    expect(JSON.parse(ready.body)).toMatchObject({ status: 'unavailable', draining: true })
    expect((await get(s.port, '/healthz')).status).toBe(200)
    expect(await upgradeStatus(s)).toBe(503)

    expect(await live.closed).toBe(CLOSE_RESTARTING)
    expect(await unanswered.closed).toBe(CLOSE_RESTARTING)
    await new Promise((r) => setTimeout(r, 100))
    expect(done).toBe(false) // still waiting for the request in flight
    inFlight.finish()
    expect(await inFlight.answered).toBeGreaterThanOrEqual(400) // answered (the token is junk), not cut
    await stopped
    // The listener is gone and the store is closed.
    await expect(get(s.port, '/healthz')).rejects.toThrow()
    const phases = s.logs.filter((l) => l.event === 'sys_shutdown').map((l) => l.fields)
    expect(phases.at(-1)).toMatchObject({ phase: 'stopped', requests_cut: 0 })
  })

  test('a request that never finishes is cut after the grace period; the shutdown still ends', async () => {
    const s = await startTestServer()
    running = s
    const stuck = slowRequest(s.port)
    await new Promise((r) => setTimeout(r, 50))
    const started = Date.now()
    await s.server.shutdown({ graceMs: 300 })
    expect(Date.now() - started).toBeLessThan(2_000)
    await expect(stuck.answered).rejects.toThrow()
    const phases = s.logs.filter((l) => l.event === 'sys_shutdown').map((l) => l.fields)
    expect(phases.at(-1)).toMatchObject({ phase: 'stopped', requests_cut: 1 })
  })

  test('the live channel run apart (PASSPORT_ROLE=live) closes its sockets with CLOSE_RESTARTING too', async () => {
    const deps = await createTestDeps()
    const apart = await listenLiveOnly(deps, 0, '127.0.0.1', {
      url: 'http://127.0.0.1:9',
      secret: 's'.repeat(40),
    })
    const port = Number(new URL(apart.internalUrl).port)
    const waiting = openSocket({ port, issuer: deps.config.issuer } as Started, null)
    await waiting.welcomed
    await apart.shutdown()
    expect(await waiting.closed).toBe(CLOSE_RESTARTING)
    await expect(get(port, '/')).rejects.toThrow()
  })
})
