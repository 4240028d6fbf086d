import { describe, expect, test } from 'vitest'
import type { LiveCommand } from '../events/bus.ts'
import { basicAuth, frameApi, signIn, sitePost } from '../test-flows.ts'
import { createTestWorld } from '../test-support.ts'
import { REFRESH_REQUESTS_PER_SITE_PER_MINUTE } from './refresh-request.ts'

async function world() {
  const w = await createTestWorld()
  const commands: LiveCommand[] = []
  w.deps.events.subscribeCommands((command) => commands.push(command))
  return { ...w, commands }
}

describe('POST /token/refresh-request', () => {
  test('a live token of the calling site: 202, one refresh_now for its session and site, no-store', async () => {
    const { app, news, alice, commands, deps } = await world()
    const { token } = await signIn(app, news, alice)
    const release = deps.presence.connected({
      sessionId: (await deps.store.sessions.listByUser(alice.id))[0]?.id ?? '',
      siteId: 'news',
      userId: alice.id,
      connectedAt: 0,
    })
    const res = await sitePost(app, '/token/refresh-request', { token }, basicAuth('news', news.clientSecret))
    expect(res.status).toBe(202)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    const body = (await res.json()) as { request_id: string; live_sockets: number }
    expect(body.live_sockets).toBe(1)
    const sessions = await deps.store.sessions.listByUser(alice.id)
    expect(commands).toEqual([
      { type: 'refresh_now', sessionId: sessions[0]?.id, siteId: 'news', requestId: body.request_id },
    ])
    release()
  })

  test('client_secret_post works like Basic; no socket open says live_sockets 0', async () => {
    const { app, news, alice, commands } = await world()
    const { token } = await signIn(app, news, alice)
    const res = await sitePost(app, '/token/refresh-request', {
      token,
      client_id: 'news',
      client_secret: news.clientSecret,
    })
    expect(res.status).toBe(202)
    expect(await res.json()).toMatchObject({ live_sockets: 0 })
    expect(commands).toHaveLength(1)
  })

  test("another site's token, a garbage one and an ended one: 400 invalid_grant, nothing published", async () => {
    const { app, news, shop, alice, commands } = await world()
    const newsToken = (await signIn(app, news, alice)).token
    const shopAuth = basicAuth('shop', shop.clientSecret)
    const foreign = await sitePost(app, '/token/refresh-request', { token: newsToken }, shopAuth)
    const garbage = await sitePost(app, '/token/refresh-request', { token: 'x.y.z' }, shopAuth)
    const second = await signIn(app, news, alice)
    await frameApi(app, 'logout', { authkey: news.authkey, token: second.token })
    const ended = await sitePost(
      app,
      '/token/refresh-request',
      { token: second.token },
      basicAuth('news', news.clientSecret),
    )
    const bodies = []
    for (const res of [foreign, garbage, ended]) {
      expect(res.status).toBe(400)
      expect(res.headers.get('Cache-Control')).toBe('no-store')
      bodies.push(await res.json())
    }
    // One answer for all three: the endpoint tells a scanner nothing.
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1)
    expect(bodies[0]).toMatchObject({ error: 'invalid_grant' })
    expect(commands).toEqual([])
  })

  test.each([
    ['no credentials', undefined],
    ['a wrong secret', basicAuth('news', 'wrong')],
    ['a Bearer scheme', 'Bearer abc'],
  ])('refuses %s with 401 invalid_client', async (_, authorization) => {
    const { app, news, alice, commands } = await world()
    const { token } = await signIn(app, news, alice)
    const res = await sitePost(app, '/token/refresh-request', { token }, authorization)
    expect(res.status).toBe(401)
    expect(await res.json()).toMatchObject({ error: 'invalid_client' })
    expect(commands).toEqual([])
  })

  test('a missing token is invalid_request; a flood gets 429 with Retry-After', async () => {
    const { app, news, alice } = await world()
    const auth = basicAuth('news', news.clientSecret)
    expect((await sitePost(app, '/token/refresh-request', {}, auth)).status).toBe(400)
    const { token } = await signIn(app, news, alice)
    for (let i = 1; i < REFRESH_REQUESTS_PER_SITE_PER_MINUTE; i++) {
      await sitePost(app, '/token/refresh-request', { token }, auth)
    }
    const refused = await sitePost(app, '/token/refresh-request', { token }, auth)
    expect(refused.status).toBe(429)
    expect(refused.headers.get('Retry-After')).toBeTruthy()
    expect(await refused.json()).toMatchObject({ error: 'rate_limited' })
  })
})
