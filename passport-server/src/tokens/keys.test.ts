import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { exportJWK, generateKeyPair } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import { openSqliteStore } from '../store/sqlite.ts'
import type { Store } from '../store/types.ts'
import { T0, TEST_ISSUER } from '../test-support.ts'
import { openAuthkey, sealAuthkey } from './authkey.ts'
import { loadOrCreateKeys, SIGNING_ALG } from './keys.ts'
import { signSiteToken, verifySiteToken } from './site-token.ts'

const tokenInput = {
  issuer: TEST_ISSUER,
  siteId: 'news',
  userId: 'u_alice',
  sessionId: 's',
  jti: 'j',
  issuedAtMs: T0,
  expiresAtMs: T0 + 60_000,
}
const verifyOpts = { issuer: TEST_ISSUER, audience: 'news', nowMs: T0 }
const authkeyContent = { siteId: 'news', origins: ['http://news.localhost:8081'], version: 1 }

describe('signing and authkey keys', () => {
  const stores: Store[] = []
  const dirs: string[] = []
  const memoryStore = () => {
    const store = openSqliteStore(':memory:')
    stores.push(store)
    return store
  }

  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close()
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
  })

  it('loads the same keys from the same store on every call', async () => {
    const store = memoryStore()
    const first = await loadOrCreateKeys(store.secrets)
    const second = await loadOrCreateKeys(store.secrets)
    expect(second.current.kid).toBe(first.current.kid)
    expect(second.jwks).toEqual(first.jwks)
    const token = await signSiteToken(first, tokenInput)
    expect((await verifySiteToken(second, token, verifyOpts)).ok).toBe(true)
    const authkey = await sealAuthkey(first.authkeyKey, authkeyContent)
    expect(await openAuthkey(second.authkeyKey, authkey)).toEqual(authkeyContent)
  })

  it('creates different keys for different stores', async () => {
    const a = await loadOrCreateKeys(memoryStore().secrets)
    const b = await loadOrCreateKeys(memoryStore().secrets)
    expect(a.current.kid).not.toBe(b.current.kid)
    expect(a.jwks.keys[0]?.x).not.toBe(b.jwks.keys[0]?.x)
    expect(await openAuthkey(b.authkeyKey, await sealAuthkey(a.authkeyKey, authkeyContent))).toBeNull()
  })

  it('agrees on one key set when two loads race on the same store', async () => {
    const store = memoryStore()
    const [a, b] = await Promise.all([loadOrCreateKeys(store.secrets), loadOrCreateKeys(store.secrets)])
    expect(b.current.kid).toBe(a.current.kid)
    expect(b.jwks).toEqual(a.jwks)
    expect(await openAuthkey(b.authkeyKey, await sealAuthkey(a.authkeyKey, authkeyContent))).toEqual(
      authkeyContent,
    )
  })

  it('agrees on one key set when two instances start at once on the same store file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-keys-'))
    dirs.push(dir)
    const file = path.join(dir, 'passport.sqlite')
    const one = openSqliteStore(file)
    stores.push(one)
    const two = openSqliteStore(file)
    stores.push(two)
    const [a, b] = await Promise.all([loadOrCreateKeys(one.secrets), loadOrCreateKeys(two.secrets)])
    expect(b.current.kid).toBe(a.current.kid)
    const token = await signSiteToken(b, tokenInput)
    expect((await verifySiteToken(a, token, verifyOpts)).ok).toBe(true)
    expect(await openAuthkey(a.authkeyKey, await sealAuthkey(b.authkeyKey, authkeyContent))).toEqual(
      authkeyContent,
    )
  })

  it('publishes only public key parts in the JWKS', async () => {
    const keys = await loadOrCreateKeys(memoryStore().secrets)
    expect(keys.jwks.keys).toHaveLength(1)
    const [jwk] = keys.jwks.keys
    expect(Object.keys(jwk ?? {}).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x'])
    expect(jwk).toMatchObject({
      kty: 'OKP',
      crv: 'Ed25519',
      alg: SIGNING_ALG,
      use: 'sig',
      kid: keys.current.kid,
    })
  })

  it('signs with the newest stored key and still verifies tokens of older stored keys', async () => {
    const store = memoryStore()
    const stored = async () => {
      const { privateKey } = await generateKeyPair(SIGNING_ALG, { crv: 'Ed25519', extractable: true })
      return { kid: crypto.randomUUID(), privateJwk: await exportJWK(privateKey) }
    }
    const newest = await stored()
    const older = await stored()
    await store.secrets.putIfAbsent('signing_keys', JSON.stringify([older]))
    const before = await loadOrCreateKeys(store.secrets)
    const oldToken = await signSiteToken(before, tokenInput)

    // Rotation: a new key is put in front of the stored list.
    const fresh = openSqliteStore(':memory:')
    stores.push(fresh)
    await fresh.secrets.putIfAbsent('signing_keys', JSON.stringify([newest, older]))
    await fresh.secrets.putIfAbsent('authkey_key', (await store.secrets.get('authkey_key')) ?? '')
    const after = await loadOrCreateKeys(fresh.secrets)

    expect(after.current.kid).toBe(newest.kid)
    expect([...after.publicKeys.keys()]).toEqual([newest.kid, older.kid])
    expect(after.jwks.keys.map((k) => k.kid)).toEqual([newest.kid, older.kid])
    expect((await verifySiteToken(after, oldToken, verifyOpts)).ok).toBe(true)
    const newToken = await signSiteToken(after, tokenInput)
    expect(JSON.parse(Buffer.from(newToken.split('.')[0] ?? '', 'base64url').toString()).kid).toBe(newest.kid)
    expect((await verifySiteToken(before, newToken, verifyOpts)).ok).toBe(false)
  })

  it('refuses to start with an empty stored key list', async () => {
    const store = memoryStore()
    await store.secrets.putIfAbsent('signing_keys', '[]')
    await expect(loadOrCreateKeys(store.secrets)).rejects.toThrow('no signing key stored')
  })
})
