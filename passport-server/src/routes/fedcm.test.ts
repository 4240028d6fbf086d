import { createHash } from 'node:crypto'
import { describe, expect, test } from 'vitest'
import { runCli } from '../cli.ts'
import { validateSiteInput } from '../services/registry.ts'
import {
  authorizeRequest,
  authorizeUrl,
  type CookieJar,
  cookieHeader,
  exchangeCode,
  fragmentOf,
  frameApi,
  postLogin,
  signIn,
  storeCookies,
} from '../test-flows.ts'
import {
  addSite,
  createTestWorld,
  EVIL_ORIGIN,
  NEWS_ORIGIN,
  SHOP_ORIGIN,
  TEST_ISSUER,
} from '../test-support.ts'

/** A world where News and Shop opted in to FedCM and Docs (registered) did not. */
async function fedcmWorld() {
  const world = await createTestWorld()
  const { deps } = world
  const news = await addSite(deps, {
    id: 'news',
    origins: [NEWS_ORIGIN],
    fedcm: true,
    privacyPolicyUrl: `${NEWS_ORIGIN}/privacy`,
    termsOfServiceUrl: `${NEWS_ORIGIN}/terms`,
  })
  const shop = await addSite(deps, { id: 'shop', origins: [SHOP_ORIGIN], fedcm: true })
  const docs = await addSite(deps, { id: 'docs', origins: ['http://docs.localhost:8084'] })
  const { jar, token } = await signIn(world.app, news, world.alice)
  return { ...world, news, shop, docs, jar, token }
}

const WEBIDENTITY = { 'Sec-Fetch-Dest': 'webidentity' }

function assertionPost(
  app: Awaited<ReturnType<typeof fedcmWorld>>['app'],
  jar: CookieJar,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
  path = '/fedcm/assertion',
) {
  return app.request(path, {
    method: 'POST',
    body: new URLSearchParams(fields).toString(),
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Cookie: cookieHeader(jar),
      Origin: NEWS_ORIGIN,
      'Sec-Fetch-Site': 'cross-site',
      ...WEBIDENTITY,
      ...headers,
    },
  })
}

/** The fields the browser posts for News, with a PKCE challenge as the nonce. */
function newsAssertion(userId: string, extra: Record<string, string> = {}) {
  const req = authorizeRequest('news', NEWS_ORIGIN)
  return {
    req,
    fields: {
      client_id: 'news',
      account_id: userId,
      nonce: req.challenge,
      disclosure_text_shown: 'true',
      is_auto_selected: 'false',
      ...extra,
    },
  }
}

describe('FedCM discovery', () => {
  test('the well-known file names the config, which names every endpoint on the issuer', async () => {
    const { app } = await fedcmWorld()
    const known = await app.request('/.well-known/web-identity')
    expect(await known.json()).toEqual({
      provider_urls: [`${TEST_ISSUER}/fedcm/config.json`],
      accounts_endpoint: `${TEST_ISSUER}/fedcm/accounts`,
      login_url: `${TEST_ISSUER}/fedcm/sign-in`,
    })
    expect(known.headers.get('Cross-Origin-Resource-Policy')).toBe('cross-origin')
    const config = (await (await app.request('/fedcm/config.json')).json()) as Record<string, string>
    expect(config).toMatchObject({
      accounts_endpoint: `${TEST_ISSUER}/fedcm/accounts`,
      client_metadata_endpoint: `${TEST_ISSUER}/fedcm/client-metadata`,
      id_assertion_endpoint: `${TEST_ISSUER}/fedcm/assertion`,
      disconnect_endpoint: `${TEST_ISSUER}/fedcm/disconnect`,
      login_url: `${TEST_ISSUER}/fedcm/sign-in`,
    })
  })
})

describe('GET /fedcm/sign-in (login_url)', () => {
  test('closes the pop-up with IdentityProvider.close(), a script its CSP allows by hash alone', async () => {
    const { app } = await createTestWorld()
    const res = await app.request('/fedcm/sign-in')
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    const html = await res.text()
    const script = /<script>([^<]*)<\/script>/.exec(html)?.[1] ?? ''
    expect(script).toContain('IdentityProvider.close()')
    const csp = res.headers.get('Content-Security-Policy') ?? ''
    const hash = createHash('sha256').update(script).digest('base64')
    expect(csp).toContain(`script-src 'sha256-${hash}'`)
    expect(csp).not.toContain('unsafe-inline')
    expect(csp).toContain("frame-ancestors 'none'")
    // Where no script runs, the text says what to do.
    expect(html).toContain("press the site's Sign-in button again")
  })
})

describe('Storage Access Headers on the frame page', () => {
  test("a FedCM site's frame loaded with its grant inactive is told to activate it; nothing else is", async () => {
    const { app } = await fedcmWorld()
    const frame = (site: string, state?: string) =>
      app.request(`/frame/${site}`, state ? { headers: { 'Sec-Fetch-Storage-Access': state } } : {})
    expect((await frame('news', 'inactive')).headers.get('Activate-Storage-Access')).toBe('load')
    // Already active, no grant, or a browser without the header: nothing to ask.
    for (const state of ['active', 'none', undefined])
      expect((await frame('news', state)).headers.get('Activate-Storage-Access')).toBeNull()
    // A site that did not opt in to FedCM is never asked to use the passport's own storage.
    expect((await frame('docs', 'inactive')).headers.get('Activate-Storage-Access')).toBeNull()
  })
})

describe('GET /fedcm/accounts', () => {
  test('lists the signed-in user for the browser, and nobody without a session', async () => {
    const { app, jar, alice } = await fedcmWorld()
    const res = await app.request('/fedcm/accounts', {
      headers: { Cookie: cookieHeader(jar), ...WEBIDENTITY },
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    expect(await res.json()).toEqual({
      accounts: [{ id: alice.id, name: 'Alice', given_name: 'Alice', username: 'alice' }],
    })
    const none = await app.request('/fedcm/accounts', { headers: WEBIDENTITY })
    expect(none.status).toBe(401)
    expect(none.headers.get('Set-Login')).toBe('logged-out')
  })

  test('refuses a request the browser did not mark Sec-Fetch-Dest: webidentity', async () => {
    const { app, jar } = await fedcmWorld()
    for (const dest of [undefined, 'empty', 'document']) {
      const res = await app.request('/fedcm/accounts', {
        headers: { Cookie: cookieHeader(jar), ...(dest ? { 'Sec-Fetch-Dest': dest } : {}) },
      })
      expect(res.status).toBe(403)
      expect(JSON.stringify(await res.json())).not.toContain('alice')
    }
  })

  test('an ended session lists nobody and its cookies are cleared with Set-Login: logged-out', async () => {
    const { app, jar, news, token } = await fedcmWorld()
    await frameApi(app, 'logout', { authkey: news.authkey, token })
    const res = await app.request('/fedcm/accounts', {
      headers: { Cookie: cookieHeader(jar), ...WEBIDENTITY },
    })
    expect(res.status).toBe(401)
    expect(res.headers.get('Set-Login')).toBe('logged-out')
    const cleared = res.headers.getSetCookie()
    expect(cleared.some((c) => c.startsWith('__Host-passport_session=;') && /Max-Age=0/.test(c))).toBe(true)
    expect(cleared.some((c) => c.startsWith('__Host-passport_xs=;') && /Max-Age=0/.test(c))).toBe(true)
  })
})

describe('GET /fedcm/client-metadata', () => {
  test("gives a FedCM site's policy links; nothing for unknown or non-FedCM sites", async () => {
    const { app } = await fedcmWorld()
    const news = await app.request('/fedcm/client-metadata?client_id=news', { headers: WEBIDENTITY })
    expect(await news.json()).toEqual({
      privacy_policy_url: `${NEWS_ORIGIN}/privacy`,
      terms_of_service_url: `${NEWS_ORIGIN}/terms`,
    })
    expect(
      await (await app.request('/fedcm/client-metadata?client_id=shop', { headers: WEBIDENTITY })).json(),
    ).toEqual({})
    for (const id of ['docs', 'nope', 'x'.repeat(65), '']) {
      const res = await app.request(`/fedcm/client-metadata?client_id=${id}`, { headers: WEBIDENTITY })
      expect(res.status).toBe(404)
    }
    expect((await app.request('/fedcm/client-metadata?client_id=news')).status).toBe(403)
  })
})

describe('POST /fedcm/assertion', () => {
  test('returns a one-time code the frame redeems like the redirect code, bound to the nonce and origin', async () => {
    const { app, jar, news, alice, deps } = await fedcmWorld()
    const { req, fields } = newsAssertion(alice.id)
    const res = await assertionPost(app, jar, fields)
    expect(res.status).toBe(200)
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe(NEWS_ORIGIN)
    expect(res.headers.get('Access-Control-Allow-Credentials')).toBe('true')
    const { token: code } = (await res.json()) as { token: string }
    expect(code).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(deps.logs.some((l) => l.event === 'fedcm_assertion' && l.fields.site === 'news')).toBe(true)

    const exchanged = await exchangeCode(app, news.authkey, req, code)
    expect(exchanged.status).toBe(200)
    const body = (await exchanged.json()) as { access_token: string; refresh_token: string }
    expect(body.refresh_token).toBeTruthy()
    // Spent: a second exchange of the same code is refused.
    expect((await exchangeCode(app, news.authkey, req, code)).status).toBe(400)
  })

  test('the nonce may come in params (current browsers); two different nonces are refused', async () => {
    const { app, jar, news, alice } = await fedcmWorld()
    const { req, fields } = newsAssertion(alice.id)
    const { nonce, ...rest } = fields
    const res = await assertionPost(app, jar, { ...rest, params: JSON.stringify({ nonce }) })
    expect(res.status).toBe(200)
    const { token: code } = (await res.json()) as { token: string }
    expect((await exchangeCode(app, news.authkey, req, code)).status).toBe(200)
    const other = authorizeRequest('news', NEWS_ORIGIN).challenge
    const mixed = await assertionPost(app, jar, { ...fields, params: JSON.stringify({ nonce: other }) })
    expect(mixed.status).toBe(400)
  })

  test('a code only redeems with the verifier of its nonce, for the origin that asked', async () => {
    const { app, jar, news, alice } = await fedcmWorld()
    const { req, fields } = newsAssertion(alice.id)
    const code = ((await (await assertionPost(app, jar, fields)).json()) as { token: string }).token
    const wrongVerifier = { ...authorizeRequest('news', NEWS_ORIGIN) }
    expect((await exchangeCode(app, news.authkey, wrongVerifier, code)).status).toBe(400)
    const code2 = (
      (await (await assertionPost(app, jar, newsAssertion(alice.id).fields)).json()) as { token: string }
    ).token
    expect(
      (await exchangeCode(app, news.authkey, { ...req, redirectUri: `${NEWS_ORIGIN}/` }, code2)).status,
    ).toBe(400)
  })

  test('hostile twin: an unregistered origin gets no code and no CORS header', async () => {
    const { app, jar, alice, deps } = await fedcmWorld()
    const res = await assertionPost(app, jar, newsAssertion(alice.id).fields, { Origin: EVIL_ORIGIN })
    expect(res.status).toBe(403)
    expect(res.headers.get('Access-Control-Allow-Origin')).toBeNull()
    expect(JSON.stringify(await res.json())).not.toMatch(/token/)
    expect(deps.logs.some((l) => l.event === 'malicious_cors')).toBe(true)
  })

  test("a registered site asking with another site's client_id gets nothing", async () => {
    const { app, jar, alice } = await fedcmWorld()
    const res = await assertionPost(app, jar, newsAssertion(alice.id).fields, { Origin: SHOP_ORIGIN })
    expect(res.status).toBe(403)
    expect(res.headers.get('Access-Control-Allow-Origin')).toBeNull()
  })

  test('refuses a post without Sec-Fetch-Dest: webidentity (a page or form cannot set it: CSRF)', async () => {
    const { app, jar, alice } = await fedcmWorld()
    for (const dest of ['', 'empty', 'iframe']) {
      const res = await assertionPost(app, jar, newsAssertion(alice.id).fields, { 'Sec-Fetch-Dest': dest })
      expect(res.status).toBe(403)
      expect(res.headers.get('Access-Control-Allow-Origin')).toBeNull()
    }
  })

  test('refuses a registered site that did not opt in with --fedcm true, and an unknown one', async () => {
    const { app, jar, alice } = await fedcmWorld()
    for (const [clientId, origin] of [
      ['docs', 'http://docs.localhost:8084'],
      ['nope', NEWS_ORIGIN],
    ] as const) {
      const res = await assertionPost(app, jar, newsAssertion(alice.id, { client_id: clientId }).fields, {
        Origin: origin,
      })
      expect(res.status).toBe(403)
    }
  })

  test('refuses without a passport session, and says logged-out', async () => {
    const { app, alice } = await fedcmWorld()
    const res = await assertionPost(app, new Map(), newsAssertion(alice.id).fields)
    expect(res.status).toBe(401)
    expect(res.headers.get('Set-Login')).toBe('logged-out')
    expect(await res.json()).toEqual({ error: { code: 'login_required' } })
  })

  test("refuses another account's id and a nonce that is not a PKCE challenge", async () => {
    const { app, jar, alice, bob } = await fedcmWorld()
    expect((await assertionPost(app, jar, newsAssertion(bob.id).fields)).status).toBe(400)
    for (const nonce of ['', 'short', 'x'.repeat(44)]) {
      expect((await assertionPost(app, jar, newsAssertion(alice.id, { nonce }).fields)).status).toBe(400)
    }
    expect((await assertionPost(app, jar, { ...newsAssertion(alice.id).fields, params: '{' })).status).toBe(
      400,
    )
  })

  test('newest wins across FedCM and redirect sign-ins: the FedCM sign-in on a second device replaces the first', async () => {
    const { app, news, alice, jar, token: firstToken } = await fedcmWorld()
    const other = await signIn(app, news, alice) // a second browser
    // The first device now holds an exclusion for News: FedCM does not bring it back silently.
    const refused = await assertionPost(app, jar, newsAssertion(alice.id).fields)
    expect(refused.status).toBe(403)
    // The second device signs in on News again through FedCM: its new token is the only one.
    const { req, fields } = newsAssertion(alice.id)
    const code = ((await (await assertionPost(app, other.jar, fields)).json()) as { token: string }).token
    expect((await exchangeCode(app, news.authkey, req, code)).status).toBe(200)
    const check = await frameApi(app, 'check', { authkey: news.authkey, token: firstToken })
    expect(((await check.json()) as { valid: boolean }).valid).toBe(false)
  })
})

describe('POST /fedcm/disconnect', () => {
  test("ends this device's sign-in on the site and keeps it from coming back silently", async () => {
    const { app, jar, news, alice, token } = await fedcmWorld()
    const res = await assertionPost(
      app,
      jar,
      { client_id: 'news', account_hint: alice.id },
      {},
      '/fedcm/disconnect',
    )
    expect(res.status).toBe(200)
    expect(res.headers.get('Access-Control-Allow-Origin')).toBe(NEWS_ORIGIN)
    expect(await res.json()).toEqual({ account_id: alice.id })
    const check = await frameApi(app, 'check', { authkey: news.authkey, token })
    expect(((await check.json()) as { valid: boolean }).valid).toBe(false)
    const silent = await app.request(
      authorizeUrl(authorizeRequest('news', `${NEWS_ORIGIN}/`), { prompt: 'none' }),
      {
        headers: { Cookie: cookieHeader(jar) },
      },
    )
    expect(fragmentOf(silent).get('error')).toBe('login_required')
  })

  test('refuses the same way as the assertion: wrong origin, no webidentity, no session', async () => {
    const { app, jar, alice } = await fedcmWorld()
    const fields = { client_id: 'news', account_hint: alice.id }
    expect((await assertionPost(app, jar, fields, { Origin: EVIL_ORIGIN }, '/fedcm/disconnect')).status).toBe(
      403,
    )
    expect((await assertionPost(app, jar, fields, { Origin: SHOP_ORIGIN }, '/fedcm/disconnect')).status).toBe(
      403,
    )
    expect(
      (await assertionPost(app, jar, fields, { 'Sec-Fetch-Dest': 'empty' }, '/fedcm/disconnect')).status,
    ).toBe(403)
    expect((await assertionPost(app, new Map(), fields, {}, '/fedcm/disconnect')).status).toBe(401)
  })
})

describe('Login Status API (Set-Login) on sign-in and sign-out', () => {
  test('a password sign-in says logged-in; a sign-out clears both cookies and says logged-out', async () => {
    const { app, news, alice } = await fedcmWorld()
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', `${NEWS_ORIGIN}/`)
    const login = await postLogin(app, jar, req, alice, { Origin: TEST_ISSUER })
    expect(login.headers.get('Set-Login')).toBe('logged-in')
    const code = fragmentOf(login).get('code') ?? ''
    const { access_token: token } = (await (await exchangeCode(app, news.authkey, req, code)).json()) as {
      access_token: string
    }
    const out = await frameApi(app, 'logout', { authkey: news.authkey, token }, { Cookie: cookieHeader(jar) })
    expect(out.headers.get('Set-Login')).toBe('logged-out')
    storeCookies(jar, out)
    expect(jar.has('__Host-passport_session')).toBe(false)
    expect(jar.has('__Host-passport_xs')).toBe(false)
  })

  test('a silent sign-in with the cookie of an expired session clears it and says logged-out', async () => {
    const { app, deps, jar } = await fedcmWorld()
    deps.clock.advance((deps.config.sessionTtlSeconds + 1) * 1000)
    const res = await app.request(
      authorizeUrl(authorizeRequest('news', `${NEWS_ORIGIN}/`), { prompt: 'none' }),
      {
        headers: { Cookie: cookieHeader(jar) },
      },
    )
    expect(fragmentOf(res).get('error')).toBe('login_required')
    expect(res.headers.get('Set-Login')).toBe('logged-out')
    storeCookies(jar, res)
    expect(jar.has('__Host-passport_session')).toBe(false)
  })
})

describe('site add --fedcm', () => {
  test('the CLI registers the opt-in and the policy links; list shows it', async () => {
    const { deps } = await fedcmWorld()
    const lines: string[] = []
    const io = { out: (line: string) => lines.push(line), readSecret: async () => '' }
    const code = await runCli(
      deps,
      [
        'site',
        'add',
        '--id',
        'blog',
        '--origin',
        'https://blog.example',
        '--fedcm',
        'true',
        '--privacy-policy-url',
        'https://blog.example/privacy',
        '--terms-of-service-url',
        'https://blog.example/terms',
      ],
      io,
    )
    expect(code).toBe(0)
    expect(await deps.store.sites.get('blog')).toMatchObject({
      fedcm: true,
      privacyPolicyUrl: 'https://blog.example/privacy',
      termsOfServiceUrl: 'https://blog.example/terms',
    })
    expect(await runCli(deps, ['site', 'list'], io)).toBe(0)
    expect(lines.find((l) => l.startsWith('blog\t'))).toContain('\tfedcm\t')
    expect(
      await runCli(deps, ['site', 'add', '--id', 'x', '--origin', 'https://x.example', '--fedcm', 'yes'], io),
    ).not.toBe(0)
  })

  test.each(['javascript:alert(1)', 'http://blog.example/privacy', 'https://u:p@blog.example/', 'not a url'])(
    'refuses the policy link %j',
    (url) => {
      expect(() =>
        validateSiteInput({ id: 'blog', origins: ['https://blog.example'], privacyPolicyUrl: url }),
      ).toThrow()
      expect(() =>
        validateSiteInput({ id: 'blog', origins: ['https://blog.example'], termsOfServiceUrl: url }),
      ).toThrow()
    },
  )
})
