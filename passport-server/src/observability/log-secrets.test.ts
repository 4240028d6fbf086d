import { describe, expect, test } from 'vitest'
import {
  authorizeRequest,
  basicAuth,
  COMPACT_TOKEN,
  type CookieJar,
  cookieHeader,
  exchangeCode,
  formPost,
  fragmentOf,
  frameApi,
  openSignInPage,
  postLogin,
  signIn,
  silentSignIn,
  sitePost,
} from '../test-flows.ts'
import { createTestWorld } from '../test-support.ts'

/**
 * Issue 19: no log line ever holds a secret. Every flow that handles one runs here (sign-in,
 * wrong password, mint, silent sign-in, refresh by the frame and by a site backend,
 * introspection, status, device approval with its code, sign-out), and then every line is
 * searched for each secret the flows saw: passwords, site tokens, refresh credentials,
 * authorization codes, cookie values, client secrets, approval codes.
 */
describe('logs never hold a secret, and every line of a request carries its id', () => {
  test('the flows run; no password, token, refresh credential, code or cookie is in any line', async () => {
    const world = await createTestWorld()
    const { app, deps, news, shop, alice, bob } = world
    const secrets: string[] = [alice.password, bob.password, news.clientSecret, shop.clientSecret]
    const jarSecrets = (jar: CookieJar) => secrets.push(...jar.values())

    const first = await signIn(app, news, alice)
    secrets.push(first.token, first.body.refresh_token)
    jarSecrets(first.jar)
    const wrong = await postLogin(app, new Map(), authorizeRequest('news', news.site.redirectUris[0]), {
      username: 'alice',
      password: 'a-wrong-password-9',
    })
    expect(wrong.status).toBe(401)
    secrets.push('a-wrong-password-9')
    const shopSignIn = await silentSignIn(app, shop, first.jar)
    secrets.push(shopSignIn.token ?? '', fragmentOf(shopSignIn.res).get('code') ?? '')

    const refreshed = await frameApi(app, 'token', {
      grant_type: 'refresh_token',
      authkey: news.authkey,
      refresh_token: first.body.refresh_token,
    })
    const rotated = (await refreshed.json()) as { access_token: string; refresh_token: string }
    secrets.push(rotated.access_token, rotated.refresh_token)
    // A stolen copy of the used credential, presented without the frame's key: theft, logged.
    await frameApi(
      app,
      'token',
      { grant_type: 'refresh_token', authkey: news.authkey, refresh_token: first.body.refresh_token },
      {},
      { proof: null },
    )

    const auth = basicAuth('news', news.clientSecret)
    await sitePost(app, '/token/introspect', { token: rotated.access_token }, auth)
    await sitePost(app, '/token/status', { token: first.token }, auth)
    await sitePost(app, '/token/introspect', { token: first.token }, basicAuth('news', 'wrong-secret-1'))
    await sitePost(app, '/token/refresh-request', { token: rotated.access_token }, auth)

    // Bob: sign in on News, then ask from a new browser on Shop to sign in with that device.
    const trusted = await signIn(app, news, bob)
    secrets.push(trusted.token, trusted.body.refresh_token)
    jarSecrets(trusted.jar)
    const req = authorizeRequest('shop', shop.site.redirectUris[0])
    const jar: CookieJar = new Map()
    const csrf = await openSignInPage(app, jar, req)
    await formPost(app, '/login/device', jar, {
      csrf,
      client_id: req.clientId,
      redirect_uri: req.redirectUri,
      state: req.state,
      code_challenge: req.challenge,
      response_mode: 'fragment',
      username: 'bob',
    })
    const [pending] = await deps.store.approvals.listPending(bob.id, deps.clock.now())
    secrets.push(pending?.code ?? '')
    await frameApi(app, 'approval', {
      authkey: news.authkey,
      token: trusted.token,
      approval_id: pending?.id,
      code: pending?.code,
    })
    await app.request('/login/device/wait', { headers: { Cookie: cookieHeader(jar) } })
    const done = await formPost(app, '/login/device/complete', jar, { csrf })
    const code = fragmentOf(done).get('code') ?? ''
    const approved = await exchangeCode(app, shop.authkey, req, code)
    const approvedBody = (await approved.json()) as { access_token: string; refresh_token: string }
    secrets.push(code, approvedBody.access_token, approvedBody.refresh_token)
    jarSecrets(jar)
    await frameApi(app, 'logout', { authkey: news.authkey, token: trusted.token })

    const lines = deps.logs.map((l) => JSON.stringify({ event: l.event, ...l.fields }))
    const events = new Set(deps.logs.map((l) => l.event))
    // The flows really ran, and were logged.
    for (const event of ['session_created', 'authn_login_fail', 'authn_token_created', 'authn_token_reuse']) {
      expect(events).toContain(event)
    }
    const checked = secrets.filter((s) => s.length >= 8)
    expect(checked.length).toBeGreaterThan(20)
    for (const line of lines) {
      for (const secret of checked) expect(line).not.toContain(secret)
      expect(line).not.toMatch(COMPACT_TOKEN)
    }
    // Every line here was written while a request was handled: each names its request.
    for (const l of deps.logs) expect(l.fields.request_id, l.event).toEqual(expect.any(String))
  })

  test('X-Request-Id: a well-formed one is kept and echoed, anything else is replaced', async () => {
    const { app, deps } = await createTestWorld()
    const kept = await app.request('/token/introspect', {
      method: 'POST',
      headers: {
        'X-Request-Id': 'trace-0123456789abcdef',
        'Content-Type': 'application/x-www-form-urlencoded',
      },
      body: 'token=x',
    })
    expect(kept.headers.get('X-Request-Id')).toBe('trace-0123456789abcdef')
    const access = deps.logs.filter((l) => l.event === 'http_request')
    expect(access.at(-1)?.fields).toMatchObject({
      request_id: 'trace-0123456789abcdef',
      method: 'POST',
      route: '/token/introspect',
      status: 401,
    })
    for (const offered of [
      'short',
      'has space in it ok',
      'x'.repeat(65),
      'evil\\nline-1234',
      '<script>1234',
    ]) {
      const res = await app.request('/', { headers: { 'X-Request-Id': offered } })
      const echoed = res.headers.get('X-Request-Id') ?? ''
      expect(echoed).not.toBe(offered)
      expect(echoed).toMatch(/^[0-9a-f-]{36}$/)
    }
    const two = [await app.request('/'), await app.request('/')].map((r) => r.headers.get('X-Request-Id'))
    expect(two[0]).not.toBe(two[1])
  })

  test('a token handed to the log by mistake is redacted before it is written', async () => {
    const { app, deps, news, alice } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    const { withRequestId } = await import('./request-context.ts')
    withRequestId(deps.log)('oops', { detail: `bad token ${token} here` })
    const line = JSON.stringify(deps.logs.at(-1))
    expect(line).not.toContain(token)
    expect(line).toContain('[redacted]')
  })
})
