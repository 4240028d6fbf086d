import * as oidc from 'openid-client'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { CSRF_COOKIE } from '../middleware/csrf.ts'
import type { PassportServer } from '../server.ts'
import { APPROVAL_TTL_MS, BLOCK_AFTER_DENY_MS } from '../services/device-approval.ts'
import { basicAuth, cookieHeader, formPost, frameApi, signIn, sitePost } from '../test-flows.ts'
import { ALL_LOGIN_MODES, addSite, addUser, startTestServer, type TestDeps } from '../test-support.ts'
import { CIBA_GRANT_TYPE } from './ciba.ts'
import { APPROVAL_COOKIE } from './device-sign-in.ts'

/**
 * CIBA poll mode against a real passport over HTTP: openid-client starts the request and polls
 * for the grant; alice approves on a signed-in device by typing the code, as in the browser.
 */

let server: PassportServer
let deps: TestDeps
let issuer: string
let news: Awaited<ReturnType<typeof addSite>>
let shop: Awaited<ReturnType<typeof addSite>>
let alice: Awaited<ReturnType<typeof addUser>>

beforeAll(async () => {
  const started = await startTestServer()
  ;({ server, issuer, deps } = started)
  alice = await addUser(deps, 'alice')
  await addUser(deps, 'bob')
  news = await addSite(deps, { id: 'news', name: 'News', loginModes: ALL_LOGIN_MODES })
  shop = await addSite(deps, { id: 'shop', name: 'Shop', loginModes: ALL_LOGIN_MODES })
})
afterAll(() => server.close())

const configFor = (site: typeof news) =>
  oidc.discovery(
    new URL(issuer),
    site.site.id,
    { id_token_signed_response_alg: 'EdDSA' },
    oidc.ClientSecretBasic(site.clientSecret),
    { execute: [oidc.allowInsecureRequests] },
  )

/** Alice's signed-in device (on News) answers the request whose code the client shows. */
async function answerOnTrustedDevice(answer: { code: string } | { deny: true }) {
  const trusted = await signIn(server.app, news, alice, new Map(), issuer)
  const [pending] = await deps.store.approvals.listPending(alice.id, deps.clock.now())
  const res = await frameApi(
    server.app,
    'approval',
    { authkey: news.authkey, token: trusted.token, approval_id: pending?.id, ...answer },
    { Origin: issuer },
  )
  return (await res.json()) as { outcome: string }
}

/** Starts a request for Shop's backend over raw HTTP. */
async function startRequest(form: Record<string, string>, site = shop) {
  const res = await sitePost(server.app, '/bc-authorize', form, basicAuth(site.site.id, site.clientSecret))
  return { res, body: (await res.json()) as Record<string, string | number> }
}

const poll = (authReqId: string, site = shop) =>
  sitePost(
    server.app,
    '/token',
    { grant_type: CIBA_GRANT_TYPE, auth_req_id: authReqId },
    basicAuth(site.site.id, site.clientSecret),
  )

/** Lets alice's requests, her request window and any block after a deny lapse: each test starts afresh. */
const clearPending = () => deps.clock.advance(BLOCK_AFTER_DENY_MS)

describe('CIBA (poll mode)', () => {
  test('discovery advertises the backchannel endpoint, poll mode only', async () => {
    const meta = (await configFor(shop)).serverMetadata()
    expect(meta.backchannel_authentication_endpoint).toBe(`${issuer}/bc-authorize`)
    expect(meta.backchannel_token_delivery_modes_supported).toEqual(['poll'])
    expect(meta.grant_types_supported).toContain(CIBA_GRANT_TYPE)
  })

  test('openid-client: start, approve by typing the code on the signed-in device, poll the tokens', async () => {
    clearPending()
    const config = await configFor(shop)
    const started = await oidc.initiateBackchannelAuthentication(config, {
      scope: 'openid',
      login_hint: 'alice',
      binding_message: 'Order 1234',
    })
    expect(started.expires_in).toBe(120)
    const code = String(started.binding_code)
    expect(code).toMatch(/^\d\d$/)
    const [pending] = await deps.store.approvals.listPending(alice.id, deps.clock.now())
    expect(pending?.code).toBe(code)
    expect(await answerOnTrustedDevice({ code })).toEqual({ outcome: 'approved' })

    const tokens = await oidc.pollBackchannelAuthenticationGrant(config, started)
    expect(tokens.token_type).toBe('bearer')
    expect(tokens.claims()).toMatchObject({ iss: issuer, sub: alice.id, aud: 'shop' })
    // The access token is an ordinary Shop token: introspection says whose.
    const introspected = await oidc.tokenIntrospection(config, tokens.access_token)
    expect(introspected).toMatchObject({ active: true, sub: alice.id, aud: 'shop' })
    // The ID token is not an access token anywhere.
    expect(await oidc.tokenIntrospection(config, tokens.id_token as string)).toEqual({ active: false })
    // The client's sign-in is a device of alice's, with the method it used.
    const sessions = await deps.store.sessions.listByUser(alice.id)
    expect(sessions.some((s) => s.method === 'ciba')).toBe(true)
    // Used once: polling again is invalid_grant.
    const again = await poll(started.auth_req_id)
    expect(await again.json()).toEqual({ error: 'invalid_grant' })
  })

  test('H6: pending, then too fast, then denied; nothing is minted', async () => {
    clearPending()
    const { body } = await startRequest({ scope: 'openid', login_hint: 'alice' })
    const authReqId = String(body.auth_req_id)
    expect(await (await poll(authReqId)).json()).toEqual({ error: 'authorization_pending' })
    expect(await (await poll(authReqId)).json()).toEqual({ error: 'slow_down' })
    expect(await answerOnTrustedDevice({ deny: true })).toEqual({ outcome: 'denied' })
    const denied = await poll(authReqId)
    expect(denied.status).toBe(403)
    expect(await denied.json()).toEqual({ error: 'access_denied' })
  })

  test('a wrong code typed on the device ends the request: the poll is access_denied', async () => {
    clearPending()
    const { body } = await startRequest({ scope: 'openid', login_hint: 'alice' })
    const wrong = String((Number(body.binding_code) + 1) % 100).padStart(2, '0')
    expect(await answerOnTrustedDevice({ code: wrong })).toEqual({ outcome: 'mismatch' })
    expect(await (await poll(String(body.auth_req_id))).json()).toEqual({ error: 'access_denied' })
  })

  test('after "Deny, I did not ask for this" the user takes no new request for an hour', async () => {
    clearPending()
    await startRequest({ scope: 'openid', login_hint: 'alice' })
    expect(await answerOnTrustedDevice({ deny: true })).toEqual({ outcome: 'denied' })
    const again = await startRequest({ scope: 'openid', login_hint: 'alice' })
    expect(again.res.status).toBe(403)
    expect(again.body).toEqual({ error: 'access_denied' })
    expect(await deps.store.approvals.listPending(alice.id, deps.clock.now())).toEqual([])
  })

  test('a client whose site lacks the `ciba` login mode is unauthorized_client, opening no request', async () => {
    clearPending()
    const kiosk = await addSite(deps, { id: 'kiosk', name: 'Kiosk', loginModes: ['password', 'device'] })
    const { res, body } = await startRequest({ scope: 'openid', login_hint: 'alice' }, kiosk)
    expect(res.status).toBe(400)
    expect(body.error).toBe('unauthorized_client')
    expect(await deps.store.approvals.listPending(alice.id, deps.clock.now())).toEqual([])
  })

  test('expiry: expired_token', async () => {
    clearPending()
    const { body } = await startRequest({ scope: 'openid', login_hint: 'alice' })
    deps.clock.advance(APPROVAL_TTL_MS)
    expect(await (await poll(String(body.auth_req_id))).json()).toEqual({ error: 'expired_token' })
  })

  test("H6: another client cannot poll Shop's request, and an unknown id is invalid_grant", async () => {
    clearPending()
    const { body } = await startRequest({ scope: 'openid', login_hint: 'alice' })
    expect(await (await poll(String(body.auth_req_id), news)).json()).toEqual({ error: 'invalid_grant' })
    expect(await (await poll('x'.repeat(43))).json()).toEqual({ error: 'invalid_grant' })
  })

  test.each<[string, Record<string, string>, string]>([
    ['no openid scope', { scope: 'profile', login_hint: 'alice' }, 'invalid_scope'],
    ['no login_hint', { scope: 'openid' }, 'invalid_request'],
    ['an id_token_hint', { scope: 'openid', id_token_hint: 'x.y.z' }, 'invalid_request'],
    ['an unknown user', { scope: 'openid', login_hint: 'mallory' }, 'unknown_user_id'],
    [
      'a long binding message',
      { scope: 'openid', login_hint: 'alice', binding_message: 'm'.repeat(65) },
      'invalid_binding_message',
    ],
    [
      'a control character in the binding message',
      { scope: 'openid', login_hint: 'alice', binding_message: 'a\u0007b' },
      'invalid_binding_message',
    ],
    [
      'markup in the binding message',
      { scope: 'openid', login_hint: 'alice', binding_message: '<b>hi</b>' },
      'invalid_binding_message',
    ],
    ...[
      ['U+202E right-to-left override', '\u202e'],
      ['U+202A left-to-right embedding', '\u202a'],
      ['U+2066 left-to-right isolate', '\u2066'],
      ['U+2069 pop directional isolate', '\u2069'],
      ['U+200B zero-width space', '\u200b'],
      ['U+200D zero-width joiner', '\u200d'],
      ['U+FEFF zero-width no-break space', '\ufeff'],
      ['U+2028 line separator', '\u2028'],
    ].map(
      ([name, char]) =>
        [
          `a ${name} in the binding message (spoofed prompt text)`,
          { scope: 'openid', login_hint: 'alice', binding_message: `Order ${char}4321` },
          'invalid_binding_message',
        ] as [string, Record<string, string>, string],
    ),
  ])('refuses %s, opening no request', async (_name, form, error) => {
    clearPending()
    const { res, body } = await startRequest(form)
    expect(res.status).toBe(400)
    expect(body.error).toBe(error)
    expect(await deps.store.approvals.listPending(alice.id, deps.clock.now())).toEqual([])
  })

  test("an approved auth_req_id planted as a browser's approval cookie buys no passport session", async () => {
    clearPending()
    const { body } = await startRequest({ scope: 'openid', login_hint: 'alice' })
    expect(await answerOnTrustedDevice({ code: String(body.binding_code) })).toEqual({ outcome: 'approved' })
    const jar = new Map([[APPROVAL_COOKIE, String(body.auth_req_id)]])
    const page = await server.app.request('/login/device', { headers: { Cookie: cookieHeader(jar) } })
    expect(page.status).toBe(404)
    const csrf = 'c'.repeat(43)
    jar.set(CSRF_COOKIE, csrf)
    const done = await formPost(server.app, '/login/device/complete', jar, { csrf }, { Origin: issuer })
    expect(done.status).toBe(404)
    expect(jar.has('__Host-passport_session')).toBe(false)
    // The client can still collect its own grant.
    expect((await poll(String(body.auth_req_id))).status).toBe(200)
  })

  test('client credentials are required on both endpoints', async () => {
    const start = await sitePost(
      server.app,
      '/bc-authorize',
      { scope: 'openid', login_hint: 'alice' },
      basicAuth('shop', 'wrong'),
    )
    expect(start.status).toBe(401)
    const tokenRes = await sitePost(server.app, '/token', { grant_type: CIBA_GRANT_TYPE, auth_req_id: 'x' })
    expect(tokenRes.status).toBe(401)
    const other = await sitePost(
      server.app,
      '/token',
      { grant_type: 'client_credentials' },
      basicAuth(shop.site.id, shop.clientSecret),
    )
    expect(await other.json()).toEqual({ error: 'unsupported_grant_type' })
  })
})
