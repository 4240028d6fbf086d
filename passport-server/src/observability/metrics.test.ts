import { afterEach, describe, expect, test } from 'vitest'
import { createApp } from '../app.ts'
import { requestRefresh } from '../services/refresh-request.ts'
import { authorizeRequest, basicAuth, frameApi, postLogin, signIn, sitePost } from '../test-flows.ts'
import { ALL_LOGIN_MODES, addSite, addUser, createTestDeps } from '../test-support.ts'
import { fetchPresence } from './cli-presence.ts'
import { listenManagement, managementApp } from './management.ts'
import { createMetrics } from './metrics.ts'

/** A test world whose deps carry metrics, as `createDeps` wires them. */
async function meteredWorld() {
  const base = await createTestDeps()
  const metrics = createMetrics({ processMetrics: false })
  const deps = { ...base, metrics, log: metrics.tapLog(base.log) }
  const stop = metrics.watch(deps)
  const app = createApp(deps)
  const alice = await addUser(deps, 'alice')
  const news = await addSite(deps, { id: 'news', loginModes: ALL_LOGIN_MODES })
  return { deps, app, alice, news, stop }
}

/** One sample's value from the text format, by name and exact labels (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const match = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    const got = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    )
    if (
      Object.entries(labels).every(([k, v]) => got[k] === v) &&
      Object.keys(got).length === Object.keys(labels).length
    ) {
      return Number(match[3])
    }
  }
  return 0
}

const TOKEN = 'metrics-bearer-secret-0123456789'

describe('metrics (issue 19)', () => {
  const stops: (() => unknown)[] = []
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop()
  })

  test('a scripted run: its sign-ins, mints, refreshes, introspections and pushes are the counts /metrics shows', async () => {
    const { deps, app, alice, news, stop } = await meteredWorld()
    stops.push(stop)
    // Two sign-ins (each mints), one wrong password, one refresh, two introspections.
    const first = await signIn(app, news, alice)
    const second = await signIn(app, news, alice)
    const req = authorizeRequest('news', news.site.redirectUris[0])
    const wrong = await postLogin(app, new Map(), req, { username: 'alice', password: 'nope-nope-nope' })
    expect(wrong.status).toBe(401)
    const refreshed = await frameApi(app, 'token', {
      grant_type: 'refresh_token',
      authkey: news.authkey,
      refresh_token: second.body.refresh_token,
    })
    expect(refreshed.status).toBe(200)
    const auth = basicAuth('news', news.clientSecret)
    await sitePost(app, '/token/introspect', { token: first.token }, auth)
    await sitePost(app, '/token/introspect', { token: 'garbage' }, auth)
    await requestRefresh(deps, { sessionId: 'nobody', siteId: 'news' })

    const res = await managementApp(deps, { token: TOKEN }).request('/metrics', {
      headers: { Authorization: `Bearer ${TOKEN}` },
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('Content-Type')).toMatch(/^text\/plain/)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    const text = await res.text()
    expect(sample(text, 'passport_operations_total', { operation: 'sign_in', status: '303' })).toBe(2)
    expect(sample(text, 'passport_operations_total', { operation: 'sign_in', status: '401' })).toBe(1)
    expect(sample(text, 'passport_operations_total', { operation: 'mint', status: '200' })).toBe(2)
    expect(sample(text, 'passport_operations_total', { operation: 'refresh', status: '200' })).toBe(1)
    expect(sample(text, 'passport_operations_total', { operation: 'introspection', status: '200' })).toBe(2)
    // The frame's first exchange met a stale DPoP nonce (401 use_dpop_nonce) and was sent again.
    expect(sample(text, 'passport_operations_total', { operation: 'mint', status: '401' })).toBe(1)
    expect(sample(text, 'passport_operation_duration_seconds_count', { operation: 'mint' })).toBe(3)
    expect(sample(text, 'passport_operation_duration_seconds_count', { operation: 'sign_in' })).toBe(3)
    expect(sample(text, 'passport_sign_ins_total', { method: 'password' })).toBe(2)
    expect(sample(text, 'passport_login_failures_total', { result: 'failed' })).toBe(1)
    expect(sample(text, 'passport_tokens_minted_total')).toBe(2)
    // The second sign-in on News replaced the first: one site ending, by reason.
    expect(sample(text, 'passport_session_endings_total', { scope: 'site', reason: 'replaced' })).toBe(1)
    expect(sample(text, 'passport_store_up')).toBe(1)
    expect(sample(text, 'passport_bus_ready')).toBe(1)
    expect(sample(text, 'passport_live_sockets')).toBe(0)
    expect(sample(text, 'passport_approvals_pending')).toBe(0)
    // Route patterns, never raw paths: a scanner's URLs do not become series.
    await app.request('/wp-admin/x.php')
    const again = await (await managementApp(deps, { token: '' }).request('/metrics')).text()
    expect(
      sample(again, 'passport_http_requests_total', { route: 'unmatched', method: 'GET', status: '404' }),
    ).toBe(1)
    expect(again).not.toContain('wp-admin')
  })

  test('approvals: requested and closed counted, pending while open', async () => {
    const { deps, stop } = await meteredWorld()
    stops.push(stop)
    const prompt = {
      id: 'a1',
      siteName: 'News',
      device: 'Firefox on Linux',
      address: '203.0.113.9',
      bindingMessage: null,
      expiresAt: deps.clock.now() + 60_000,
    }
    await deps.events.publishApproval({ type: 'approval_request', userId: 'u_alice', prompt })
    const registry = deps.metrics.registry
    expect(sample(await registry.metrics(), 'passport_approvals_pending')).toBe(1)
    await deps.events.publishApproval({
      type: 'approval_closed',
      userId: 'u_alice',
      approvalId: 'a1',
      outcome: 'denied',
    })
    const text = await registry.metrics()
    expect(sample(text, 'passport_approvals_pending')).toBe(0)
    expect(sample(text, 'passport_approvals_total', { outcome: 'requested' })).toBe(1)
    expect(sample(text, 'passport_approvals_total', { outcome: 'denied' })).toBe(1)
  })

  test('two apps in one process count apart (one registry each)', async () => {
    const a = await meteredWorld()
    const b = await meteredWorld()
    stops.push(a.stop, b.stop)
    await signIn(a.app, a.news, a.alice)
    expect(sample(await a.deps.metrics.registry.metrics(), 'passport_tokens_minted_total')).toBe(1)
    expect(sample(await b.deps.metrics.registry.metrics(), 'passport_tokens_minted_total')).toBe(0)
  })

  test('the management listener: a missing or wrong bearer gets 401; the right one the metrics', async () => {
    const { deps, stop } = await meteredWorld()
    stops.push(stop)
    const listener = await listenManagement(deps, { host: '127.0.0.1', port: 0, token: TOKEN })
    stops.push(listener.close)
    const get = (authorization?: string) =>
      fetch(`${listener.url}/metrics`, { headers: authorization ? { Authorization: authorization } : {} })
    for (const authorization of [undefined, 'Bearer wrong', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
      const res = await get(authorization)
      expect(res.status).toBe(401)
      expect(res.headers.get('WWW-Authenticate')).toMatch(/^Bearer/)
      expect(await res.json()).toEqual({ error: 'invalid_token' })
    }
    const ok = await get(`Bearer ${TOKEN}`)
    expect(ok.status).toBe(200)
    expect(await ok.text()).toContain('passport_operations_total')
    const presence = await fetch(`${listener.url}/manage/presence`, { method: 'POST', body: '{}' })
    expect(presence.status).toBe(401)
  })

  test('presence over the management listener: open sockets per site of the sessions asked', async () => {
    const { deps, stop } = await meteredWorld()
    stops.push(stop)
    const release = deps.presence.connected({ sessionId: 's1', siteId: 'news', userId: 'u', connectedAt: 0 })
    deps.presence.connected({ sessionId: 's1', siteId: 'shop', userId: 'u', connectedAt: 0 })
    const app = managementApp(deps, { token: '' })
    const ask = (body: unknown) =>
      app.request('/manage/presence', { method: 'POST', body: JSON.stringify(body) })
    expect(await (await ask({ session_ids: ['s1', 's2'] })).json()).toEqual({
      sessions: { s1: { news: 1, shop: 1 } },
    })
    release()
    expect(await (await ask({ session_ids: ['s1'] })).json()).toEqual({ sessions: { s1: { shop: 1 } } })
    expect((await ask({ session_ids: 's1' })).status).toBe(400)
    expect((await ask({ session_ids: Array.from({ length: 1001 }, (_, i) => `s${i}`) })).status).toBe(400)
  })

  test("the CLI's presence question reaches a running listener with its bearer, and says when none answers", async () => {
    const { deps, stop } = await meteredWorld()
    stops.push(stop)
    deps.presence.connected({ sessionId: 's1', siteId: 'news', userId: 'u', connectedAt: 0 })
    const listener = await listenManagement(deps, { host: '127.0.0.1', port: 0, token: TOKEN })
    stops.push(listener.close)
    const port = Number(new URL(listener.url).port)
    expect(await fetchPresence({ host: '127.0.0.1', port, token: TOKEN }, ['s1', 's2'])).toEqual({
      ok: true,
      sessions: { s1: { news: 1 } },
    })
    expect(
      await fetchPresence({ host: '127.0.0.1', port, token: 'wrong-token-0123456789' }, ['s1']),
    ).toMatchObject({
      ok: false,
    })
    await listener.close()
    expect(await fetchPresence({ host: '127.0.0.1', port, token: TOKEN }, ['s1'])).toMatchObject({
      ok: false,
    })
  })
})
