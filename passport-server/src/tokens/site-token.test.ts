import { createPublicKey } from 'node:crypto'
import {
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from 'jose'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createTestDeps, T0, TEST_ISSUER, type TestDeps } from '../test-support.ts'
import { AUTHKEY_TYP } from './authkey.ts'
import {
  CLOCK_TOLERANCE_SECONDS,
  MAX_TOKEN_LENGTH,
  SITE_TOKEN_TYP,
  type SiteTokenInput,
  signSiteToken,
  verifySiteToken,
} from './site-token.ts'

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const b64 = (value: string) => Buffer.from(value).toString('base64url')
const seconds = (ms: number) => Math.floor(ms / 1000)

/** Flips the low bit of the middle character of one segment (every bit of it is data). */
function flipBit(compact: string, segment: number): string {
  const parts = compact.split('.')
  const seg = parts[segment] ?? ''
  const i = Math.floor(seg.length / 2)
  parts[segment] = seg.slice(0, i) + (B64URL[B64URL.indexOf(seg.charAt(i)) ^ 1] ?? '') + seg.slice(i + 1)
  return parts.join('.')
}

const input = (over: Partial<SiteTokenInput> = {}): SiteTokenInput => ({
  issuer: TEST_ISSUER,
  siteId: 'news',
  userId: 'u_alice',
  sessionId: 'session-a',
  jti: 'jti-1',
  issuedAtMs: T0,
  expiresAtMs: T0 + 900_000,
  ...over,
})

describe('site token sign and verify', () => {
  let deps: TestDeps

  beforeEach(async () => {
    deps = await createTestDeps()
  })
  afterEach(() => {
    vi.restoreAllMocks()
  })

  const verify = (token: string, audience: string | undefined = 'news') =>
    verifySiteToken(deps.keys, token, {
      issuer: TEST_ISSUER,
      ...(audience === undefined ? {} : { audience }),
      nowMs: deps.clock.now(),
    })

  /** Signs any claims/header with the server's own private key: only the named defect differs. */
  const forge = (claims: JWTPayload = {}, header: Partial<JWTHeaderParameters> = {}) =>
    new SignJWT({
      iss: TEST_ISSUER,
      aud: 'news',
      sub: 'u_alice',
      sid: 'session-a',
      jti: 'jti-1',
      iat: seconds(T0),
      exp: seconds(T0) + 900,
      ...claims,
    })
      .setProtectedHeader({ alg: 'EdDSA', typ: SITE_TOKEN_TYP, kid: deps.keys.current.kid, ...header })
      .sign(deps.keys.current.privateKey)

  it('verifies what it signed and returns exactly the expected claims', async () => {
    const token = await signSiteToken(deps.keys, input())
    expect(await verify(token)).toEqual({
      ok: true,
      claims: {
        iss: TEST_ISSUER,
        aud: 'news',
        sub: 'u_alice',
        sid: 'session-a',
        jti: 'jti-1',
        iat: seconds(T0),
        exp: seconds(T0) + 900,
      },
    })
    expect(decodeProtectedHeader(token)).toEqual({
      alg: 'EdDSA',
      typ: SITE_TOKEN_TYP,
      kid: deps.keys.current.kid,
    })
  })

  it('accepts a token forged with our own key and correct fields (checks the forger)', async () => {
    expect((await verify(await forge())).ok).toBe(true)
  })

  it('rejects a token for another site as invalid', async () => {
    const token = await signSiteToken(deps.keys, input({ siteId: 'shop' }))
    expect(await verify(token, 'news')).toEqual({ ok: false, reason: 'invalid' })
    expect((await verify(token, 'shop')).ok).toBe(true)
  })

  it('rejects a token with several audiences, even one that includes the expected site', async () => {
    const token = await forge({ aud: ['news', 'shop'] })
    expect(await verify(token, 'news')).toEqual({ ok: false, reason: 'invalid' })
    expect(await verify(token, undefined)).toEqual({ ok: false, reason: 'invalid' })
  })

  it('rejects a token from another issuer as invalid', async () => {
    const token = await signSiteToken(deps.keys, input({ issuer: 'http://staging-passport.localhost:8080' }))
    expect(await verify(token)).toEqual({ ok: false, reason: 'invalid' })
  })

  describe('alg none', () => {
    const unsigned = (alg: string) =>
      `${b64(JSON.stringify({ alg, typ: SITE_TOKEN_TYP, kid: deps.keys.current.kid }))}.${b64(
        JSON.stringify({
          iss: TEST_ISSUER,
          aud: 'news',
          sub: 'u_alice',
          sid: 's',
          jti: 'j',
          iat: seconds(T0),
          exp: seconds(T0) + 900,
        }),
      )}`

    it.each(['none', 'None', 'NONE', 'nOnE'])(
      'rejects alg %s with an empty signature as malformed',
      async (alg) => {
        expect(await verify(`${unsigned(alg)}.`)).toEqual({ ok: false, reason: 'malformed' })
      },
    )

    it.each(['none', 'None', 'NONE', 'nOnE'])(
      'rejects alg %s with a signature segment as invalid',
      async (alg) => {
        const realSignature = (await signSiteToken(deps.keys, input())).split('.')[2]
        expect(await verify(`${unsigned(alg)}.${realSignature}`)).toEqual({ ok: false, reason: 'invalid' })
      },
    )
  })

  describe('algorithm confusion: HS256 keyed with our public key', () => {
    const hs256 = (secret: Uint8Array) =>
      new SignJWT({ iss: TEST_ISSUER, aud: 'news', sub: 'u_alice', sid: 's', jti: 'j' })
        .setProtectedHeader({ alg: 'HS256', typ: SITE_TOKEN_TYP, kid: deps.keys.current.kid })
        .setIssuedAt(seconds(T0))
        .setExpirationTime(seconds(T0) + 900)
        .sign(secret)

    it('rejects HMAC keyed with the raw public key bytes, the JWK and the PEM (also whitespace-prefixed)', async () => {
      const jwk = deps.keys.jwks.keys[0]
      if (!jwk?.x) throw new Error('no public key in the JWKS')
      const pem = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' })
        .export({ type: 'spki', format: 'pem' })
        .toString()
      const secrets = [
        Buffer.from(jwk.x, 'base64url'),
        Buffer.from(jwk.x),
        Buffer.from(JSON.stringify(jwk)),
        Buffer.from(pem),
        Buffer.from(`\n  ${pem}`),
      ]
      for (const secret of secrets) {
        expect(await verify(await hs256(secret))).toEqual({ ok: false, reason: 'invalid' })
      }
    })
  })

  describe('key selection', () => {
    it.each([
      ['an unknown kid', crypto.randomUUID()],
      ['a path traversal kid', '../../../../dev/null'],
      ['an SQL injection kid', "' OR 1=1--"],
      ['an empty kid', ''],
      ['a prototype kid', '__proto__'],
    ])('rejects %s as invalid even when signed with our key', async (_name, kid) => {
      expect(await verify(await forge({}, { kid }))).toEqual({ ok: false, reason: 'invalid' })
    })

    it('rejects a missing or non-string kid as invalid', async () => {
      expect(await verify(await forge({}, { kid: undefined }))).toEqual({ ok: false, reason: 'invalid' })
      const numeric = await forge({}, { kid: 1 as unknown as string })
      expect(await verify(numeric)).toEqual({ ok: false, reason: 'invalid' })
    })

    it('rejects a 10 KB kid as malformed, before parsing', async () => {
      expect(await verify(await forge({}, { kid: 'k'.repeat(10_000) }))).toEqual({
        ok: false,
        reason: 'malformed',
      })
    })

    it('rejects our kid over an attacker signature', async () => {
      const attacker = await createTestDeps()
      const token = await new SignJWT({ iss: TEST_ISSUER, aud: 'news', sub: 'u_alice', sid: 's', jti: 'j' })
        .setProtectedHeader({ alg: 'EdDSA', typ: SITE_TOKEN_TYP, kid: deps.keys.current.kid })
        .setIssuedAt(seconds(T0))
        .setExpirationTime(seconds(T0) + 900)
        .sign(attacker.keys.current.privateKey)
      expect(await verify(token)).toEqual({ ok: false, reason: 'invalid' })
    })

    it('ignores jwk, jku and x5c headers naming an attacker key, and fetches nothing', async () => {
      const fetchSpy = vi.spyOn(globalThis, 'fetch')
      const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
      const attackerJwk = { ...(await exportJWK(publicKey)), kid: 'attacker' }
      const signWith = (header: Record<string, unknown>) =>
        new SignJWT({ iss: TEST_ISSUER, aud: 'news', sub: 'u_alice', sid: 's', jti: 'j' })
          .setProtectedHeader({ alg: 'EdDSA', typ: SITE_TOKEN_TYP, ...header })
          .setIssuedAt(seconds(T0))
          .setExpirationTime(seconds(T0) + 900)
          .sign(privateKey)
      const headers = [
        { jwk: attackerJwk },
        { jwk: attackerJwk, kid: 'attacker' },
        { jwk: attackerJwk, kid: deps.keys.current.kid },
        { jku: 'http://169.254.169.254/latest/jwks.json' },
        { jku: 'http://evil.localhost:8083/jwks.json', kid: deps.keys.current.kid },
        { x5c: [Buffer.from('not really a certificate').toString('base64')], kid: deps.keys.current.kid },
        { x5u: 'http://169.254.169.254/cert.pem' },
      ]
      for (const header of headers) {
        expect(await verify(await signWith(header))).toEqual({ ok: false, reason: 'invalid' })
      }
      expect(fetchSpy).not.toHaveBeenCalled()
    })
  })

  it.each([
    ['JWT', 'JWT'],
    ['the authkey typ', AUTHKEY_TYP],
    ['a refresh-token-like typ', 'passport-rt+jwt'],
    ['missing', undefined],
  ])('rejects typ %s as invalid even when signed with our key', async (_name, typ) => {
    expect(await verify(await forge({}, { typ }))).toEqual({ ok: false, reason: 'invalid' })
  })

  it.each([
    ['header', 0],
    ['payload', 1],
    ['signature', 2],
  ])('rejects a token with one bit flipped in the %s', async (_name, segment) => {
    const token = await signSiteToken(deps.keys, input())
    const tampered = flipBit(token, segment)
    expect(tampered).not.toBe(token)
    expect(await verify(tampered)).toEqual({ ok: false, reason: 'invalid' })
  })

  it('rejects the payload of one valid token under the signature of another', async () => {
    const alice = (await signSiteToken(deps.keys, input())).split('.')
    const bob = (await signSiteToken(deps.keys, input({ userId: 'u_bob', jti: 'jti-2' }))).split('.')
    expect(await verify([alice[0], bob[1], alice[2]].join('.'))).toEqual({ ok: false, reason: 'invalid' })
  })

  it('rejects truncated, extended and non-compact shapes as malformed', async () => {
    const token = await signSiteToken(deps.keys, input())
    const [h, p, s] = token.split('.')
    for (const bad of [
      `${h}.${p}`,
      `${token}.${s}`,
      ` ${token}`,
      `${token}\n`,
      JSON.stringify({ protected: h, payload: p, signature: s }),
      `${h}.{"sub":"u_bob"}.${s}`,
      '',
    ]) {
      expect(await verify(bad)).toEqual({ ok: false, reason: 'malformed' })
    }
  })

  describe('time', () => {
    const exp = T0 + 60_000
    const shortLived = () => signSiteToken(deps.keys, input({ expiresAtMs: exp }))

    it(`accepts a token expired by less than the ${CLOCK_TOLERANCE_SECONDS} s tolerance`, async () => {
      const token = await shortLived()
      deps.clock.set(exp + (CLOCK_TOLERANCE_SECONDS - 1) * 1000)
      expect((await verify(token)).ok).toBe(true)
    })

    it('rejects a token expired by more than the tolerance as expired', async () => {
      const token = await shortLived()
      deps.clock.set(exp + (CLOCK_TOLERANCE_SECONDS + 1) * 1000)
      expect(await verify(token)).toEqual({ ok: false, reason: 'expired' })
    })

    it('keeps the tolerance at or under the 15 s the requirements allow', () => {
      expect(CLOCK_TOLERANCE_SECONDS).toBeGreaterThan(0)
      expect(CLOCK_TOLERANCE_SECONDS).toBeLessThanOrEqual(15)
    })

    it('rejects a token issued in the future beyond the tolerance as invalid (B10)', async () => {
      expect(await verify(await forge({ iat: seconds(T0) + 60, exp: seconds(T0) + 900 }))).toEqual({
        ok: false,
        reason: 'invalid',
      })
      expect((await verify(await forge({ iat: seconds(T0) + 4 }))).ok).toBe(true)
    })

    it('rejects a token valid for longer than any token we mint (a day) as invalid', async () => {
      const token = await forge({ iat: seconds(T0), exp: seconds(T0) + 10 * 365 * 86_400 })
      expect(await verify(token)).toEqual({ ok: false, reason: 'invalid' })
    })

    it('rejects a token not valid before a time beyond the tolerance as invalid', async () => {
      expect(await verify(await forge({ nbf: seconds(T0) + 60 }))).toEqual({ ok: false, reason: 'invalid' })
    })

    it.each(['exp', 'iat', 'sid', 'jti', 'sub', 'iss', 'aud'])(
      'rejects a token without %s as invalid',
      async (claim) => {
        expect(await verify(await forge({ [claim]: undefined }))).toEqual({ ok: false, reason: 'invalid' })
      },
    )

    it('rejects a non-string session id as invalid', async () => {
      expect(await verify(await forge({ sid: 42 }))).toEqual({ ok: false, reason: 'invalid' })
    })
  })

  it('rejects a validly signed token longer than MAX_TOKEN_LENGTH as malformed', async () => {
    const token = await forge({ pad: 'x'.repeat(MAX_TOKEN_LENGTH) })
    expect(token.length).toBeGreaterThan(MAX_TOKEN_LENGTH)
    expect(await verify(token)).toEqual({ ok: false, reason: 'malformed' })
  })

  it('rejects a token signed by another passport instance (unknown kid)', async () => {
    const other = await createTestDeps()
    expect(await verify(await signSiteToken(other.keys, input()))).toEqual({ ok: false, reason: 'invalid' })
  })
})
