import { base64url, CompactEncrypt, EncryptJWT, importJWK } from 'jose'
import { beforeEach, describe, expect, it } from 'vitest'
import { openSealed, skewFromDate, wrapContentKey } from '../../../passport-frame/src/sign-in/sealed.ts'
import { createTestDeps, TEST_ISSUER, type TestDeps } from '../test-support.ts'
import { loadOrCreateKeys, rotateSigningKey } from './keys.ts'
import { openWrappedKey, type SealedPurpose, sealForKey } from './sealed.ts'

/** Issue 16 item 3: one-time content keys wrapped to the passport's `enc` key, answers under them. */
describe('sealed payloads', () => {
  let deps: TestDeps
  beforeEach(async () => {
    deps = await createTestDeps()
  })

  const jwk = () => {
    const key = deps.keys.encryption.jwks[0]
    if (!key) throw new Error('no enc key')
    return key
  }
  const open = (jwe: string, purpose: SealedPurpose = 'devices') =>
    openWrappedKey({
      keys: deps.keys,
      issuer: TEST_ISSUER,
      purpose,
      jwe,
      nowMs: deps.clock.now(),
      claimOnce: (id, expiresAt) => deps.store.oneTimeIds.claim(id, expiresAt),
    })

  it('round trip: the page wraps a key, the passport opens it and answers what only the page reads', async () => {
    const { key, wrapped } = await wrapContentKey(jwk(), TEST_ISSUER, 'devices', deps.clock.now())
    expect(wrapped.split('.')).toHaveLength(5)
    const opened = await open(wrapped)
    expect(opened && Buffer.from(opened).equals(Buffer.from(key))).toBe(true)
    const answer = await sealForKey(opened as Uint8Array, { devices: ['Chrome on Linux'] })
    expect(answer).not.toContain('Chrome')
    expect(await openSealed(answer, key)).toEqual({ devices: ['Chrome on Linux'] })
    // Another key opens nothing.
    await expect(openSealed(answer, crypto.getRandomValues(new Uint8Array(32)))).rejects.toThrow()
  })

  it('refuses a replayed wrapped key (single-use)', async () => {
    const { wrapped } = await wrapContentKey(jwk(), TEST_ISSUER, 'devices', deps.clock.now())
    expect(await open(wrapped)).not.toBeNull()
    expect(await open(wrapped)).toBeNull()
  })

  it('refuses a tampered wrapped key (any part of the JWE)', async () => {
    for (const part of [0, 1, 2, 3, 4]) {
      const { wrapped } = await wrapContentKey(jwk(), TEST_ISSUER, 'devices', deps.clock.now())
      const parts = wrapped.split('.')
      const bytes = base64url.decode(parts[part] as string)
      bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] as number) ^ 1
      parts[part] = base64url.encode(bytes)
      expect(await open(parts.join('.'))).toBeNull()
    }
  })

  it('refuses a key wrapped to another passport (wrong key) and one for another purpose (audience)', async () => {
    const other = await createTestDeps()
    const foreignJwk = other.keys.encryption.jwks[0]
    if (!foreignJwk) throw new Error('no enc key')
    const foreign = await wrapContentKey(foreignJwk, TEST_ISSUER, 'devices', deps.clock.now())
    expect(await open(foreign.wrapped)).toBeNull()
    // Same kid claimed, another key behind it.
    const relabelled = await wrapContentKey(
      { ...foreignJwk, kid: jwk().kid },
      TEST_ISSUER,
      'devices',
      deps.clock.now(),
    )
    expect(await open(relabelled.wrapped)).toBeNull()
    const forSignIn = await wrapContentKey(jwk(), TEST_ISSUER, 'sign_in', deps.clock.now())
    expect(await open(forSignIn.wrapped, 'devices')).toBeNull()
    const otherIssuer = await wrapContentKey(jwk(), 'http://evil.localhost:8083', 'devices', deps.clock.now())
    expect(await open(otherIssuer.wrapped)).toBeNull()
  })

  it('refuses an expired or too old key, another algorithm, and a key of the wrong size', async () => {
    const old = await wrapContentKey(jwk(), TEST_ISSUER, 'devices', deps.clock.now() - 10 * 60_000)
    expect(await open(old.wrapped)).toBeNull()
    const publicKey = await importJWK(jwk(), 'ECDH-ES+A256KW')
    const now = Math.floor(deps.clock.now() / 1000)
    const make = (k: Uint8Array, alg = 'ECDH-ES+A256KW', enc = 'A256GCM') =>
      new EncryptJWT({ k: base64url.encode(k) })
        .setProtectedHeader({ alg, enc, kid: jwk().kid as string })
        .setAudience(`${TEST_ISSUER}/sealed/devices`)
        .setJti(crypto.randomUUID())
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .encrypt(publicKey)
    expect(await open(await make(new Uint8Array(16)))).toBeNull()
    expect(await open(await make(new Uint8Array(32), 'ECDH-ES', 'A256GCM'))).toBeNull()
    expect(await open(await make(new Uint8Array(32), 'ECDH-ES+A256KW', 'A128CBC-HS256'))).toBeNull()
    // A `dir` JWE (no key wrapping) is not a wrapped key at all.
    const dir = await new CompactEncrypt(new TextEncoder().encode('{}'))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: jwk().kid as string })
      .encrypt(new Uint8Array(32))
    expect(await open(dir)).toBeNull()
  })

  it('the encryption key rotates with the signing keys: the old one still opens until retired', async () => {
    const before = jwk()
    await rotateSigningKey(deps.store, deps.clock.now())
    const rotated = await loadOrCreateKeys(deps.store.secrets, deps.clock.now())
    expect(rotated.encryption.jwks.map((k) => k.kid)).toContain(before.kid)
    expect(rotated.encryption.jwks).toHaveLength(2)
    const wrapped = await wrapContentKey(before, TEST_ISSUER, 'devices', deps.clock.now())
    deps.keys = rotated
    expect(await open(wrapped.wrapped)).not.toBeNull()
  })
})

describe('the page dates a wrapped key by the passport clock (its JWKS answer Date)', () => {
  it('reads the skew from a Date header, and none from a missing or broken one', () => {
    const device = Date.UTC(2026, 0, 1, 10, 0, 0)
    expect(skewFromDate('Thu, 01 Jan 2026 12:00:00 GMT', device)).toBe(2 * 3600_000)
    expect(skewFromDate('Thu, 01 Jan 2026 08:00:00 GMT', device)).toBe(-2 * 3600_000)
    expect(skewFromDate(null, device)).toBe(0)
    expect(skewFromDate('not a date', device)).toBe(0)
  })

  it('a key wrapped on a device two hours behind, corrected by that skew, opens', async () => {
    const deps = await createTestDeps()
    const keys = deps.keys
    const enc = keys.encryption.jwks[0]
    if (!enc) throw new Error('no encryption key')
    const deviceNow = deps.clock.now() - 2 * 3600_000
    const skew = skewFromDate(new Date(deps.clock.now()).toUTCString(), deviceNow)
    const open = (wrapped: string) =>
      openWrappedKey({
        keys,
        issuer: TEST_ISSUER,
        purpose: 'devices',
        jwe: wrapped,
        nowMs: deps.clock.now(),
        claimOnce: async () => true,
      })
    expect(await open((await wrapContentKey(enc, TEST_ISSUER, 'devices', deviceNow)).wrapped)).toBeNull()
    expect(
      await open((await wrapContentKey(enc, TEST_ISSUER, 'devices', deviceNow + skew)).wrapped),
    ).not.toBeNull()
  })
})
