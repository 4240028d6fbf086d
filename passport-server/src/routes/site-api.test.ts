import type { Hono } from 'hono'
import { generateKeyPair } from 'jose'
import { afterEach, describe, expect, test, vi } from 'vitest'
import { basicAuth, frameApi, signIn, sitePost } from '../test-flows.ts'
import { createTestWorld } from '../test-support.ts'
import { signSiteToken } from '../tokens/site-token.ts'
import { DEAD_ANSWERS_PER_SITE_PER_MINUTE } from './site-api.ts'

describe('POST /token/introspect (RFC 7662)', () => {
  test('E4: a live token of the calling site: active with its claims, no-store, no CORS', async () => {
    const { app, news, alice, deps } = await createTestWorld()
    const { token, body } = await signIn(app, news, alice)
    const res = await sitePost(app, '/token/introspect', { token }, basicAuth('news', news.clientSecret))
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    expect(res.headers.get('Content-Type')).toMatch(/^application\/json/)
    expect(res.headers.get('Access-Control-Allow-Origin')).toBeNull()
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

  test('E3: a replaced, signed-out or expired token gets only {active:false}', async () => {
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

describe('token scanning (E2)', () => {
  test('E2: a credential that checked too many dead tokens gets 429 rate_limited with Retry-After, other sites do not', async () => {
    const { app, news, shop, alice, deps } = await createTestWorld()
    const live = await signIn(app, news, alice)
    const auth = basicAuth('news', news.clientSecret)
    const scan = (path: string, i: number) => sitePost(app, path, { token: `x${i}.y.z` }, auth)
    for (let i = 0; i < DEAD_ANSWERS_PER_SITE_PER_MINUTE; i++) {
      const res = await scan(i % 2 ? '/token/status' : '/token/introspect', i)
      expect(res.status).toBe(200)
    }
    for (const path of ['/token/introspect', '/token/status']) {
      const refused = await sitePost(app, path, { token: live.token }, auth)
      expect(refused.status).toBe(429)
      expect(await refused.json()).toMatchObject({ error: 'rate_limited' })
      expect(Number(refused.headers.get('Retry-After'))).toBeGreaterThan(0)
    }
    expect(deps.logs.map((l) => l.event)).toContain('excess_rate_limit_exceeded')
    // Another site's credential is counted apart.
    const shopAuth = basicAuth('shop', shop.clientSecret)
    expect((await sitePost(app, '/token/introspect', { token: live.token }, shopAuth)).status).toBe(200)
    // After the window the site is answered again.
    deps.clock.advance(60_000)
    expect(
      await (await sitePost(app, '/token/introspect', { token: live.token }, auth)).json(),
    ).toMatchObject({
      active: true,
    })
  })

  test('E2: live tokens are never limited (a busy site introspecting its users)', async () => {
    const { app, news, alice } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    const auth = basicAuth('news', news.clientSecret)
    for (let i = 0; i < DEAD_ANSWERS_PER_SITE_PER_MINUTE + 5; i++) {
      expect((await sitePost(app, '/token/introspect', { token }, auth)).status).toBe(200)
    }
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

/**
 * Introspection recognises a token it minted by its bytes (the SHA-256 kept on the token's row)
 * instead of verifying its Ed25519 signature on every request; anything that is not exactly a
 * token we minted must still get only `{active:false}`.
 * @see issue 4 (introspection ≥ 2× node-oidc-provider)
 */
describe('POST /token/introspect without a signature check per request', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  const introspect = async (app: Hono, token: string, secret: string) =>
    (await (await sitePost(app, '/token/introspect', { token }, basicAuth('news', secret))).json()) as {
      active: boolean
      sub?: string
    }
  const attackerSignature = async (signingInput: string) => {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const sig = await crypto.subtle.sign('Ed25519', privateKey, new TextEncoder().encode(signingInput))
    return Buffer.from(sig).toString('base64url')
  }

  test('answers a live token it minted without verifying a signature', async () => {
    const { app, news, alice } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    const verify = vi.spyOn(crypto.subtle, 'verify')
    expect(await introspect(app, token, news.clientSecret)).toMatchObject({ active: true, sub: alice.id })
    expect(verify).not.toHaveBeenCalled()
  })

  test('the payload of a live token under any other signature gets only {active:false}', async () => {
    const { app, news, alice, bob } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    const other = await signIn(app, news, bob)
    const [h, p, s] = token.split('.') as [string, string, string]
    const flipped = `${s.slice(0, 20)}${s[20] === 'A' ? 'B' : 'A'}${s.slice(21)}`
    const forgeries = [
      `${h}.${p}.${await attackerSignature(`${h}.${p}`)}`,
      `${h}.${p}.${flipped}`,
      `${h}.${p}.${other.token.split('.')[2]}`,
      `${h}.${p}.${'A'.repeat(86)}`,
      `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.`,
    ]
    for (const forged of forgeries) {
      expect(await introspect(app, forged, news.clientSecret), forged.slice(-90)).toEqual({ active: false })
    }
    // The real one is untouched by all that.
    expect((await introspect(app, token, news.clientSecret)).active).toBe(true)
  })

  test("a live token's jti with other claims, under its own signature, gets only {active:false}", async () => {
    const { app, news, alice, bob } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    const [h, p, s] = token.split('.') as [string, string, string]
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
    for (const change of [{ sub: bob.id }, { exp: Number(claims.exp) + 600 }, { sid: 'another-session' }]) {
      const altered = Buffer.from(JSON.stringify({ ...claims, ...change })).toString('base64url')
      expect(await introspect(app, `${h}.${altered}.${s}`, news.clientSecret)).toEqual({ active: false })
      const resigned = `${h}.${altered}.${await attackerSignature(`${h}.${altered}`)}`
      expect(await introspect(app, resigned, news.clientSecret)).toEqual({ active: false })
    }
  })

  test('a token whose signing key was retired gets only {active:false}, even with its row and hash', async () => {
    const { app, news, alice, deps } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    ;(deps.keys.publicKeys as Map<string, unknown>).delete(deps.keys.current.kid)
    expect(await introspect(app, token, news.clientSecret)).toEqual({ active: false })
  })

  test('a row kept without a hash (an older server) is checked by its signature, as before', async () => {
    const { app, news, alice, deps } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    const sessionId = (
      JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as {
        sid: string
      }
    ).sid
    const now = deps.clock.now()
    const record = {
      jti: crypto.randomUUID(),
      siteId: 'news',
      userId: alice.id,
      sessionId,
      issuedAt: now,
      expiresAt: now + 900_000,
      revokedAt: null,
      revokeReason: null,
      jkt: null,
    }
    await deps.store.tokens.create(record)
    expect((await deps.store.tokens.getWithHash(record.jti))?.tokenHash).toBeNull()
    const legacy = await signSiteToken(deps.keys, {
      issuer: deps.config.issuer,
      siteId: 'news',
      userId: alice.id,
      sessionId,
      jti: record.jti,
      issuedAtMs: record.issuedAt,
      expiresAtMs: record.expiresAt,
    })
    const verify = vi.spyOn(crypto.subtle, 'verify')
    expect(await introspect(app, legacy, news.clientSecret)).toMatchObject({ active: true, sub: alice.id })
    expect(verify).toHaveBeenCalledTimes(1)
    const [h, p] = legacy.split('.') as [string, string]
    expect(
      await introspect(app, `${h}.${p}.${await attackerSignature(`${h}.${p}`)}`, news.clientSecret),
    ).toEqual({ active: false })
  })
})
