import type { Hono } from 'hono'
import { describe, expect, test } from 'vitest'
import { createApp } from '../app.ts'
import { resolveConfig } from '../config.ts'
import {
  authorizeRequest,
  authorizeUrl,
  type CookieJar,
  cookieHeader,
  formPost,
  fragmentOf,
  loginForm,
  openSignInPage,
  postLogin,
  signIn,
  silentSignIn,
} from '../test-flows.ts'
import {
  addSite,
  allLogText,
  createTestWorld,
  EVIL_ORIGIN,
  NEWS_ORIGIN,
  TEST_ISSUER,
} from '../test-support.ts'

const newsRedirect = `${NEWS_ORIGIN}/`

describe('GET /authorize', () => {
  test('shows the sign-in form with a CSRF cookie and strict page headers', async () => {
    const { app } = await createTestWorld()
    const res = await app.request(authorizeUrl(authorizeRequest('news', newsRedirect)))
    expect(res.status).toBe(200)
    const html = await res.text()
    expect(html).toContain('<form method="post" action="/login" id="sign-in" data-password-form="on">')
    expect(html).toContain('name="csrf"')
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    expect(res.headers.get('Content-Security-Policy')).toContain("frame-ancestors 'none'")
    const csrf = res.headers.getSetCookie().find((c) => c.startsWith('__Host-passport_csrf='))
    expect(csrf).toMatch(/Path=\//)
    expect(csrf).toMatch(/Secure/)
    expect(csrf).toMatch(/HttpOnly/)
    expect(csrf).toMatch(/SameSite=Strict/)
  })

  // G6: never redirect anywhere but the site's exact registered redirect URI.
  test.each([
    `${EVIL_ORIGIN}/`,
    '//evil.localhost:8083/',
    `${NEWS_ORIGIN}.evil.localhost/`,
    `${NEWS_ORIGIN}/other`,
    `${NEWS_ORIGIN}`,
    `${NEWS_ORIGIN}/?x=1`,
    `${NEWS_ORIGIN}/#frag`,
    'http://news.localhost:8081@evil.localhost/',
    'javascript:alert(1)',
    `${NEWS_ORIGIN.replace('http:', 'https:')}/`,
    `${NEWS_ORIGIN}/%2e%2e/`,
    '',
  ])('G6: refuses the unregistered redirect %j with an error page, no redirect', async (redirectUri) => {
    const { app } = await createTestWorld()
    const res = await app.request(authorizeUrl(authorizeRequest('news', redirectUri)))
    expect(res.status).toBe(400)
    expect(res.headers.get('Location')).toBeNull()
    expect(await res.text()).toContain('Unknown site or unregistered redirect address.')
  })

  test('refuses an unknown client id and an overlong one without redirecting', async () => {
    const { app } = await createTestWorld()
    for (const id of ['nope', 'x'.repeat(65)]) {
      const res = await app.request(authorizeUrl(authorizeRequest(id, newsRedirect)))
      expect(res.status).toBe(400)
      expect(res.headers.get('Location')).toBeNull()
    }
  })

  test("refuses Shop's redirect URI under News's client id", async () => {
    const { app, shop } = await createTestWorld()
    const res = await app.request(authorizeUrl(authorizeRequest('news', shop.site.redirectUris[0])))
    expect(res.status).toBe(400)
  })

  test.each([
    ['response_type', 'token'],
    ['code_challenge_method', 'plain'],
    ['code_challenge', 'short'],
    ['prompt', 'consent'],
    ['state', 'x'.repeat(513)],
  ])('a bad %s=%j goes back to the site as invalid_request in the fragment', async (name, value) => {
    const { app } = await createTestWorld()
    const res = await app.request(authorizeUrl(authorizeRequest('news', newsRedirect), { [name]: value }))
    expect(res.status).toBe(303)
    const location = res.headers.get('Location') ?? ''
    expect(location.startsWith(`${newsRedirect}#`)).toBe(true)
    expect(fragmentOf(res).get('error')).toBe('invalid_request')
  })

  test('an unknown response_mode goes back as invalid_request in the query (the standard default)', async () => {
    const { app } = await createTestWorld()
    const req = authorizeRequest('news', newsRedirect)
    const res = await app.request(authorizeUrl(req, { response_mode: 'form_post' }))
    expect(res.status).toBe(303)
    const location = new URL(res.headers.get('Location') ?? '')
    expect(location.hash).toBe('')
    expect(location.searchParams.get('error')).toBe('invalid_request')
    expect(location.searchParams.get('iss')).toBe(TEST_ISSUER)
  })

  test('without response_mode the answer is in the query, as a stock OIDC client expects', async () => {
    const { app, news, shop, alice } = await createTestWorld()
    const { jar } = await signIn(app, news, alice)
    const req = authorizeRequest('shop', shop.site.redirectUris[0])
    const url = authorizeUrl(req, { prompt: 'none' }).replace('&response_mode=fragment', '')
    const res = await app.request(url, { headers: { Cookie: cookieHeader(jar) } })
    expect(res.status).toBe(303)
    const location = new URL(res.headers.get('Location') ?? '')
    expect(location.hash).toBe('')
    expect(location.searchParams.get('code')).toBeTruthy()
    expect(location.searchParams.get('state')).toBe(req.state)
    expect(location.searchParams.get('iss')).toBe(TEST_ISSUER)
  })

  test('prompt=none without a session answers login_required once, never a form', async () => {
    const { app } = await createTestWorld()
    const req = authorizeRequest('news', newsRedirect)
    const res = await app.request(authorizeUrl(req, { prompt: 'none' }))
    expect(res.status).toBe(303)
    const fragment = fragmentOf(res)
    expect(fragment.get('error')).toBe('login_required')
    expect(fragment.get('state')).toBe(req.state)
    expect(fragment.has('code')).toBe(false)
  })

  test('prompt=none with a live session returns a code in the fragment, never in the query', async () => {
    const { app, news, shop, alice } = await createTestWorld()
    const { jar } = await signIn(app, news, alice)
    const { res, token } = await silentSignIn(app, shop, jar)
    expect(res.status).toBe(303)
    const location = new URL(res.headers.get('Location') ?? '')
    expect(location.search).toBe('')
    expect(fragmentOf(res).get('iss')).toBe(TEST_ISSUER)
    expect(token).toBeTruthy()
  })

  test('prompt=login shows the form even with a live session', async () => {
    const { app, news, alice } = await createTestWorld()
    const { jar } = await signIn(app, news, alice)
    const res = await app.request(authorizeUrl(authorizeRequest('news', newsRedirect), { prompt: 'login' }), {
      headers: { Cookie: cookieHeader(jar) },
    })
    expect(res.status).toBe(200)
    expect(await res.text()).toContain('action="/login"')
  })
})

describe('POST /login', () => {
  test('right password: 303 to the site with a code, session cookies with safe attributes (G9)', async () => {
    const { app, alice, deps } = await createTestWorld()
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', newsRedirect)
    const res = await postLogin(app, jar, req, alice)
    expect(res.status).toBe(303)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    expect(fragmentOf(res).get('code')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(fragmentOf(res).get('state')).toBe(req.state)
    const cookies = res.headers.getSetCookie()
    const session = cookies.find((c) => c.startsWith('__Host-passport_session='))
    const crossSite = cookies.find((c) => c.startsWith('__Host-passport_xs='))
    for (const cookie of [session, crossSite]) {
      expect(cookie).toMatch(/; Path=\//)
      expect(cookie).toMatch(/; Secure/)
      expect(cookie).toMatch(/; HttpOnly/)
      expect(cookie).not.toMatch(/Domain=/i)
    }
    expect(session).toMatch(/SameSite=Lax/)
    expect(crossSite).toMatch(/SameSite=None/)
    expect(deps.logs.map((l) => l.event)).toContain('session_created')
  })

  test('wrong password and unknown user give the same answer (G3) and no session', async () => {
    const { app, alice, deps } = await createTestWorld()
    const answers: string[] = []
    for (const credentials of [
      { username: 'alice', password: 'wrong' },
      { username: 'nobody', password: 'wrong' },
    ]) {
      const jar: CookieJar = new Map()
      const res = await postLogin(app, jar, authorizeRequest('news', newsRedirect), credentials)
      expect(res.status).toBe(401)
      expect(jar.has('__Host-passport_session')).toBe(false)
      answers.push((await res.text()).replace(/value="[^"]*"/g, ''))
    }
    expect(answers[0]).toBe(answers[1])
    expect(answers[0]).toContain('Wrong username or password.')
    expect(deps.logs.filter((l) => l.event === 'authn_login_fail')).toHaveLength(2)
    expect(allLogText(deps.logs)).not.toContain(alice.password)
    expect(allLogText(deps.logs)).not.toContain('wrong')
  })

  // G4: login CSRF. Each variant must be refused with 403 and create no session.
  test.each([
    ['cross-site Sec-Fetch-Site', { 'Sec-Fetch-Site': 'cross-site' }, true],
    ['same-site Sec-Fetch-Site', { 'Sec-Fetch-Site': 'same-site' }, true],
    ['foreign Origin', { Origin: EVIL_ORIGIN }, true],
    ['null Origin', { Origin: 'null' }, true],
    ['no CSRF cookie', {}, false],
  ])('G4: refuses a login post with %s', async (_, headers, keepCookie) => {
    const { app, alice, deps } = await createTestWorld()
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', newsRedirect)
    const csrf = await openSignInPage(app, jar, req)
    if (!keepCookie) jar.clear()
    const res = await formPost(app, '/login', jar, Object.fromEntries(loginForm(req, alice, csrf)), headers)
    expect(res.status).toBe(403)
    expect(res.headers.getSetCookie().some((c) => c.startsWith('__Host-passport_session'))).toBe(false)
    expect(deps.logs.map((l) => l.event)).toContain('malicious_csrf')
  })

  test('refuses a CSRF token that does not match the cookie', async () => {
    const { app, alice } = await createTestWorld()
    const jar: CookieJar = new Map([['__Host-passport_csrf', 'a'.repeat(43)]])
    const req = authorizeRequest('news', newsRedirect)
    const res = await app.request('/login', {
      method: 'POST',
      body: loginForm(req, alice, 'b'.repeat(43)),
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Origin: TEST_ISSUER,
        Cookie: cookieHeader(jar),
      },
    })
    expect(res.status).toBe(403)
  })

  test('a planted session cookie never becomes the signed-in session (G5 fixation)', async () => {
    const { app, alice } = await createTestWorld()
    const planted = 'k'.repeat(43)
    const jar: CookieJar = new Map([['__Host-passport_session', planted]])
    await postLogin(app, jar, authorizeRequest('news', newsRedirect), alice)
    expect(jar.get('__Host-passport_session')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(jar.get('__Host-passport_session')).not.toBe(planted)
  })

  test('a reflected username is escaped on the page (G7)', async () => {
    const { app } = await createTestWorld()
    const jar: CookieJar = new Map()
    const res = await postLogin(app, jar, authorizeRequest('news', newsRedirect), {
      username: '<img src=x onerror=alert(1)>',
      password: 'x',
    })
    const html = await res.text()
    expect(html).not.toContain('<img src=x')
    expect(html).toContain('value="&#60;img src=x onerror=alert(1)&#62;"')
  })

  test('a site name with markup is escaped on the form (G7)', async () => {
    const { app, deps } = await createTestWorld()
    await addSite(deps, { id: 'xss', name: '<script>alert(1)</script>', origins: [NEWS_ORIGIN] })
    const res = await app.request(authorizeUrl(authorizeRequest('xss', newsRedirect)))
    const html = await res.text()
    expect(html).not.toContain('<script>alert(1)')
    expect(html).toContain('&#60;script&#62;alert(1)')
  })

  test('refuses a repeated form field and a non-form body', async () => {
    const { app } = await createTestWorld()
    const repeated = await app.request('/login', {
      method: 'POST',
      body: 'csrf=a&csrf=b',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: TEST_ISSUER },
    })
    expect(repeated.status).toBe(400)
    expect(await repeated.json()).toMatchObject({ error: 'invalid_request' })
    const json = await app.request('/login', {
      method: 'POST',
      body: '{}',
      headers: { 'Content-Type': 'application/json', Origin: TEST_ISSUER },
    })
    expect(json.status).toBe(415)
    expect(await json.json()).toMatchObject({ error: 'unsupported_media_type' })
  })

  test('after 5 wrong passwords even the right one gets the generic answer for a minute (G1)', async () => {
    const { app, alice, deps } = await createTestWorld()
    const attempt = (password: string) =>
      postLogin(app, new Map(), authorizeRequest('news', newsRedirect), { username: 'alice', password })
    for (let i = 0; i < 5; i++) expect((await attempt('wrong')).status).toBe(401)
    const locked = await attempt(alice.password)
    expect(locked.status).toBe(401)
    expect(await locked.text()).toContain('Wrong username or password.')
    expect(deps.logs.map((l) => l.event)).toContain('authn_login_lock')
    deps.clock.advance(60_000)
    expect((await attempt(alice.password)).status).toBe(303)
  })

  test('30 failures from one address across accounts: 429 with Retry-After (G2)', async () => {
    const { app, alice } = await createTestWorld()
    for (let i = 0; i < 30; i++) {
      await postLogin(app, new Map(), authorizeRequest('news', newsRedirect), {
        username: `u${i}`,
        password: 'x',
      })
    }
    const res = await postLogin(app, new Map(), authorizeRequest('news', newsRedirect), alice)
    expect(res.status).toBe(429)
    expect(Number(res.headers.get('Retry-After'))).toBeGreaterThan(0)
  })

  test('behind a trusted proxy the limit is per forwarded client, not per proxy (G2, PASSPORT_TRUSTED_PROXIES)', async () => {
    const { deps, alice } = await createTestWorld()
    const app = createApp({
      ...deps,
      config: resolveConfig({ ...deps.config, trustedProxies: ['10.0.0.1'] }),
    })
    const behindProxy = (forwardedFor: string) => {
      // Every request reaches the passport from the proxy's socket, 10.0.0.1.
      const env = { incoming: { socket: { remoteAddress: '10.0.0.1', remotePort: 1, remoteFamily: 'IPv4' } } }
      const viaProxy = {
        request: (path: string, init: RequestInit = {}) =>
          app.request(path, { ...init, headers: { ...init.headers, 'X-Forwarded-For': forwardedFor } }, env),
      } as unknown as Hono
      return (username: string, password: string) =>
        postLogin(viaProxy, new Map(), authorizeRequest('news', newsRedirect), { username, password })
    }
    // The attacker writes its own X-Forwarded-For; the proxy appends the real address.
    const attacker = behindProxy('198.51.100.1, 203.0.113.66')
    for (let i = 0; i < 30; i++) await attacker(`u${i}`, 'x')
    expect((await attacker('alice', alice.password)).status).toBe(429)
    const spoofing = behindProxy('198.51.100.2, 203.0.113.66')
    expect((await spoofing('alice', alice.password)).status).toBe(429)
    // Another user behind the same proxy is not locked out with the attacker.
    const neighbour = behindProxy('203.0.113.77')
    expect((await neighbour('alice', alice.password)).status).toBe(303)
  })

  test('without trusted proxies X-Forwarded-For is ignored: the TCP peer is counted (G2)', async () => {
    const { deps, alice } = await createTestWorld()
    const app = createApp(deps)
    const env = { incoming: { socket: { remoteAddress: '10.0.0.1', remotePort: 1, remoteFamily: 'IPv4' } } }
    const from = (forwardedFor: string) =>
      ({
        request: (path: string, init: RequestInit = {}) =>
          app.request(path, { ...init, headers: { ...init.headers, 'X-Forwarded-For': forwardedFor } }, env),
      }) as unknown as Hono
    for (let i = 0; i < 30; i++) {
      await postLogin(from(`203.0.113.${i}`), new Map(), authorizeRequest('news', newsRedirect), {
        username: `u${i}`,
        password: 'x',
      })
    }
    const res = await postLogin(
      from('203.0.113.200'),
      new Map(),
      authorizeRequest('news', newsRedirect),
      alice,
    )
    expect(res.status).toBe(429)
  })
})
