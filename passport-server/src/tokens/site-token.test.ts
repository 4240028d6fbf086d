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
  checkMintedSiteToken,
  decodeSiteToken,
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

  it("signs exactly the bytes of jose's SignJWT with the stored key (node:crypto and WebCrypto agree)", async () => {
    const claims = input({ jti: crypto.randomUUID() })
    const viaJose = await new SignJWT({ sid: claims.sessionId })
      .setProtectedHeader({ alg: 'EdDSA', typ: SITE_TOKEN_TYP, kid: deps.keys.current.kid })
      .setIssuer(claims.issuer)
      .setAudience(claims.siteId)
      .setSubject(claims.userId)
      .setJti(claims.jti)
      .setIssuedAt(seconds(claims.issuedAtMs))
      .setExpirationTime(seconds(claims.expiresAtMs))
      .sign(deps.keys.current.privateKey)
    expect(await signSiteToken(deps.keys, claims)).toBe(viaJose)
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

  it('B8: rejects a token from another issuer as invalid', async () => {
    const token = await signSiteToken(deps.keys, input({ issuer: 'http://staging-passport.localhost:8080' }))
    expect(await verify(token)).toEqual({ ok: false, reason: 'invalid' })
  })

  describe('alg none (B1)', () => {
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

  describe('algorithm confusion: HS256 keyed with our public key (B2)', () => {
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
    ])('B4: rejects %s as invalid even when signed with our key', async (_name, kid) => {
      expect(await verify(await forge({}, { kid }))).toEqual({ ok: false, reason: 'invalid' })
    })

    it('rejects a missing or non-string kid as invalid', async () => {
      expect(await verify(await forge({}, { kid: undefined }))).toEqual({ ok: false, reason: 'invalid' })
      const numeric = await forge({}, { kid: 1 as unknown as string })
      expect(await verify(numeric)).toEqual({ ok: false, reason: 'invalid' })
    })

    it('B4: rejects a 10 KB kid as malformed, before parsing', async () => {
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

    it('B3: ignores jwk, jku and x5c headers naming an attacker key, and fetches nothing', async () => {
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
  ])('B9: rejects typ %s as invalid even when signed with our key', async (_name, typ) => {
    expect(await verify(await forge({}, { typ }))).toEqual({ ok: false, reason: 'invalid' })
  })

  it.each([
    ['header', 0],
    ['payload', 1],
    ['signature', 2],
  ])('B5: rejects a token with one bit flipped in the %s', async (_name, segment) => {
    const token = await signSiteToken(deps.keys, input())
    const tampered = flipBit(token, segment)
    expect(tampered).not.toBe(token)
    expect(await verify(tampered)).toEqual({ ok: false, reason: 'invalid' })
  })

  it('B5: rejects the payload of one valid token under the signature of another', async () => {
    const alice = (await signSiteToken(deps.keys, input())).split('.')
    const bob = (await signSiteToken(deps.keys, input({ userId: 'u_bob', jti: 'jti-2' }))).split('.')
    expect(await verify([alice[0], bob[1], alice[2]].join('.'))).toEqual({ ok: false, reason: 'invalid' })
  })

  it('B6: rejects an all-zero ("psychic") signature and a malleated one (S + L), so a revoked token has no twin', async () => {
    const token = await signSiteToken(deps.keys, input())
    const [h, p, s] = token.split('.')
    const zero = Buffer.alloc(64).toString('base64url')
    expect(await verify(`${h}.${p}.${zero}`)).toEqual({ ok: false, reason: 'invalid' })
    // Ed25519: S is the little-endian second half; S + L verifies in a lax implementation.
    const L = 2n ** 252n + 27742317777372353535851937790883648493n
    const sig = Buffer.from(s ?? '', 'base64url')
    const le = (b: Buffer) => BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`)
    const malleated = le(sig.subarray(32)) + L
    const sBytes = Buffer.from(malleated.toString(16).padStart(64, '0'), 'hex').reverse()
    const twin = Buffer.concat([sig.subarray(0, 32), sBytes]).toString('base64url')
    expect(twin).not.toBe(s)
    expect(await verify(`${h}.${p}.${twin}`)).toEqual({ ok: false, reason: 'invalid' })
  })

  it('B5: rejects truncated, extended and non-compact shapes as malformed', async () => {
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

  describe('time (B10)', () => {
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

    it('J6: keeps the tolerance at or under the 15 s the requirements allow', () => {
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

/**
 * `checkMintedSiteToken` stands in for `verifySiteToken` when the token's bytes are known to be
 * ours (its stored hash matched), so on any validly signed token both must give the same answer.
 * @see issue 4 (introspection without a signature check per request)
 */
describe('checkMintedSiteToken: every check of verifySiteToken but the signature', () => {
  let deps: TestDeps

  beforeEach(async () => {
    deps = await createTestDeps()
  })

  const sign = (claims: JWTPayload, header: Partial<JWTHeaderParameters> = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', typ: SITE_TOKEN_TYP, kid: deps.keys.current.kid, ...header })
      .sign(deps.keys.current.privateKey)
  const base = {
    iss: TEST_ISSUER,
    aud: 'news',
    sub: 'u_alice',
    sid: 'session-a',
    jti: 'jti-1',
    iat: seconds(T0),
    exp: seconds(T0) + 900,
  }

  it('agrees with verifySiteToken on claims, header and time, at every instant around them', async () => {
    const variants: [string, JWTPayload, Partial<JWTHeaderParameters>][] = [
      ['as minted', base, {}],
      ['another site', { ...base, aud: 'shop' }, {}],
      ['several audiences', { ...base, aud: ['news', 'shop'] }, {}],
      ['another issuer', { ...base, iss: 'http://other.localhost' }, {}],
      ['issued in the future', { ...base, iat: seconds(T0) + 60 }, {}],
      ['issued 4 s ahead', { ...base, iat: seconds(T0) + 4 }, {}],
      ['a lifetime over a day', { ...base, exp: seconds(T0) + 2 * 86_400 }, {}],
      ['a day long', { ...base, exp: seconds(T0) + 86_400 }, {}],
      ['not before later', { ...base, nbf: seconds(T0) + 60 }, {}],
      ['a string nbf', { ...base, nbf: 'soon' as unknown as number }, {}],
      ['a string iat', { ...base, iat: 'now' as unknown as number }, {}],
      ['a string exp', { ...base, exp: 'later' as unknown as number }, {}],
      ['a numeric sid', { ...base, sid: 42 as unknown as string }, {}],
      ...(['iss', 'aud', 'sub', 'sid', 'jti', 'iat', 'exp'] as const).map(
        (claim): [string, JWTPayload, Partial<JWTHeaderParameters>] => [
          `no ${claim}`,
          { ...base, [claim]: undefined },
          {},
        ],
      ),
      ['typ JWT', base, { typ: 'JWT' }],
      ['typ application/at+jwt', base, { typ: 'application/at+jwt' }],
      ['typ AT+JWT', base, { typ: 'AT+JWT' }],
      ['an unknown kid', base, { kid: 'not-ours' }],
    ]
    const offsets = [
      -3_600_000, -61_000, -6_000, -5_000, -1, 0, 1, 899_000, 900_000, 904_999, 905_000, 906_000,
    ]
    const days = [86_400_000 - 1000, 86_400_000, 86_400_000 + 5000, 86_400_000 + 6000, 2 * 86_400_000]
    let compared = 0
    for (const [name, claims, header] of variants) {
      const token = await sign(claims, header)
      const decoded = decodeSiteToken(token)
      expect(decoded, name).not.toBeNull()
      if (!decoded) continue
      for (const offset of [...offsets, ...days, ...days.map((d) => d + 900_000)]) {
        for (const allowExpired of [false, true]) {
          for (const audience of ['news', 'shop', undefined]) {
            const expected = {
              issuer: TEST_ISSUER,
              nowMs: T0 + offset,
              ...(audience === undefined ? {} : { audience }),
              ...(allowExpired ? { allowExpired } : {}),
            }
            const full = await verifySiteToken(deps.keys, token, expected)
            expect(checkMintedSiteToken(deps.keys, decoded, expected), `${name} at ${offset} ms`).toEqual(
              full,
            )
            compared++
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(1000)
  })

  it('refuses a token whose key was retired, as verifySiteToken does', async () => {
    const token = await signSiteToken(deps.keys, input())
    const decoded = decodeSiteToken(token)
    if (!decoded) throw new Error('not decoded')
    const expected = { issuer: TEST_ISSUER, audience: 'news', nowMs: T0 }
    expect(checkMintedSiteToken(deps.keys, decoded, expected).ok).toBe(true)
    const retired = { ...deps.keys, publicKeys: new Map() }
    expect(checkMintedSiteToken(retired, decoded, expected)).toEqual({ ok: false, reason: 'invalid' })
    expect(await verifySiteToken(retired, token, expected)).toEqual({ ok: false, reason: 'invalid' })
  })
})

describe('decodeSiteToken', () => {
  it('reads the header and claims of a token shaped like ours, and nothing else', async () => {
    const deps = await createTestDeps()
    const token = await signSiteToken(deps.keys, input())
    expect(decodeSiteToken(token)).toMatchObject({
      header: { alg: 'EdDSA', typ: SITE_TOKEN_TYP, kid: deps.keys.current.kid },
      claims: { jti: 'jti-1', sub: 'u_alice', aud: 'news' },
    })
    const [h, p, s] = token.split('.') as [string, string, string]
    const header = (x: unknown) => b64(JSON.stringify(x))
    for (const bad of [
      `${h}.${p}`,
      `${token}.${s}`,
      `${h}.${b64('[1]')}.${s}`,
      `${h}.${b64('not json')}.${s}`,
      `${header({ alg: 'EdDSA', typ: SITE_TOKEN_TYP })}.${p}.${s}`,
      `${header({ alg: 'EdDSA', typ: SITE_TOKEN_TYP, kid: 'k', jwk: {} })}.${p}.${s}`,
      `${header({ alg: 'EdDSA', typ: SITE_TOKEN_TYP, kid: 1 })}.${p}.${s}`,
      `${header({ alg: 'EdDSA', typ: SITE_TOKEN_TYP, kid: 'k', crit: ['b64'], b64: false })}.${p}.${s}`,
      'x'.repeat(MAX_TOKEN_LENGTH + 1),
    ]) {
      expect(decodeSiteToken(bad), bad.slice(0, 60)).toBeNull()
    }
  })
})
