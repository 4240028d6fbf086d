import { createCipheriv, randomBytes } from 'node:crypto'
import { CompactEncrypt, CompactSign, generateKeyPair } from 'jose'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createTestDeps, NEWS_ORIGIN, SHOP_ORIGIN, type TestDeps } from '../test-support.ts'
import {
  AUTHKEY_CACHE_SIZE,
  AUTHKEY_TYP,
  type AuthkeyContent,
  MAX_AUTHKEY_LENGTH,
  openAuthkey,
  openAuthkeyCached,
  sealAuthkey,
} from './authkey.ts'

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const b64 = (value: Uint8Array | string) => Buffer.from(value).toString('base64url')
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value))

/**
 * Flips the low bit of the character in the middle of one compact segment. The middle character is
 * used because every one of its 6 bits is data (the last character of a segment may carry unused
 * padding bits, where a flip would not change the decoded bytes).
 */
function flipBit(compact: string, segment: number): string {
  const parts = compact.split('.')
  const seg = parts[segment] ?? ''
  const i = Math.floor(seg.length / 2)
  const flipped = B64URL[B64URL.indexOf(seg.charAt(i)) ^ 1] ?? ''
  parts[segment] = seg.slice(0, i) + flipped + seg.slice(i + 1)
  return parts.join('.')
}

/** Builds a compact JWE with an empty encrypted-key segment and any header, AES-256-GCM under `key`. */
function forgeDirJwe(key: Uint8Array, header: Record<string, unknown>, payload: Uint8Array): string {
  const protectedHeader = b64(JSON.stringify(header))
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  cipher.setAAD(Buffer.from(protectedHeader, 'ascii'))
  const ciphertext = Buffer.concat([cipher.update(payload), cipher.final()])
  return [protectedHeader, '', b64(iv), b64(ciphertext), b64(cipher.getAuthTag())].join('.')
}

const content: AuthkeyContent = { siteId: 'news', origins: [NEWS_ORIGIN], version: 3 }
const body = { site: 'news', origins: [NEWS_ORIGIN], ver: 3 }
const goodHeader = { alg: 'dir', enc: 'A256GCM', typ: AUTHKEY_TYP, site: 'news' }

describe('authkey seal and open', () => {
  let deps: TestDeps
  /** The server's raw authkey key: lets a test forge authkeys a real attacker could not. */
  let rawKey: Uint8Array

  beforeEach(async () => {
    deps = await createTestDeps()
    rawKey = Buffer.from((await deps.store.secrets.get('authkey_key')) ?? '', 'base64url')
  })

  const open = (authkey: string) => openAuthkey(deps.keys.authkeyKey, authkey)

  it('opens what it sealed, with the same content', async () => {
    const sealed = await sealAuthkey(deps.keys.authkeyKey, content)
    expect(await open(sealed)).toEqual(content)
  })

  it('puts the site id in the readable protected header, and nothing else in clear', async () => {
    const sealed = await sealAuthkey(deps.keys.authkeyKey, content)
    const [header, encryptedKey] = sealed.split('.')
    expect(JSON.parse(Buffer.from(header ?? '', 'base64url').toString())).toEqual(goodHeader)
    expect(encryptedKey).toBe('')
    expect(sealed).not.toContain(b64(NEWS_ORIGIN))
  })

  it('seals the same content differently each time (fresh IV)', async () => {
    const a = await sealAuthkey(deps.keys.authkeyKey, content)
    const b = await sealAuthkey(deps.keys.authkeyKey, content)
    expect(a).not.toBe(b)
    expect(await open(b)).toEqual(content)
  })

  it('opens an authkey forged with the real key and the exact expected header (checks the forger)', async () => {
    // Every forged case below differs from this one in exactly the way its name says.
    expect(await open(forgeDirJwe(rawKey, goodHeader, json(body)))).toEqual(content)
  })

  it.each([
    ['protected header', 0],
    ['IV', 2],
    ['ciphertext', 3],
    ['authentication tag', 4],
  ])('C2: returns null when one bit of the %s is flipped', async (_name, segment) => {
    const sealed = await sealAuthkey(deps.keys.authkeyKey, content)
    const tampered = flipBit(sealed, segment)
    expect(tampered).not.toBe(sealed)
    expect(await open(tampered)).toBeNull()
  })

  it('returns null when the (empty) encrypted-key segment is given content', async () => {
    const parts = (await sealAuthkey(deps.keys.authkeyKey, content)).split('.')
    parts[1] = 'AA'
    expect(await open(parts.join('.'))).toBeNull()
  })

  it('returns null for truncated or extended authkeys', async () => {
    const sealed = await sealAuthkey(deps.keys.authkeyKey, content)
    expect(await open(sealed.slice(0, -2))).toBeNull()
    expect(await open(sealed.split('.').slice(0, 4).join('.'))).toBeNull()
    expect(await open(`${sealed}.AAAA`)).toBeNull()
  })

  it('returns null for an authkey sealed with another server key', async () => {
    const other = await createTestDeps()
    expect(await open(await sealAuthkey(other.keys.authkeyKey, content))).toBeNull()
  })

  it('C3: rejects PBES2-HS512+A256KW with a huge p2c quickly, before any key derivation', async () => {
    const header = b64(
      JSON.stringify({
        ...goodHeader,
        alg: 'PBES2-HS512+A256KW',
        p2c: 2 ** 31 - 1,
        p2s: b64(randomBytes(16)),
      }),
    )
    const rest = [b64(randomBytes(12)), b64(randomBytes(64)), b64(randomBytes(16))]
    const withKey = [header, b64(randomBytes(40)), ...rest].join('.')
    // Same header with an empty encrypted-key segment, so it gets past the shape check to jose.
    const withoutKey = [header, '', ...rest].join('.')
    for (const jwe of [withKey, withoutKey]) {
      const started = performance.now()
      expect(await open(jwe)).toBeNull()
      expect(performance.now() - started).toBeLessThan(200)
    }
  })

  it('C1: returns null for a JWE an attacker encrypted to an RSA-OAEP key with invented site info', async () => {
    const { publicKey } = await generateKeyPair('RSA-OAEP', { modulusLength: 2048 })
    const jwe = await new CompactEncrypt(json({ ...body, origins: ['http://evil.localhost:8083'] }))
      .setProtectedHeader({ ...goodHeader, alg: 'RSA-OAEP' })
      .encrypt(publicKey)
    expect(await open(jwe)).toBeNull()
  })

  it('C2: returns null when the header names RSA-OAEP even though the content opens with the real key', async () => {
    expect(await open(forgeDirJwe(rawKey, { ...goodHeader, alg: 'RSA-OAEP' }, json(body)))).toBeNull()
  })

  it('C4: returns null for a compressed (zip: "DEF") authkey, even one sealed with the real key', async () => {
    const jwe = await new CompactEncrypt(json(body))
      .setProtectedHeader({ ...goodHeader, zip: 'DEF' })
      .encrypt(rawKey)
    expect(await open(jwe)).toBeNull()
    const forged = forgeDirJwe(randomBytes(32), { ...goodHeader, zip: 'DEF' }, json(body))
    expect(await open(forged)).toBeNull()
  })

  it.each([
    ['JWT', { ...goodHeader, typ: 'JWT' }],
    ['at+jwt (a site token type)', { ...goodHeader, typ: 'at+jwt' }],
    ['differently cased', { ...goodHeader, typ: 'Passport-Authkey' }],
    ['missing', { alg: 'dir', enc: 'A256GCM', site: 'news' }],
  ])('returns null when typ is %s, even when sealed with the real key', async (_name, header) => {
    const jwe = await new CompactEncrypt(json(body)).setProtectedHeader(header).encrypt(rawKey)
    expect(await open(jwe)).toBeNull()
  })

  it('returns null when the readable header names another site than the sealed content', async () => {
    const jwe = await new CompactEncrypt(json(body))
      .setProtectedHeader({ ...goodHeader, site: 'shop' })
      .encrypt(rawKey)
    expect(await open(jwe)).toBeNull()
  })

  it.each([
    ['no origins', { site: 'news', ver: 1 }],
    ['non-string origins', { site: 'news', origins: [1], ver: 1 }],
    ['a fractional version', { site: 'news', origins: [NEWS_ORIGIN], ver: 1.5 }],
    ['a string version', { site: 'news', origins: [NEWS_ORIGIN], ver: '1' }],
    ['a non-JSON body', 'not json'],
  ])('returns null for content with %s, even when sealed with the real key', async (_name, payload) => {
    const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : json(payload)
    const jwe = await new CompactEncrypt(bytes).setProtectedHeader(goodHeader).encrypt(rawKey)
    expect(await open(jwe)).toBeNull()
  })

  it('C1: returns null for a JWS (signed, not encrypted) carrying valid-looking content', async () => {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' })
    const jws = await new CompactSign(json(body))
      .setProtectedHeader({ alg: 'EdDSA', typ: AUTHKEY_TYP, site: 'news' })
      .sign(privateKey)
    expect(await open(jws)).toBeNull()
  })

  it.each([
    '',
    'garbage',
    '....',
    'a..b.c.d e',
    '{"protected":"x","ciphertext":"y"}',
    b64(randomBytes(300)),
    [b64(randomBytes(20)), '', b64(randomBytes(12)), b64(randomBytes(30)), b64(randomBytes(16))].join('.'),
  ])('C1: returns null for random garbage %#', async (garbage) => {
    expect(await open(garbage)).toBeNull()
  })

  it('returns null for a genuinely sealed authkey longer than MAX_AUTHKEY_LENGTH', async () => {
    const origins = Array.from({ length: 60 }, (_, i) => `http://site-${i}.localhost:8081`)
    const long = await sealAuthkey(deps.keys.authkeyKey, { siteId: 'news', origins, version: 1 })
    expect(long.length).toBeGreaterThan(MAX_AUTHKEY_LENGTH)
    expect(await open(long)).toBeNull()
    const short = await sealAuthkey(deps.keys.authkeyKey, {
      siteId: 'shop',
      origins: [SHOP_ORIGIN],
      version: 1,
    })
    expect(await open(short)).not.toBeNull()
  })
})

/** @see issue 4 (a frame's every refresh decrypted its site's authkey again) */
describe('openAuthkeyCached', () => {
  let deps: TestDeps
  beforeEach(async () => {
    deps = await createTestDeps()
  })
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('decrypts an authkey once, then answers the same content from memory', async () => {
    const authkey = await sealAuthkey(deps.keys.authkeyKey, content)
    const decrypt = vi.spyOn(crypto.subtle, 'decrypt')
    expect(await openAuthkeyCached(deps.keys.authkeyKey, authkey)).toEqual(content)
    expect(await openAuthkeyCached(deps.keys.authkeyKey, authkey)).toEqual(content)
    expect(await openAuthkeyCached(deps.keys.authkeyKey, authkey)).toEqual(content)
    expect(decrypt).toHaveBeenCalledTimes(1)
  })

  it('remembers only the exact string under the exact key, and no failure', async () => {
    const authkey = await sealAuthkey(deps.keys.authkeyKey, content)
    expect(await openAuthkeyCached(deps.keys.authkeyKey, authkey)).toEqual(content)
    for (const segment of [0, 2, 3, 4]) {
      expect(await openAuthkeyCached(deps.keys.authkeyKey, flipBit(authkey, segment))).toBeNull()
    }
    expect(await openAuthkeyCached(deps.keys.authkeyKey, `${authkey} `)).toBeNull()
    // Another passport (another authkey key) never gets this one's answer.
    const other = await createTestDeps()
    expect(await openAuthkeyCached(other.keys.authkeyKey, authkey)).toBeNull()
    const decrypt = vi.spyOn(crypto.subtle, 'decrypt')
    expect(await openAuthkeyCached(deps.keys.authkeyKey, 'not-an-authkey')).toBeNull()
    const forged = flipBit(authkey, 3)
    expect(await openAuthkeyCached(deps.keys.authkeyKey, forged)).toBeNull()
    expect(await openAuthkeyCached(deps.keys.authkeyKey, forged)).toBeNull()
    expect(decrypt).toHaveBeenCalledTimes(2) // a failure is decrypted (and refused) every time
  })

  it('returns content the caller cannot change for the next caller', async () => {
    const authkey = await sealAuthkey(deps.keys.authkeyKey, content)
    const first = await openAuthkeyCached(deps.keys.authkeyKey, authkey)
    expect(() => first?.origins.push(SHOP_ORIGIN)).toThrow()
    expect(await openAuthkeyCached(deps.keys.authkeyKey, authkey)).toEqual(content)
  })

  it(`keeps at most ${AUTHKEY_CACHE_SIZE} authkeys, least recently used out first`, async () => {
    const keys: string[] = []
    for (let version = 1; version <= AUTHKEY_CACHE_SIZE + 1; version++) {
      keys.push(await sealAuthkey(deps.keys.authkeyKey, { ...content, version }))
    }
    for (const k of keys.slice(0, AUTHKEY_CACHE_SIZE)) await openAuthkeyCached(deps.keys.authkeyKey, k)
    await openAuthkeyCached(deps.keys.authkeyKey, keys[0] as string) // now the most recent
    await openAuthkeyCached(deps.keys.authkeyKey, keys[AUTHKEY_CACHE_SIZE] as string) // evicts keys[1]
    const decrypt = vi.spyOn(crypto.subtle, 'decrypt')
    await openAuthkeyCached(deps.keys.authkeyKey, keys[0] as string)
    expect(decrypt).toHaveBeenCalledTimes(0)
    expect(await openAuthkeyCached(deps.keys.authkeyKey, keys[1] as string)).toMatchObject({ version: 2 })
    expect(decrypt).toHaveBeenCalledTimes(1)
  })
})
