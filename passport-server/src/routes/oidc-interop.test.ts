import * as client from 'openid-client'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { registerSite } from '../services/registry.ts'
import { cookieHeader, signIn } from '../test-flows.ts'
import { addUser, startTestServer } from '../test-support.ts'

/**
 * Interoperability: a stock `openid-client` relying party (no Passport code) discovers the
 * passport, sends the browser to `/authorize` and redeems the code at `/token` with its client
 * secret, both ways of client authentication.
 */
describe('a stock openid-client relying party', () => {
  let passport: Awaited<ReturnType<typeof startTestServer>>
  beforeEach(async () => {
    passport = await startTestServer()
  })
  afterEach(async () => {
    await passport.server.close()
  })

  test.each([
    ['client_secret_basic', client.ClientSecretBasic],
    ['client_secret_post', client.ClientSecretPost],
  ] as const)('completes the authorization-code flow (%s, PKCE, prompt=none)', async (_name, auth) => {
    const alice = await addUser(passport.deps, 'alice')
    const news = await registerSite(passport.deps, { id: 'news', origins: ['http://news.localhost:8081'] })
    const redirectUri = 'http://docs.localhost:8083/callback'
    const docs = await registerSite(passport.deps, {
      id: 'docs',
      origins: ['http://docs.localhost:8083'],
      redirectUris: [redirectUri],
    })
    const { jar } = await signIn(passport.server.app, news, alice, new Map(), passport.issuer)

    const config = await client.discovery(
      new URL(passport.issuer),
      'docs',
      undefined,
      auth(docs.clientSecret),
      { execute: [client.allowInsecureRequests] },
    )
    const verifier = client.randomPKCECodeVerifier()
    const state = client.randomState()
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: 'openid',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      prompt: 'none',
    })
    // The browser: the passport session cookie makes it come straight back with a code.
    const res = await fetch(url, { redirect: 'manual', headers: { Cookie: cookieHeader(jar) } })
    expect(res.status).toBe(303)
    const callback = new URL(res.headers.get('Location') ?? '')
    const tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
    })
    expect(tokens.token_type).toBe('bearer')
    expect(tokens.claims()).toMatchObject({ iss: passport.issuer, aud: 'docs', sub: alice.id })
    const introspected = await client.tokenIntrospection(config, tokens.access_token)
    expect(introspected).toMatchObject({ active: true, username: 'alice' })
  })
})
