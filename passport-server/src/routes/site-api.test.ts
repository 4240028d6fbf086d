import { describe, expect, test } from 'vitest'
import { basicAuth, frameApi, signIn, sitePost } from '../test-flows.ts'
import { createTestWorld } from '../test-support.ts'

describe('POST /token/introspect (RFC 7662)', () => {
  test('a live token of the calling site: active with its claims, no-store', async () => {
    const { app, news, alice, deps } = await createTestWorld()
    const { token, body } = await signIn(app, news, alice)
    const res = await sitePost(app, '/token/introspect', { token }, basicAuth('news', news.clientSecret))
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    expect(await res.json()).toMatchObject({
      active: true,
      iss: deps.config.issuer,
      aud: 'news',
      client_id: 'news',
      sub: alice.id,
      username: 'alice',
      exp: Math.floor(body.expires_at / 1000),
      token_type: 'Bearer',
    })
  })

  test("another site's token gets only {active:false} (E1, B7)", async () => {
    const { app, news, shop, alice } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    const res = await sitePost(app, '/token/introspect', { token }, basicAuth('shop', shop.clientSecret))
    expect(await res.json()).toEqual({ active: false })
  })

  test('a replaced, signed-out or expired token gets only {active:false}', async () => {
    const { app, news, alice, deps } = await createTestWorld()
    const auth = basicAuth('news', news.clientSecret)
    const first = await signIn(app, news, alice)
    await signIn(app, news, alice)
    expect(await (await sitePost(app, '/token/introspect', { token: first.token }, auth)).json()).toEqual({
      active: false,
    })
    const second = await signIn(app, news, alice)
    await frameApi(app, 'logout', { authkey: news.authkey, token: second.token })
    expect(await (await sitePost(app, '/token/introspect', { token: second.token }, auth)).json()).toEqual({
      active: false,
    })
    const third = await signIn(app, news, alice)
    deps.clock.advance(901_000)
    expect(await (await sitePost(app, '/token/introspect', { token: third.token }, auth)).json()).toEqual({
      active: false,
    })
  })

  test.each([
    ['no credentials', undefined],
    ['a wrong secret', basicAuth('news', 'wrong')],
    ['an unknown site', basicAuth('nope', 'x')],
    ['a Bearer scheme', 'Bearer abc'],
    ['malformed Basic', 'Basic !!!'],
    ['an oversized header', `Basic ${'A'.repeat(5000)}`],
  ])('refuses %s with 401 invalid_client and reveals nothing', async (_, authorization) => {
    const { app, news, alice } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    const res = await sitePost(app, '/token/introspect', { token }, authorization)
    expect(res.status).toBe(401)
    expect(await res.json()).toMatchObject({ error: 'invalid_client' })
  })

  test('refuses a missing or oversized token parameter with invalid_request', async () => {
    const { app, news } = await createTestWorld()
    const auth = basicAuth('news', news.clientSecret)
    expect((await sitePost(app, '/token/introspect', {}, auth)).status).toBe(400)
    expect((await sitePost(app, '/token/introspect', { token: 'a'.repeat(9000) }, auth)).status).toBe(400)
  })
})

describe('POST /token/status', () => {
  test('tells the site why its token stopped working', async () => {
    const { app, news, alice, deps } = await createTestWorld()
    const auth = basicAuth('news', news.clientSecret)
    const status = async (token: string) =>
      (await (await sitePost(app, '/token/status', { token }, auth)).json()) as Record<string, unknown>

    const first = await signIn(app, news, alice)
    expect(await status(first.token)).toMatchObject({ valid: true, reason: null })
    const second = await signIn(app, news, alice)
    expect(await status(first.token)).toMatchObject({ valid: false, reason: 'replaced' })
    await frameApi(app, 'logout', { authkey: news.authkey, token: second.token })
    expect(await status(second.token)).toMatchObject({ valid: false, reason: 'signed_out' })
    const third = await signIn(app, news, alice)
    deps.clock.advance(901_000)
    expect(await status(third.token)).toMatchObject({ valid: false, reason: 'expired' })
    expect(await status('a.b.c')).toMatchObject({ valid: false, reason: 'unknown' })
  })
})
