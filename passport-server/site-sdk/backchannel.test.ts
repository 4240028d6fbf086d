import { SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PassportServer } from '../src/server.ts'
import { startBackchannelLogout } from '../src/services/backchannel-logout.ts'
import { frameApi, signIn, silentSignIn } from '../src/test-flows.ts'
import { addSite, addUser, startTestServer, type TestDeps } from '../src/test-support.ts'
import { BACKCHANNEL_LOGOUT_EVENT, signLogoutToken } from '../src/tokens/logout-token.ts'
import { createSiteVerifier } from './verify.ts'

let server: PassportServer
let deps: TestDeps
let issuer: string
let news: Awaited<ReturnType<typeof addSite>>
let shop: Awaited<ReturnType<typeof addSite>>
let alice: Awaited<ReturnType<typeof addUser>>

beforeAll(async () => {
  ;({ server, deps, issuer } = await startTestServer())
  alice = await addUser(deps, 'alice')
  news = await addSite(deps, { id: 'news', backchannelLogoutUri: 'http://127.0.0.1:1/news-logout' })
  shop = await addSite(deps, { id: 'shop', backchannelLogoutUri: 'http://127.0.0.1:1/shop-logout' })
})
afterAll(() => server.close())

const verifierFor = (siteId: string, secret: string) =>
  createSiteVerifier({
    issuer,
    siteId,
    clientSecret: secret,
    revocationCacheMs: 0,
    now: () => deps.clock.now(),
  })

const logoutToken = (over: Record<string, unknown> = {}, header: Record<string, unknown> = {}) => {
  const iat = Math.floor(deps.clock.now() / 1000)
  return new SignJWT({
    sid: 'sid-1',
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    iss: issuer,
    aud: 'news',
    sub: alice.id,
    iat,
    exp: iat + 120,
    jti: crypto.randomUUID(),
    ...over,
  })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'logout+jwt', kid: deps.keys.current.kid, ...header })
    .sign(deps.keys.current.privateKey)
}

describe('back-channel logout token, as a site backend verifies it', () => {
  test('a genuine token is accepted once, and that session is refused from then on', async () => {
    const verifier = verifierFor('news', news.clientSecret)
    const { token } = await signIn(server.app, news, alice, new Map(), issuer)
    expect((await verifier.verify(token)).ok).toBe(true)
    const sid = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()).sid as string
    deps.clock.advance(1000) // the session ends a second after the token was minted
    const logout = await signLogoutToken(deps.keys, {
      issuer,
      siteId: 'news',
      userId: alice.id,
      sessionId: sid,
      reason: 'signed_out',
      endedAtMs: deps.clock.now(),
      nowMs: deps.clock.now(),
    })
    expect(await verifier.verifyLogoutToken(logout)).toEqual({
      ok: true,
      sub: alice.id,
      sid,
      reason: 'signed_out',
    })
    expect(await verifier.verify(token)).toEqual({ ok: false, reason: 'signed_out' })
    expect(await verifier.verifyLogoutToken(logout)).toEqual({ ok: false, error: 'replayed' })
  })

  test.each([
    ['for another site (aud)', { aud: 'shop' }, {}],
    ['with a nonce', { nonce: 'n' }, {}],
    ['without the logout event', { events: {} }, {}],
    ['with the event as a non-object', { events: { [BACKCHANNEL_LOGOUT_EVENT]: 'yes' } }, {}],
    ['without sid', { sid: undefined }, {}],
    ['from another issuer', { iss: 'http://evil.localhost:8083' }, {}],
    ['issued 10 minutes ago', { iat: Math.floor(Date.now() / 1000) - 600 }, {}],
    ['typed as an access token', {}, { typ: 'at+jwt' }],
  ])('a token %s is refused', async (_, over, header) => {
    const verifier = verifierFor('news', news.clientSecret)
    expect(await verifier.verifyLogoutToken(await logoutToken(over, header))).toEqual({
      ok: false,
      error: 'invalid',
    })
  })

  test('a token with a broken signature is refused', async () => {
    const verifier = verifierFor('news', news.clientSecret)
    const good = await logoutToken()
    const [h, p, sig] = good.split('.')
    const flipped = `${h}.${p}.${sig?.startsWith('A') ? 'B' : 'A'}${sig?.slice(1)}`
    expect(await verifier.verifyLogoutToken(flipped)).toEqual({ ok: false, error: 'invalid' })
    expect(await verifier.verifyLogoutToken('')).toEqual({ ok: false, error: 'invalid' })
  })
})

describe("a site-scoped end (site_access_ended) refuses the session's earlier tokens only", () => {
  const sidOf = (t: string) => JSON.parse(Buffer.from(t.split('.')[1] ?? '', 'base64url').toString()).sid

  test.each(['revoked', 'replaced'])(
    'after a %s logout token, a later sign-in of the same session on the site is accepted',
    async (reason) => {
      const verifier = verifierFor('news', news.clientSecret)
      const jar = new Map<string, string>()
      const before = await signIn(server.app, news, alice, jar, issuer)
      const sid = sidOf(before.token)
      deps.clock.advance(1000)
      // The site revokes this device (RFC 7009); the passport tells the site's backend.
      const auth = `Basic ${Buffer.from(`news:${news.clientSecret}`).toString('base64')}`
      await fetch(`${issuer}/token/revoke`, {
        method: 'POST',
        headers: { Authorization: auth, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: before.token }),
      })
      const endedAt = deps.clock.now()
      // Delivered on a retry, 30 s later: its iat is not when the access ended.
      deps.clock.advance(30_000)
      const logout = await signLogoutToken(deps.keys, {
        issuer,
        siteId: 'news',
        userId: alice.id,
        sessionId: sid,
        reason,
        endedAtMs: endedAt,
        nowMs: deps.clock.now(),
      })
      deps.clock.advance(-29_000) // the user signed in again 1 s after the end, before delivery
      const after = await signIn(server.app, news, alice, jar, issuer)
      expect(sidOf(after.token)).toBe(sid) // the same passport session, a new token
      deps.clock.advance(29_000)
      expect(await verifier.verifyLogoutToken(logout)).toMatchObject({ ok: true, sid, reason })
      expect(await verifier.verify(before.token)).toEqual({ ok: false, reason })
      expect(await verifier.verify(after.token)).toMatchObject({ ok: true, user: { sid } })
    },
  )

  test('a token minted in the same second as the end is asked about, not refused or trusted blindly', async () => {
    const verifier = verifierFor('news', news.clientSecret)
    const jar = new Map<string, string>()
    const before = await signIn(server.app, news, alice, jar, issuer)
    const sid = sidOf(before.token)
    const logout = await signLogoutToken(deps.keys, {
      issuer,
      siteId: 'news',
      userId: alice.id,
      sessionId: sid,
      reason: 'revoked',
      endedAtMs: deps.clock.now(),
      nowMs: deps.clock.now(),
    })
    expect((await verifier.verifyLogoutToken(logout)).ok).toBe(true)
    // The passport still holds `before` live (the end was only announced here): the SDK asks.
    expect(await verifier.verify(before.token)).toMatchObject({ ok: true })
  })
})

describe('back-channel logout delivery', () => {
  test('a sign-out posts a logout token to every site the session used, retrying a failure', async () => {
    const calls: { url: string; token: string }[] = []
    const failedOnce = new Set<string>()
    const sidOf = (t: string) => JSON.parse(Buffer.from(t.split('.')[1] ?? '', 'base64url').toString()).sid
    const stop = startBackchannelLogout(deps, {
      retryDelaysMs: [0, 0],
      setTimer: (fn) => setTimeout(fn, 0),
      fetchImpl: async (url, init) => {
        const token = new URLSearchParams(String(init?.body)).get('logout_token') ?? ''
        calls.push({ url: String(url), token })
        // News answers 503 the first time for each session: the retry must come.
        const key = sidOf(token)
        if (String(url).includes('news') && !failedOnce.has(key)) {
          failedOnce.add(key)
          return new Response(null, { status: 503 })
        }
        return new Response(null, { status: 200 })
      },
    })
    try {
      const { jar, token } = await signIn(server.app, news, alice, new Map(), issuer)
      await silentSignIn(server.app, shop, jar, issuer)
      await frameApi(server.app, 'logout', { authkey: news.authkey, token }, { Origin: issuer })
      await new Promise((r) => setTimeout(r, 100))
      // Only this session's sign-out (this sign-in also replaced an earlier test's session on News).
      const mine = calls.filter((c) => sidOf(c.token) === sidOf(token))
      expect(mine.map((c) => c.url).sort()).toEqual([
        'http://127.0.0.1:1/news-logout',
        'http://127.0.0.1:1/news-logout',
        'http://127.0.0.1:1/shop-logout',
      ])
      const shopCall = mine.find((c) => c.url.includes('shop'))
      expect(await verifierFor('shop', shop.clientSecret).verifyLogoutToken(shopCall?.token)).toMatchObject({
        ok: true,
        sub: alice.id,
      })
    } finally {
      stop()
    }
  })

  test("a site's own access ending (newest wins) goes to that site only", async () => {
    const calls: string[] = []
    const stop = startBackchannelLogout(deps, {
      fetchImpl: async (url) => {
        calls.push(String(url))
        return new Response(null, { status: 200 })
      },
    })
    try {
      const first = await signIn(server.app, news, alice, new Map(), issuer)
      await silentSignIn(server.app, shop, first.jar, issuer)
      calls.length = 0
      await signIn(server.app, news, alice, new Map(), issuer)
      await new Promise((r) => setTimeout(r, 100))
      expect(calls).toEqual(['http://127.0.0.1:1/news-logout'])
    } finally {
      stop()
    }
  })
})
