import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { createApp } from './app.ts'
import { resolveConfig } from './config.ts'
import { basicAuth, type CookieJar, cookieHeader, frameApi, signIn, sitePost } from './test-flows.ts'
import { addSite, createTestWorld, NEWS_ORIGIN, SHOP_ORIGIN, startTestServer } from './test-support.ts'

describe('every response', () => {
  test('carries nosniff, a restrictive CSP and no referrer by default', async () => {
    const { app } = await createTestWorld()
    const res = await app.request('/.well-known/jwks.json')
    expect(res.headers.get('X-Content-Type-Options')).toBe('nosniff')
    expect(res.headers.get('Content-Security-Policy')).toBe("default-src 'none'; frame-ancestors 'none'")
    expect(res.headers.get('Referrer-Policy')).toBe('no-referrer')
    expect(res.headers.get('Cross-Origin-Resource-Policy')).toBe('same-origin')
  })

  test('unknown paths are a JSON 404 not_found', async () => {
    const { app } = await createTestWorld()
    const res = await app.request('/nope')
    expect(res.status).toBe(404)
    expect(await res.json()).toEqual({ error: 'not_found' })
  })
})

describe('framing of passport pages (A7)', () => {
  test.each([
    [
      'the sign-in page',
      '/authorize?client_id=news&redirect_uri=http%3A%2F%2Fnews.localhost%3A8081%2F&response_type=code&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=s',
    ],
    ['the account page', '/account'],
    ['the device sign-in page', '/login/device'],
    ['an error page', '/authorize?client_id=nobody'],
    ['the JWKS', '/.well-known/jwks.json'],
    ['an unknown path', '/nothing-here'],
  ])('A7: %s may be framed by nobody (frame-ancestors none)', async (_, path) => {
    const { app } = await createTestWorld()
    const res = await app.request(path)
    expect(res.headers.get('Content-Security-Policy')).toContain("frame-ancestors 'none'")
  })
})

describe('bad input (I1, I2)', () => {
  test('I1: an oversized body is 413 payload_too_large before any handler reads it', async () => {
    const { app, news } = await createTestWorld()
    const res = await frameApi(app, 'token', {
      grant_type: 'session',
      authkey: news.authkey,
      pad: 'x'.repeat(20_000),
    })
    expect(res.status).toBe(413)
    expect(await res.json()).toMatchObject({ error: 'payload_too_large' })
  })

  test('I1: a chunked oversized body without Content-Length is also 413', async () => {
    const { app } = await createTestWorld()
    const chunk = new TextEncoder().encode('x'.repeat(8192))
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 4) controller.enqueue(chunk)
        else controller.close()
      },
    })
    const res = await app.request('/api/frame/token', {
      method: 'POST',
      body,
      headers: {
        'Content-Type': 'application/json',
        Origin: 'http://passport.localhost:8080',
        'Sec-Fetch-Site': 'same-origin',
      },
      duplex: 'half', // Node's fetch needs it for stream bodies
    } as RequestInit & { duplex: 'half' })
    expect(res.status).toBe(413)
  })

  /** Over a real socket, where @hono/node-server hands the app Node's request (issue 4). */
  test('I1: over HTTP: a declared or chunked oversized body is 413, a body within the limit is read', async () => {
    const { server, deps, port } = await startTestServer()
    try {
      const site = await addSite(deps, { id: 'news' })
      const send = (body: string, headers: Record<string, string | number>) =>
        new Promise<{ status: number; text: string }>((resolve, reject) => {
          const req = http.request(
            { host: '127.0.0.1', port, path: '/token/introspect', method: 'POST', headers },
            (res) => {
              let text = ''
              res.setEncoding('utf8')
              res.on('data', (c: string) => {
                text += c
              })
              res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
            },
          )
          req.on('error', reject)
          req.end(body)
        })
      const form = {
        'Content-Type': 'application/x-www-form-urlencoded',
        Authorization: basicAuth('news', site.clientSecret),
      }
      const big = `token=${'x'.repeat(deps.config.maxBodyBytes)}`
      const declared = await send(big, { ...form, 'Content-Length': Buffer.byteLength(big) })
      expect(declared.status).toBe(413)
      expect(JSON.parse(declared.text)).toMatchObject({ error: 'payload_too_large' })
      expect((await send(big, { ...form, 'Transfer-Encoding': 'chunked' })).status).toBe(413)
      const small = 'token=a.b.c'
      expect(await send(small, { ...form, 'Content-Length': Buffer.byteLength(small) })).toEqual({
        status: 200,
        text: '{"active":false}',
      })
      expect(await send(small, { ...form, 'Transfer-Encoding': 'chunked' })).toEqual({
        status: 200,
        text: '{"active":false}',
      })
    } finally {
      await server.close()
    }
  })

  test.each([
    ['truncated', '{"a":'],
    ['trailing garbage', '{"a":1}x'],
    ['NaN', '{"a":NaN}'],
    ['a scalar', '"token"'],
    ['null', 'null'],
  ])('I2: malformed JSON (%s) is 400 invalid_request', async (_, body) => {
    const { app } = await createTestWorld()
    const res = await frameApi(app, 'check', body)
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: 'invalid_request' })
  })

  test('I2: a __proto__ key cannot pollute prototypes or pass for a field', async () => {
    const { app } = await createTestWorld()
    const res = await frameApi(app, 'check', '{"__proto__":{"authkey":"x","token":"y"}}')
    expect(res.status).toBe(400)
    expect(({} as Record<string, unknown>).authkey).toBeUndefined()
  })
})

describe('fail closed when the store is down (J2)', () => {
  test('every endpoint that needs the store answers 503 temporarily_unavailable with Retry-After', async () => {
    const world = await createTestWorld()
    const { app, news, alice, deps } = world
    const jar: CookieJar = new Map()
    const { token } = await signIn(app, news, alice, jar)
    await deps.store.close()
    const answers = [
      await frameApi(app, 'check', { authkey: news.authkey, token }),
      // With the passport session's cookie: the session must be read to answer.
      await frameApi(
        app,
        'token',
        { grant_type: 'session', authkey: news.authkey },
        { Cookie: cookieHeader(jar) },
      ),
      await sitePost(app, '/token/introspect', { token }, basicAuth('news', news.clientSecret)),
      await app.request('/authorize?client_id=news'),
    ]
    for (const res of answers) {
      expect(res.status).toBe(503)
      expect(res.headers.get('Retry-After')).toBe('1')
      expect(await res.json()).toEqual({ error: 'temporarily_unavailable' })
    }
    expect(deps.logs.map((l) => l.event)).toContain('store_unavailable')
  })
})

describe('frame document and scripts', () => {
  test('the frame may be embedded only by its own site (CSP frame-ancestors, A6)', async () => {
    const { app } = await createTestWorld()
    const res = await app.request('/frame/news')
    expect(res.status).toBe(200)
    const csp = res.headers.get('Content-Security-Policy') ?? ''
    expect(csp).toContain(`frame-ancestors ${NEWS_ORIGIN};`)
    expect(csp).toContain("connect-src 'self' ws://passport.localhost:8080;")
    expect(csp).not.toContain(SHOP_ORIGIN)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    expect(await res.text()).toContain('"id":"news"')
  })

  test("a FedCM site's frame fetches its shared state with frame.js; other frames do not", async () => {
    const { app, deps } = await createTestWorld()
    await addSite(deps, { id: 'shop', origins: [SHOP_ORIGIN], fedcm: true })
    const preload = '<link rel="modulepreload" href="/frame-shared.js">'
    expect(await (await app.request('/frame/shop')).text()).toContain(preload)
    expect(await (await app.request('/frame/news')).text()).not.toContain(preload)
  })

  test('an unknown site has no frame', async () => {
    const { app } = await createTestWorld()
    expect((await app.request('/frame/nope')).status).toBe(404)
    expect((await app.request(`/frame/${'x'.repeat(80)}`)).status).toBe(404)
  })

  test('the SDK is public cross-origin code; the frame script is not', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-assets-'))
    for (const f of [
      'passport.js',
      'passport.mjs',
      'passport-extras.mjs',
      'frame.js',
      'frame-approval.js',
      'frame-continue.js',
      'frame-session.js',
    ])
      fs.writeFileSync(path.join(dir, f), `// ${f}`)
    const world = await createTestWorld()
    const app = createApp({ ...world.deps, config: resolveConfig({ ...world.deps.config, assetsDir: dir }) })
    const sdk = await app.request('/passport.js')
    expect(sdk.status).toBe(200)
    expect(sdk.headers.get('Content-Type')).toContain('text/javascript')
    expect(sdk.headers.get('Access-Control-Allow-Origin')).toBe('*')
    expect(sdk.headers.get('Cross-Origin-Resource-Policy')).toBe('cross-origin')
    // Fetched by the script-tag SDK from the site's pages (a module script: CORS).
    const extras = await app.request('/passport-extras.mjs')
    expect(await extras.text()).toBe('// passport-extras.mjs')
    expect(extras.headers.get('Access-Control-Allow-Origin')).toBe('*')
    expect(extras.headers.get('Cross-Origin-Resource-Policy')).toBe('cross-origin')
    const frame = await app.request('/frame.js')
    expect(await frame.text()).toBe('// frame.js')
    expect(frame.headers.get('Access-Control-Allow-Origin')).toBeNull()
    expect(frame.headers.get('Cross-Origin-Resource-Policy')).toBe('same-origin')
    const approval = await app.request('/frame-approval.js')
    expect(await approval.text()).toBe('// frame-approval.js')
    expect(approval.headers.get('Access-Control-Allow-Origin')).toBeNull()
    const button = await app.request('/frame-continue.js')
    expect(await button.text()).toBe('// frame-continue.js')
    expect(button.headers.get('Access-Control-Allow-Origin')).toBeNull()
    expect(button.headers.get('Cross-Origin-Resource-Policy')).toBe('same-origin')
    const session = await app.request('/frame-session.js')
    expect(await session.text()).toBe('// frame-session.js')
    expect(session.headers.get('Access-Control-Allow-Origin')).toBeNull()
    expect(session.headers.get('Cross-Origin-Resource-Policy')).toBe('same-origin')
  })

  test('missing built files are a clear 503, not a crash', async () => {
    const world = await createTestWorld()
    const config = resolveConfig({ ...world.deps.config, assetsDir: '/nonexistent-passport-assets' })
    const res = await createApp({ ...world.deps, config }).request('/passport.js')
    expect(res.status).toBe(503)
    expect(await res.json()).toMatchObject({ error: 'temporarily_unavailable' })
  })
})

describe('JWKS', () => {
  test('publishes public Ed25519 signing keys and P-256 encryption keys only, with kid and alg', async () => {
    const { app } = await createTestWorld()
    const body = (await (await app.request('/.well-known/jwks.json')).json()) as {
      keys: Record<string, string>[]
    }
    const signing = body.keys.filter((k) => k.use === 'sig')
    const encryption = body.keys.filter((k) => k.use === 'enc')
    expect(signing.length).toBeGreaterThan(0)
    // Issue 16: the key browsers wrap one-time content keys to (sealed payloads).
    expect(encryption.length).toBeGreaterThan(0)
    expect(signing.length + encryption.length).toBe(body.keys.length)
    for (const key of signing) expect(key).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' })
    for (const key of encryption)
      expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ECDH-ES+A256KW' })
    for (const key of body.keys) {
      expect(key.kid).toBeTruthy()
      expect(key.d).toBeUndefined()
    }
  })
})
