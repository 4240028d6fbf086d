import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose'
import * as oidc from 'openid-client'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PassportServer } from '../server.ts'
import { basicAuth, frameApi, signIn, sitePost } from '../test-flows.ts'
import { addSite, addUser, startTestServer } from '../test-support.ts'

/**
 * A site backend in any language verifies tokens with standard tools against a real passport
 * over HTTP: openid-client for discovery, introspection and revocation; jose's remote JWKS for
 * local verification pinned to one algorithm, issuer and audience.
 */

let server: PassportServer
let issuer: string
let news: Awaited<ReturnType<typeof addSite>>
let shop: Awaited<ReturnType<typeof addSite>>
let alice: Awaited<ReturnType<typeof addUser>>

beforeAll(async () => {
  const started = await startTestServer()
  ;({ server, issuer } = started)
  alice = await addUser(started.deps, 'alice')
  news = await addSite(started.deps, { id: 'news' })
  shop = await addSite(started.deps, { id: 'shop' })
})
afterAll(() => server.close())

const configFor = (site: typeof news) =>
  oidc.discovery(new URL(issuer), site.site.id, undefined, oidc.ClientSecretBasic(site.clientSecret), {
    execute: [oidc.allowInsecureRequests],
  })

/** Sign-in through the in-process app (same deps as the listening server). */
const signInAlice = () => signIn(server.app, news, alice, new Map(), issuer)

describe('standard verification for site backends', () => {
  test('openid-client discovers the passport', async () => {
    const config = await configFor(news)
    const meta = config.serverMetadata()
    expect(meta.issuer).toBe(issuer)
    expect(meta.jwks_uri).toBe(`${issuer}/.well-known/jwks.json`)
    expect(meta.introspection_endpoint).toBe(`${issuer}/token/introspect`)
    expect(meta.revocation_endpoint).toBe(`${issuer}/token/revoke`)
    expect(meta.code_challenge_methods_supported).toEqual(['S256'])
  })

  test('openid-client introspects a live token; another site gets only active:false', async () => {
    const { token } = await signInAlice()
    const result = await oidc.tokenIntrospection(await configFor(news), token)
    expect(result).toMatchObject({ active: true, sub: alice.id, aud: 'news', iss: issuer, username: 'alice' })
    expect(await oidc.tokenIntrospection(await configFor(shop), token)).toEqual({ active: false })
  })

  test('openid-client revokes: the token is dead at once and the device lost the site', async () => {
    const { token, body } = await signInAlice()
    const refreshToken = body.refresh_token
    await oidc.tokenRevocation(await configFor(news), token)
    expect(await oidc.tokenIntrospection(await configFor(news), token)).toEqual({ active: false })
    const refreshed = await frameApi(
      server.app,
      'token',
      { grant_type: 'refresh_token', authkey: news.authkey, refresh_token: refreshToken },
      { Origin: issuer },
    )
    expect(refreshed.status).toBe(400)
    expect(await refreshed.json()).toMatchObject({ error: 'invalid_grant', reason: 'revoked' })
  })

  test('openid-client revokes by the refresh credential: the device lost the site; a made-up one or another site revokes nothing', async () => {
    const { token, body } = await signInAlice()
    const refreshToken = String(body.refresh_token)
    const [familyId, generation] = refreshToken.split('.')
    await oidc.tokenRevocation(await configFor(news), `${familyId}.${generation}.${'A'.repeat(43)}`)
    await oidc.tokenRevocation(await configFor(shop), refreshToken)
    expect(await oidc.tokenIntrospection(await configFor(news), token)).toMatchObject({ active: true })
    await oidc.tokenRevocation(await configFor(news), refreshToken)
    expect(await oidc.tokenIntrospection(await configFor(news), token)).toEqual({ active: false })
  })

  test("revoking another site's token or garbage answers 200 and changes nothing", async () => {
    const { token } = await signInAlice()
    await oidc.tokenRevocation(await configFor(shop), token)
    const garbage = await sitePost(
      server.app,
      '/token/revoke',
      { token: 'x.y.z' },
      basicAuth('news', news.clientSecret),
    )
    expect(garbage.status).toBe(200)
    expect(garbage.headers.get('Cache-Control')).toBe('no-store')
    expect(await oidc.tokenIntrospection(await configFor(news), token)).toMatchObject({ active: true })
  })

  test('revocation without site credentials is 401 invalid_client', async () => {
    const res = await sitePost(server.app, '/token/revoke', { token: 'x' })
    expect(res.status).toBe(401)
    expect(await res.json()).toMatchObject({ error: 'invalid_client' })
  })

  test('jose remote JWKS verifies a minted token pinned to EdDSA, the issuer and the audience', async () => {
    const { token } = await signInAlice()
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`))
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      algorithms: ['EdDSA'],
      issuer,
      audience: 'news',
      typ: 'at+jwt',
    })
    expect(payload.sub).toBe(alice.id)
    expect(protectedHeader.kid).toBeTruthy()
    await expect(
      jwtVerify(token, jwks, { algorithms: ['EdDSA'], issuer, audience: 'shop' }),
    ).rejects.toThrow()
    await expect(
      jwtVerify(token, jwks, { algorithms: ['ES256'], issuer, audience: 'news' }),
    ).rejects.toThrow()
  })

  test('jose remote JWKS rejects a forged token signed with an attacker key under our kid', async () => {
    const { token } = await signInAlice()
    const kid = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()).kid as string
    const attacker = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const forged = await new SignJWT({ sid: 's' })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid, jwk: await exportJWK(attacker.publicKey) })
      .setIssuer(issuer)
      .setAudience('news')
      .setSubject(alice.id)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(attacker.privateKey)
    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`))
    await expect(
      jwtVerify(forged, jwks, { algorithms: ['EdDSA'], issuer, audience: 'news' }),
    ).rejects.toThrow()
    expect(await oidc.tokenIntrospection(await configFor(news), forged)).toEqual({ active: false })
  })
})
