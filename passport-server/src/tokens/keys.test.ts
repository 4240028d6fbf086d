import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openSqliteStore } from '../store/sqlite.ts'
import type { Store } from '../store/types.ts'
import { T0, TEST_ISSUER } from '../test-support.ts'
import { openAuthkey, sealAuthkey } from './authkey.ts'
import {
  KEY_ACTIVATION_DELAY_MS,
  KEY_RETIRE_AFTER_MS,
  loadOrCreateKeys,
  rotateSigningKey,
  SIGNING_ALG,
} from './keys.ts'
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

  it('rotation: the new key is published first, signs after the delay; old tokens verify until retired (J5)', async () => {
    const store = memoryStore()
    const before = await loadOrCreateKeys(store.secrets, T0)
    const oldToken = await signSiteToken(before, { ...tokenInput, expiresAtMs: T0 + 900_000 })
    const rotated = await rotateSigningKey(store, T0)
    expect(rotated.activeFrom).toBe(T0 + KEY_ACTIVATION_DELAY_MS)

    const published = await loadOrCreateKeys(store.secrets, T0 + 60_000)
    expect(published.current.kid).toBe(before.current.kid)
    expect(published.jwks.keys.map((k) => k.kid)).toEqual([rotated.kid, before.current.kid])

    const active = await loadOrCreateKeys(store.secrets, rotated.activeFrom)
    expect(active.current.kid).toBe(rotated.kid)
    const newToken = await signSiteToken(active, {
      ...tokenInput,
      issuedAtMs: rotated.activeFrom,
      expiresAtMs: rotated.activeFrom + 60_000,
    })
    expect(JSON.parse(Buffer.from(newToken.split('.')[0] ?? '', 'base64url').toString()).kid).toBe(
      rotated.kid,
    )
    expect((await verifySiteToken(active, oldToken, { ...verifyOpts, nowMs: T0 + 800_000 })).ok).toBe(true)

    // A day after the new key took over, no token of the old one can be alive: it leaves the JWKS.
    const later = rotated.activeFrom + KEY_RETIRE_AFTER_MS
    const retired = await loadOrCreateKeys(store.secrets, later)
    expect(retired.jwks.keys.map((k) => k.kid)).toEqual([rotated.kid])
    expect((await rotateSigningKey(store, later)).dropped).toEqual([before.current.kid])
  })

  it('refuses to start with an empty stored key list', async () => {
    const store = memoryStore()
    await store.secrets.putIfAbsent('signing_keys', '[]')
    await expect(loadOrCreateKeys(store.secrets)).rejects.toThrow('no active signing key stored')
  })
})
