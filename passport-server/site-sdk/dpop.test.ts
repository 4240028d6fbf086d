import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PassportServer } from '../src/server.ts'
import { createTestFrameKey, defaultFrameKey } from '../src/test-dpop.ts'
import { signIn } from '../src/test-flows.ts'
import { addSite, addUser, startTestServer, type TestDeps } from '../src/test-support.ts'
import { createSiteVerifier } from './verify.ts'

/**
 * Issue 13: a site that asks for DPoP-bound tokens (`--dpop-bound-tokens`) gets tokens that name
 * the frame's key (`cnf.jkt`), and its backend SDK accepts one only with a proof by that key for
 * the very request (`ath`, `htm`, `htu`, fresh `iat`, `jti` once).
 */
let server: PassportServer
let deps: TestDeps
let issuer: string
let shop: Awaited<ReturnType<typeof addSite>>
let news: Awaited<ReturnType<typeof addSite>>
let alice: Awaited<ReturnType<typeof addUser>>
const API = 'http://shop.localhost:8082/api/me'

beforeAll(async () => {
  ;({ server, deps, issuer } = await startTestServer())
  alice = await addUser(deps, 'alice')
  shop = await addSite(deps, { id: 'shop', dpopBoundTokens: true })
  news = await addSite(deps, { id: 'news' })
})
afterAll(() => server.close())

const verifier = () =>
  createSiteVerifier({
    issuer,
    siteId: 'shop',
    clientSecret: shop.clientSecret,
    revocationCacheMs: 0,
    now: () => deps.clock.now(),
  })
const proofFor = (
  token: string,
  over: { url?: string; method?: string; key?: typeof defaultFrameKey; iat?: number } = {},
) =>
  (over.key ?? defaultFrameKey).proof({
    method: over.method ?? 'GET',
    url: over.url ?? API,
    accessToken: token,
    iat: over.iat ?? Math.floor(deps.clock.now() / 1000),
  })

describe('DPoP-bound site tokens at the site backend (issue 13)', () => {
  test('the token names the frame key (cnf.jkt) and says token_type DPoP', async () => {
    const { token, body } = await signIn(server.app, shop, alice, new Map(), issuer)
    expect((body as unknown as { token_type: string }).token_type).toBe('DPoP')
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
    expect(claims.cnf).toEqual({ jkt: defaultFrameKey.jkt })
  })

  test('accepted with a proof by the key for this request', async () => {
    const { token } = await signIn(server.app, shop, alice, new Map(), issuer)
    const result = await verifier().verify(token, { method: 'GET', url: API, proof: proofFor(token) })
    expect(result).toMatchObject({ ok: true, user: { sub: alice.id } })
  })

  test.each([
    ['no proof (the token alone, as from a log)', () => ({ method: 'GET', url: API, proof: null })],
    ['no request context at all', () => undefined],
    [
      'a proof by another key',
      (t: string) => ({ method: 'GET', url: API, proof: proofFor(t, { key: createTestFrameKey() }) }),
    ],
    [
      'a proof for another URL',
      (t: string) => ({
        method: 'GET',
        url: API,
        proof: proofFor(t, { url: 'http://shop.localhost:8082/api/orders' }),
      }),
    ],
    [
      'a proof for another method',
      (t: string) => ({ method: 'GET', url: API, proof: proofFor(t, { method: 'POST' }) }),
    ],
    [
      'a stale proof',
      (t: string) => ({
        method: 'GET',
        url: API,
        proof: proofFor(t, { iat: Math.floor(deps.clock.now() / 1000) - 120 }),
      }),
    ],
    [
      'a proof over another token (ath)',
      (t: string) => ({ method: 'GET', url: API, proof: proofFor(`${t}x`) }),
    ],
  ])('refused with %s', async (_, context) => {
    const { token } = await signIn(server.app, shop, alice, new Map(), issuer)
    expect(await verifier().verify(token, context(token) as never)).toEqual({
      ok: false,
      reason: 'invalid_proof',
    })
  })

  test('a replayed proof is refused the second time', async () => {
    const { token } = await signIn(server.app, shop, alice, new Map(), issuer)
    const v = verifier()
    const context = { method: 'GET', url: API, proof: proofFor(token) }
    expect((await v.verify(token, context)).ok).toBe(true)
    expect(await v.verify(token, context)).toEqual({ ok: false, reason: 'invalid_proof' })
  })

  test('introspection names the key of a DPoP-bound token (cnf.jkt, token_type DPoP)', async () => {
    const { token } = await signIn(server.app, shop, alice, new Map(), issuer)
    const res = await server.app.request('/token/introspect', {
      method: 'POST',
      body: new URLSearchParams({ token }),
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Authorization: `Basic ${Buffer.from(`shop:${shop.clientSecret}`).toString('base64')}`,
      },
    })
    expect(await res.json()).toMatchObject({
      active: true,
      token_type: 'DPoP',
      cnf: { jkt: defaultFrameKey.jkt },
    })
  })

  test("a bearer site's tokens carry no cnf and need no proof", async () => {
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString())
    expect(claims.cnf).toBeUndefined()
    const v = createSiteVerifier({
      issuer,
      siteId: 'news',
      clientSecret: news.clientSecret,
      revocationCacheMs: 0,
      now: () => deps.clock.now(),
    })
    expect((await v.verify(token)).ok).toBe(true)
  })
})
