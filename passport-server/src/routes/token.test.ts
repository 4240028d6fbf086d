import { decodeJwt } from 'jose'
import { describe, expect, test } from 'vitest'
import {
  type AuthorizeRequest,
  authorizeRequest,
  authorizeUrl,
  basicAuth,
  type CookieJar,
  cookieHeader,
  signIn,
  sitePost,
} from '../test-flows.ts'
import { createTestWorld, TEST_ISSUER } from '../test-support.ts'

type World = Awaited<ReturnType<typeof createTestWorld>>

/** A silent `/authorize` for Shop as a site backend asks it: the answer in the query (the default). */
async function shopCode(world: World, jar: CookieJar): Promise<{ req: AuthorizeRequest; code: string }> {
  const req = authorizeRequest('shop', world.shop.site.redirectUris[0])
  const url = authorizeUrl(req, { prompt: 'none', scope: 'openid' }).replace('&response_mode=fragment', '')
  const res = await world.app.request(url, { headers: { Cookie: cookieHeader(jar) } })
  const code = new URL(res.headers.get('Location') ?? '').searchParams.get('code')
  if (!code) throw new Error(`no code: ${res.headers.get('Location')}`)
  return { req, code }
}

const codeForm = (req: AuthorizeRequest, code: string, extra: Record<string, string> = {}) => ({
  grant_type: 'authorization_code',
  code,
  code_verifier: req.verifier,
  redirect_uri: req.redirectUri,
  ...extra,
})

async function introspect(world: World, token: string) {
  const res = await sitePost(
    world.app,
    '/token/introspect',
    { token },
    basicAuth('shop', world.shop.clientSecret),
  )
  return (await res.json()) as { active: boolean }
}

describe('POST /token, authorization_code (site backends)', () => {
  test('client_secret_basic: a site token, a refresh token and an ID token naming the user', async () => {
    const world = await createTestWorld()
    const { jar } = await signIn(world.app, world.news, world.alice)
    const { req, code } = await shopCode(world, jar)
    const res = await sitePost(
      world.app,
      '/token',
      codeForm(req, code),
      basicAuth('shop', world.shop.clientSecret),
    )
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    const body = (await res.json()) as Record<string, string | number>
    expect(body).toMatchObject({ token_type: 'Bearer', scope: 'openid' })
    expect(body.expires_in).toBeGreaterThan(0)
    expect(String(body.refresh_token)).toMatch(/^[0-9a-f-]{36}\.\d+\.[A-Za-z0-9_-]{43}$/)
    expect(await introspect(world, String(body.access_token))).toMatchObject({ active: true })
    const idToken = decodeJwt(String(body.id_token))
    expect(idToken).toMatchObject({
      iss: TEST_ISSUER,
      aud: 'shop',
      sub: world.alice.id,
      preferred_username: 'alice',
      name: world.alice.name,
    })
    expect(idToken.sid).toBe(decodeJwt(String(body.access_token)).sid)
  })

  test('client_secret_post works too; both at once, or neither, does not', async () => {
    const world = await createTestWorld()
    const { jar } = await signIn(world.app, world.news, world.alice)
    const secret = world.shop.clientSecret
    const first = await shopCode(world, jar)
    const both = await sitePost(
      world.app,
      '/token',
      codeForm(first.req, first.code, { client_id: 'shop', client_secret: secret }),
      basicAuth('shop', secret),
    )
    expect(both.status).toBe(400)
    expect(await both.json()).toMatchObject({ error: 'invalid_request' })
    const none = await sitePost(world.app, '/token', codeForm(first.req, first.code))
    expect(none.status).toBe(401)
    expect(await none.json()).toMatchObject({ error: 'invalid_client' })
    const second = await shopCode(world, jar)
    const post = await sitePost(
      world.app,
      '/token',
      codeForm(second.req, second.code, { client_id: 'shop', client_secret: secret }),
    )
    expect(post.status).toBe(200)
  })

  test('wrong secret, another client id beside Basic, or the other site: invalid_client', async () => {
    const world = await createTestWorld()
    const { jar } = await signIn(world.app, world.news, world.alice)
    const { req, code } = await shopCode(world, jar)
    for (const [form, auth] of [
      [codeForm(req, code), basicAuth('shop', 'wrong')],
      [codeForm(req, code, { client_id: 'news' }), basicAuth('shop', world.shop.clientSecret)],
      [codeForm(req, code, { client_id: 'shop', client_secret: 'wrong' }), undefined],
    ] as const) {
      const res = await sitePost(world.app, '/token', form, auth)
      expect(res.status).toBe(401)
      expect(await res.json()).toMatchObject({ error: 'invalid_client' })
    }
    // The code is still good: a refused client never spends it.
    const ok = await sitePost(
      world.app,
      '/token',
      codeForm(req, code),
      basicAuth('shop', world.shop.clientSecret),
    )
    expect(ok.status).toBe(200)
  })

  test('a code is spent on first use: wrong verifier, then the right one, then a replay all fail', async () => {
    const world = await createTestWorld()
    const { jar } = await signIn(world.app, world.news, world.alice)
    const { req, code } = await shopCode(world, jar)
    const auth = basicAuth('shop', world.shop.clientSecret)
    const wrong = await sitePost(
      world.app,
      '/token',
      codeForm(req, code, { code_verifier: 'x'.repeat(43) }),
      auth,
    )
    expect(await wrong.json()).toMatchObject({ error: 'invalid_grant' })
    for (let i = 0; i < 2; i++) {
      const res = await sitePost(world.app, '/token', codeForm(req, code), auth)
      expect(res.status).toBe(400)
      expect(await res.json()).toMatchObject({ error: 'invalid_grant' })
    }
  })

  test("another redirect URI, or News's credentials for Shop's code: invalid_grant", async () => {
    const world = await createTestWorld()
    const { jar } = await signIn(world.app, world.news, world.alice)
    const a = await shopCode(world, jar)
    const other = await sitePost(
      world.app,
      '/token',
      codeForm(a.req, a.code, { redirect_uri: 'http://shop.localhost:8082/other' }),
      basicAuth('shop', world.shop.clientSecret),
    )
    expect(await other.json()).toMatchObject({ error: 'invalid_grant' })
    const b = await shopCode(world, jar)
    const news = await sitePost(
      world.app,
      '/token',
      codeForm(b.req, b.code),
      basicAuth('news', world.news.clientSecret),
    )
    expect(await news.json()).toMatchObject({ error: 'invalid_grant' })
  })

  test('PKCE is required: no code_verifier is invalid_request', async () => {
    const world = await createTestWorld()
    const { jar } = await signIn(world.app, world.news, world.alice)
    const { req, code } = await shopCode(world, jar)
    const form: Record<string, string> = codeForm(req, code)
    delete form.code_verifier
    const res = await sitePost(world.app, '/token', form, basicAuth('shop', world.shop.clientSecret))
    expect(await res.json()).toMatchObject({ error: 'invalid_request' })
  })

  test('newest wins exactly as in the frame: the older device loses Shop, with the event', async () => {
    const world = await createTestWorld()
    const older = await signIn(world.app, world.shop, world.alice)
    const newer = await signIn(world.app, world.news, world.alice)
    const { req, code } = await shopCode(world, newer.jar)
    const res = await sitePost(
      world.app,
      '/token',
      codeForm(req, code),
      basicAuth('shop', world.shop.clientSecret),
    )
    expect(res.status).toBe(200)
    expect(await introspect(world, older.token)).toEqual({ active: false })
    const status = await sitePost(
      world.app,
      '/token/status',
      { token: older.token },
      basicAuth('shop', world.shop.clientSecret),
    )
    expect(await status.json()).toMatchObject({ valid: false, reason: 'replaced' })
    const events = await world.deps.store.events.after(0, 100)
    expect(events.map((e) => [e.type, e.siteId, e.reason])).toContainEqual([
      'site_access_ended',
      'shop',
      'replaced',
    ])
  })

  test('refresh_token rotates the credential for the site that holds it', async () => {
    const world = await createTestWorld()
    const { jar } = await signIn(world.app, world.news, world.alice)
    const { req, code } = await shopCode(world, jar)
    const auth = basicAuth('shop', world.shop.clientSecret)
    const first = (await (await sitePost(world.app, '/token', codeForm(req, code), auth)).json()) as {
      refresh_token: string
    }
    const refreshed = await sitePost(
      world.app,
      '/token',
      { grant_type: 'refresh_token', refresh_token: first.refresh_token },
      auth,
    )
    expect(refreshed.status).toBe(200)
    const body = (await refreshed.json()) as { access_token: string; refresh_token: string }
    expect(body.refresh_token).not.toBe(first.refresh_token)
    expect(await introspect(world, body.access_token)).toMatchObject({ active: true })
    const asNews = await sitePost(
      world.app,
      '/token',
      { grant_type: 'refresh_token', refresh_token: body.refresh_token },
      basicAuth('news', world.news.clientSecret),
    )
    expect(await asNews.json()).toMatchObject({ error: 'invalid_grant' })
  })
})

describe('POST /token/logout', () => {
  test("ends the passport session behind the site's token, for every site", async () => {
    const world = await createTestWorld()
    const news = await signIn(world.app, world.news, world.alice)
    const { req, code } = await shopCode(world, news.jar)
    const auth = basicAuth('shop', world.shop.clientSecret)
    const shopToken = (
      (await (await sitePost(world.app, '/token', codeForm(req, code), auth)).json()) as {
        access_token: string
      }
    ).access_token
    const refused = await sitePost(
      world.app,
      '/token/logout',
      { token: shopToken },
      basicAuth('news', world.news.clientSecret),
    )
    expect(refused.status).toBe(401)
    const res = await sitePost(world.app, '/token/logout', { token: shopToken }, auth)
    expect(res.status).toBe(200)
    const newsCheck = await sitePost(
      world.app,
      '/token/status',
      { token: news.token },
      basicAuth('news', world.news.clientSecret),
    )
    expect(await newsCheck.json()).toMatchObject({ valid: false, reason: 'signed_out' })
  })
})

describe('discovery', () => {
  test('advertises the code grant for site backends: query mode, iss, both client auth methods', async () => {
    const world = await createTestWorld()
    const doc = (await (await world.app.request('/.well-known/openid-configuration')).json()) as Record<
      string,
      unknown
    >
    expect(doc.response_modes_supported).toEqual(['query', 'fragment'])
    expect(doc.authorization_response_iss_parameter_supported).toBe(true)
    expect(doc.token_endpoint).toBe(`${TEST_ISSUER}/token`)
    expect(doc.token_endpoint_auth_methods_supported).toEqual(['client_secret_basic', 'client_secret_post'])
    expect(doc.grant_types_supported).toContain('authorization_code')
  })
})
