import { describe, expect, test } from 'vitest'
import type { SessionEndEvent } from '../events/bus.ts'
import {
  authorizeRequest,
  COMPACT_TOKEN,
  cookieHeader,
  exchangeCode,
  fragmentOf,
  frameApi,
  postLogin,
  signIn,
  silentSignIn,
} from '../test-flows.ts'
import { allLogText, createTestWorld, EVIL_ORIGIN, NEWS_ORIGIN, SHOP_ORIGIN } from '../test-support.ts'

describe('frame API origin gate', () => {
  const passport = 'http://passport.localhost:8080'
  test.each([
    ['no Origin', { 'Sec-Fetch-Site': 'same-origin' }],
    ['a site Origin', { Origin: NEWS_ORIGIN, 'Sec-Fetch-Site': 'cross-site' }],
    ['a hostile Origin', { Origin: EVIL_ORIGIN }],
    [
      'the passport Origin with Sec-Fetch-Site cross-site',
      { Origin: passport, 'Sec-Fetch-Site': 'cross-site' },
    ],
    [
      'the passport Origin with Sec-Fetch-Site same-site',
      { Origin: passport, 'Sec-Fetch-Site': 'same-site' },
    ],
    ['Origin null', { Origin: 'null' }],
  ])('refuses %s with 403 origin_not_allowed', async (_, headers: Record<string, string>) => {
    const { app, news, deps } = await createTestWorld()
    const res = await app.request('/api/frame/token', {
      method: 'POST',
      body: JSON.stringify({ grant_type: 'session', authkey: news.authkey }),
      headers: { 'Content-Type': 'application/json', ...headers },
    })
    expect(res.status).toBe(403)
    expect(await res.json()).toEqual({
      error: 'origin_not_allowed',
      error_description: 'only the passport frame may call this endpoint',
    })
    expect(deps.logs.map((l) => l.event)).toContain('malicious_cors')
  })
})

describe('POST /api/frame/token (authorization_code)', () => {
  test('exchanges a code for a site token, no-store, with expiry and server time', async () => {
    const { app, news, alice, deps } = await createTestWorld()
    const { body, token } = await signIn(app, news, alice)
    expect(token).toMatch(COMPACT_TOKEN)
    expect(body.expires_at).toBe(deps.clock.now() + 900_000)
    expect(body.expires_in).toBe(900)
    expect(body.server_time).toBe(deps.clock.now())
  })

  test('a code works once; the second exchange is invalid_grant (replay)', async () => {
    const { app, news, alice } = await createTestWorld()
    const req = authorizeRequest('news', news.site.redirectUris[0])
    const login = await postLogin(app, new Map(), req, alice)
    const code = fragmentOf(login).get('code') ?? ''
    const [a, b] = await Promise.all([
      exchangeCode(app, news.authkey, req, code),
      exchangeCode(app, news.authkey, req, code),
    ])
    expect([a.status, b.status].sort()).toEqual([200, 400])
    const failed = a.status === 400 ? a : b
    expect(((await failed.json()) as { error: string }).error).toBe('invalid_grant')
  })

  test('refuses a wrong PKCE verifier, and the code is spent by the attempt', async () => {
    const { app, news, alice } = await createTestWorld()
    const req = authorizeRequest('news', news.site.redirectUris[0])
    const code = fragmentOf(await postLogin(app, new Map(), req, alice)).get('code') ?? ''
    const wrong = await exchangeCode(app, news.authkey, { ...req, verifier: 'x'.repeat(43) }, code)
    expect(wrong.status).toBe(400)
    expect(await wrong.json()).toMatchObject({ error: 'invalid_grant' })
    const right = await exchangeCode(app, news.authkey, req, code)
    expect(right.status).toBe(400)
  })

  test("refuses News's code presented with Shop's authkey (C5)", async () => {
    const { app, news, shop, alice } = await createTestWorld()
    const req = authorizeRequest('news', news.site.redirectUris[0])
    const code = fragmentOf(await postLogin(app, new Map(), req, alice)).get('code') ?? ''
    const res = await exchangeCode(app, shop.authkey, { ...req, redirectUri: `${SHOP_ORIGIN}/` }, code)
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: 'invalid_grant' })
  })

  test('refuses an expired code', async () => {
    const { app, news, alice, deps } = await createTestWorld()
    const req = authorizeRequest('news', news.site.redirectUris[0])
    const code = fragmentOf(await postLogin(app, new Map(), req, alice)).get('code') ?? ''
    deps.clock.advance(61_000)
    expect((await exchangeCode(app, news.authkey, req, code)).status).toBe(400)
  })

  test.each([
    ['garbage', 'not-an-authkey'],
    ['a number', 42],
    ['missing', undefined],
    ['oversized', 'a'.repeat(5000)],
  ])('refuses a %s authkey with invalid_authkey', async (_, authkey) => {
    const { app } = await createTestWorld()
    const res = await frameApi(app, 'token', { grant_type: 'session', authkey })
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: 'invalid_authkey' })
  })

  test('refuses a stale authkey after the site was re-registered (C6)', async () => {
    const { app, news, deps } = await createTestWorld()
    const { addSite } = await import('../test-support.ts')
    await addSite(deps, { id: 'news', origins: [NEWS_ORIGIN], name: 'News 2' })
    const res = await frameApi(app, 'token', { grant_type: 'session', authkey: news.authkey })
    expect(await res.json()).toMatchObject({ error: 'invalid_authkey' })
  })

  test.each([
    ['not JSON', '{"grant_type":', 'application/json', 400, 'invalid_request'],
    ['a JSON array', '[]', 'application/json', 400, 'invalid_request'],
    ['a form body', 'grant_type=session', 'application/x-www-form-urlencoded', 415, 'unsupported_media_type'],
  ])('refuses %s', async (_, body, type, status, error) => {
    const { app } = await createTestWorld()
    const res = await frameApi(app, 'token', body, { 'Content-Type': type })
    expect(res.status).toBe(status)
    expect(await res.json()).toMatchObject({ error })
  })

  test('refuses an unknown grant type', async () => {
    const { app, news } = await createTestWorld()
    const res = await frameApi(app, 'token', { grant_type: 'password', authkey: news.authkey })
    expect(await res.json()).toMatchObject({ error: 'invalid_request' })
  })
})

describe('POST /api/frame/token (session grant, third-party cookies allowed)', () => {
  test('mints from the cross-site cookie when the browser sends it', async () => {
    const { app, news, shop, alice } = await createTestWorld()
    const { jar } = await signIn(app, news, alice)
    const res = await frameApi(
      app,
      'token',
      { grant_type: 'session', authkey: shop.authkey },
      { Cookie: `__Host-passport_xs=${jar.get('__Host-passport_xs')}` },
    )
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
  })

  test('without a cookie: 401 login_required', async () => {
    const { app, shop } = await createTestWorld()
    const res = await frameApi(app, 'token', { grant_type: 'session', authkey: shop.authkey })
    expect(res.status).toBe(401)
    expect(await res.json()).toMatchObject({ error: 'login_required' })
  })
})

describe('POST /api/frame/token (refresh_token)', () => {
  const refresh = (app: Parameters<typeof frameApi>[0], authkey: string, refreshToken: string) =>
    frameApi(app, 'token', { grant_type: 'refresh_token', authkey, refresh_token: refreshToken })

  test('rotates, no-store; a retry gets the byte-identical answer', async () => {
    const { app, news, alice } = await createTestWorld()
    const { body } = await signIn(app, news, alice)
    expect(body.refresh_token).toMatch(/^[0-9a-f-]{36}\.\d+\.[A-Za-z0-9_-]{43}$/)
    expect(body.refresh_at).toBe(body.expires_at - 300_000)
    const [a, b] = [
      await refresh(app, news.authkey, body.refresh_token),
      await refresh(app, news.authkey, body.refresh_token),
    ]
    expect(a.status).toBe(200)
    expect(a.headers.get('Cache-Control')).toBe('no-store')
    expect(a.headers.get('Content-Type')).toContain('application/json')
    const text = await a.text()
    expect(await b.text()).toBe(text)
    expect(JSON.parse(text).refresh_token).not.toBe(body.refresh_token)
  })

  test("D5: scope, audience or resource sent with a refresh widen nothing: the token stays the site's", async () => {
    const { app, news, alice } = await createTestWorld()
    const { body } = await signIn(app, news, alice)
    const res = await frameApi(app, 'token', {
      grant_type: 'refresh_token',
      authkey: news.authkey,
      refresh_token: body.refresh_token,
      scope: 'openid admin',
      audience: 'shop',
      resource: 'http://shop.localhost:8082/',
    })
    expect(res.status).toBe(200)
    const token = ((await res.json()) as { access_token: string }).access_token
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
    expect(claims.aud).toBe('news')
    expect(claims).not.toHaveProperty('scope')
  })

  test('a refusal says why: invalid_grant with the reason', async () => {
    const { app, news, alice } = await createTestWorld()
    const { body, token } = await signIn(app, news, alice)
    await frameApi(app, 'logout', { authkey: news.authkey, token })
    const res = await refresh(app, news.authkey, body.refresh_token)
    expect(res.status).toBe(400)
    expect(await res.json()).toEqual({
      error: 'invalid_grant',
      error_description: 'the refresh credential is not valid',
      reason: 'signed_out',
    })
  })
})

describe('newest wins across devices', () => {
  test('a sign-in on a second device replaces the first device on that site only', async () => {
    const { app, news, shop, alice, deps } = await createTestWorld()
    const events: SessionEndEvent[] = []
    deps.events.subscribe((e) => events.push(e))
    const first = await signIn(app, news, alice)
    const firstShop = await silentSignIn(app, shop, first.jar)
    await signIn(app, news, alice) // second device

    const check = async (authkey: string, token: string) =>
      (await (await frameApi(app, 'check', { authkey, token })).json()) as { valid: boolean; reason: string }
    expect(await check(news.authkey, first.token)).toMatchObject({ valid: false, reason: 'replaced' })
    expect(await check(shop.authkey, firstShop.token ?? '')).toMatchObject({ valid: true })
    expect(events).toEqual([expect.objectContaining({ type: 'site_access_ended', reason: 'replaced' })])

    // The replaced device may not take News back silently: it must sign in again, told why.
    const silent = await silentSignIn(app, news, first.jar)
    expect(fragmentOf(silent.res).get('error')).toBe('login_required')
    expect(fragmentOf(silent.res).get('reason')).toBe('replaced')
    const form = await app.request(
      `/authorize?${new URLSearchParams({
        response_type: 'code',
        client_id: 'news',
        redirect_uri: `${NEWS_ORIGIN}/`,
        state: 's',
        code_challenge: 'a'.repeat(43),
        code_challenge_method: 'S256',
      })}`,
      { headers: { Cookie: cookieHeader(first.jar) } },
    )
    expect(await form.text()).toContain('signed in on another device')
  })
})

describe('POST /api/frame/check and /api/frame/logout', () => {
  test('check reports valid with expiry and server time', async () => {
    const { app, news, alice, deps } = await createTestWorld()
    const { token, body } = await signIn(app, news, alice)
    const res = await frameApi(app, 'check', { authkey: news.authkey, token })
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    expect(await res.json()).toEqual({
      valid: true,
      reason: null,
      expires_at: body.expires_at,
      server_time: deps.clock.now(),
    })
  })

  test('check reports expired after the lifetime, by the server clock', async () => {
    const { app, news, alice, deps } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    deps.clock.advance(901_000)
    const res = await frameApi(app, 'check', { authkey: news.authkey, token })
    expect(await res.json()).toMatchObject({ valid: false, reason: 'expired' })
  })

  test("check of News's token under Shop's authkey is refused, with nothing about it (B7)", async () => {
    const { app, news, shop, alice } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    const res = await frameApi(app, 'check', { authkey: shop.authkey, token })
    expect(res.status).toBe(401)
    expect(await res.json()).toEqual({ error: 'invalid_token', error_description: expect.any(String) })
  })

  test('logout ends the session everywhere: every site token signed_out, silent sign-in refused (G8)', async () => {
    const { app, news, shop, alice, deps } = await createTestWorld()
    const events: SessionEndEvent[] = []
    deps.events.subscribe((e) => events.push(e))
    const { jar, token } = await signIn(app, news, alice)
    const shopToken = (await silentSignIn(app, shop, jar)).token ?? ''
    const res = await frameApi(app, 'logout', { authkey: shop.authkey, token: shopToken })
    expect(res.status).toBe(200)
    expect(res.headers.get('Set-Login')).toBe('logged-out')
    for (const [authkey, t] of [
      [news.authkey, token],
      [shop.authkey, shopToken],
    ]) {
      const check = await frameApi(app, 'check', { authkey, token: t })
      expect(await check.json()).toMatchObject({ valid: false, reason: 'signed_out' })
    }
    expect(fragmentOf((await silentSignIn(app, news, jar)).res).get('error')).toBe('login_required')
    expect(events).toEqual([expect.objectContaining({ type: 'session_ended', reason: 'signed_out' })])
  })

  test('logout with a forged token is invalid_token and ends nothing', async () => {
    const { app, news, alice } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    const [h, p] = token.split('.')
    const res = await frameApi(app, 'logout', { authkey: news.authkey, token: `${h}.${p}.AAAA` })
    expect(res.status).toBe(401)
    expect(res.headers.get('WWW-Authenticate')).toBe('Bearer error="invalid_token"')
    const check = await frameApi(app, 'check', { authkey: news.authkey, token })
    expect(await check.json()).toMatchObject({ valid: true })
  })

  test('no token, code or authkey ever reaches the log', async () => {
    const { app, news, shop, alice, deps } = await createTestWorld()
    const { jar, token } = await signIn(app, news, alice)
    await silentSignIn(app, shop, jar)
    await frameApi(app, 'check', { authkey: shop.authkey, token })
    await frameApi(app, 'logout', { authkey: news.authkey, token })
    await frameApi(app, 'token', { grant_type: 'session', authkey: 'forged.authkey.value.x.y' })
    const text = allLogText(deps.logs)
    expect(text).not.toMatch(COMPACT_TOKEN)
    expect(text).not.toContain(jar.get('__Host-passport_session'))
    expect(text).not.toContain(alice.password)
  })
})
