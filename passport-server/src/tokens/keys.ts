import { createPrivateKey, type KeyObject, type webcrypto } from 'node:crypto'
import { exportJWK, generateKeyPair, importJWK, type JWK } from 'jose'
import type { SecretRepo } from '../store/types.ts'

export const SIGNING_ALG = 'EdDSA'

export interface SigningKey {
  kid: string
  privateKey: webcrypto.CryptoKey
  /**
   * The same private key for node:crypto's synchronous one-shot `sign`, which site tokens use
   * (no thread-pool round trip while the store's transaction waits). Made from the stored JWK,
   * as `privateKey` is: a KeyObject derived from the CryptoKey would need it to be extractable.
   */
  keyObject: KeyObject
}

export interface KeySet {
  /** The key new tokens are signed with. */
  current: SigningKey
  /** Public keys by kid: the current one and older ones still verifying live tokens. */
  publicKeys: ReadonlyMap<string, webcrypto.CryptoKey>
  /** The JWKS document (public parts only). */
  jwks: { keys: JWK[] }
  /** Key for sealing and opening authkeys (AES-256-GCM, server-only). */
  authkeyKey: webcrypto.CryptoKey
  /**
   * Encryption keys (`use: enc`, ECDH-ES on P-256) that browsers wrap one-time content keys to
   * (sealed payloads, `tokens/sealed.ts`). Published in the JWKS beside the signing keys and
   * rotated with them: new ones are wrapped to from their activation, older ones still open
   * until retired.
   */
  encryption: {
    current: { kid: string; privateKey: webcrypto.CryptoKey }
    privateKeys: ReadonlyMap<string, webcrypto.CryptoKey>
    jwks: JWK[]
  }
  /** Server-only secret of the SCRAM sign-in: decoy salts and keys for usernames without a credential. */
  scramSecret: Buffer
}

interface StoredSigningKey {
  kid: string
  privateJwk: JWK
  /** When it was created (ms). Absent on keys from the first release: treated as 0. */
  createdAt?: number
  /** It signs new tokens from this time on (published in the JWKS before that). */
  activeFrom?: number
}

/**
 * A rotated key is published this long before it signs anything, so site backends with a
 * cached JWKS and other passport instances (which reload keys every `KEY_RELOAD_MS`) know it
 * before the first token signed with it reaches them.
 */
export const KEY_ACTIVATION_DELAY_MS = 5 * 60_000
export const KEY_RELOAD_MS = 30_000
/** A replaced key verifies for this long after its successor takes over: the longest token life. */
export const KEY_RETIRE_AFTER_MS = 86_400_000 + 60_000

async function newSigningKey(nowMs: number, activeFrom: number): Promise<StoredSigningKey> {
  const { privateKey } = await generateKeyPair(SIGNING_ALG, { crv: 'Ed25519', extractable: true })
  const privateJwk = await exportJWK(privateKey)
  return { kid: crypto.randomUUID(), privateJwk, createdAt: nowMs, activeFrom }
}

function publicPart(jwk: JWK, kid: string): JWK {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid, alg: SIGNING_ALG, use: 'sig' }
}

export const ENCRYPTION_ALG = 'ECDH-ES+A256KW'

async function newEncryptionKey(nowMs: number, activeFrom: number): Promise<StoredSigningKey> {
  const { privateKey } = await generateKeyPair(ENCRYPTION_ALG, { crv: 'P-256', extractable: true })
  const privateJwk = await exportJWK(privateKey)
  return { kid: crypto.randomUUID(), privateJwk, createdAt: nowMs, activeFrom }
}

function publicEncryptionPart(jwk: JWK, kid: string): JWK {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid, alg: ENCRYPTION_ALG, use: 'enc' }
}

/** Newest first. The current key is the newest active one; older ones stay until retired. */
function liveKeys<K extends { activeFrom?: number }>(stored: K[], nowMs: number) {
  const byAge = [...stored].sort((a, b) => (b.activeFrom ?? 0) - (a.activeFrom ?? 0))
  const currentIndex = byAge.findIndex((k) => (k.activeFrom ?? 0) <= nowMs)
  if (currentIndex < 0) throw new Error('no active signing key stored')
  return byAge
    .filter((_key, i) => {
      if (i <= currentIndex) return true // the current key, and newer ones not active yet
      // An older key retired when the key after it became active.
      const replacedAt = byAge[i - 1]?.activeFrom ?? 0
      return nowMs < replacedAt + KEY_RETIRE_AFTER_MS
    })
    .map((key, i) => ({ key, isCurrent: i === currentIndex }))
}

const SIGNING_KEYS = 'signing_keys'
const ENCRYPTION_KEYS = 'encryption_keys'

/**
 * Loads the signing keys and the authkey key from the store, creating them on first start.
 * `putIfAbsent` makes two instances starting at once agree on one set of keys.
 */
export async function loadOrCreateKeys(secrets: SecretRepo, nowMs = Date.now()): Promise<KeySet> {
  const storedKeys = JSON.parse(
    await secrets.putIfAbsent(SIGNING_KEYS, JSON.stringify([await newSigningKey(nowMs, 0)])),
  ) as StoredSigningKey[]
  const authkeyRaw = await secrets.putIfAbsent(
    'authkey_key',
    Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url'),
  )

  const publicKeys = new Map<string, webcrypto.CryptoKey>()
  const jwks: JWK[] = []
  let current: SigningKey | null = null
  for (const { key, isCurrent } of liveKeys(storedKeys, nowMs)) {
    const pub = publicPart(key.privateJwk, key.kid)
    publicKeys.set(key.kid, (await importJWK(pub, SIGNING_ALG)) as webcrypto.CryptoKey)
    jwks.push(pub)
    if (isCurrent) {
      current = {
        kid: key.kid,
        privateKey: (await importJWK(
          { ...key.privateJwk, alg: SIGNING_ALG },
          SIGNING_ALG,
        )) as webcrypto.CryptoKey,
        keyObject: createPrivateKey({ key: { ...key.privateJwk }, format: 'jwk' }),
      }
    }
  }
  if (!current) throw new Error('no active signing key stored')
  const scramRaw = await secrets.putIfAbsent(
    'scram_secret',
    Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url'),
  )
  return {
    current,
    publicKeys,
    jwks: { keys: jwks },
    encryption: await loadEncryptionKeys(secrets, nowMs),
    scramSecret: Buffer.from(scramRaw, 'base64url'),
    authkeyKey: await crypto.subtle.importKey('raw', Buffer.from(authkeyRaw, 'base64url'), 'AES-GCM', false, [
      'encrypt',
      'decrypt',
    ]),
  }
}

async function loadEncryptionKeys(secrets: SecretRepo, nowMs: number): Promise<KeySet['encryption']> {
  const stored = JSON.parse(
    await secrets.putIfAbsent(ENCRYPTION_KEYS, JSON.stringify([await newEncryptionKey(nowMs, 0)])),
  ) as StoredSigningKey[]
  const privateKeys = new Map<string, webcrypto.CryptoKey>()
  const jwks: JWK[] = []
  let current: KeySet['encryption']['current'] | null = null
  for (const { key, isCurrent } of liveKeys(stored, nowMs)) {
    const privateKey = (await importJWK(
      { ...key.privateJwk, alg: ENCRYPTION_ALG },
      ENCRYPTION_ALG,
    )) as webcrypto.CryptoKey
    privateKeys.set(key.kid, privateKey)
    jwks.push(publicEncryptionPart(key.privateJwk, key.kid))
    if (isCurrent) current = { kid: key.kid, privateKey }
  }
  if (!current) throw new Error('no active encryption key stored')
  return { current, privateKeys, jwks }
}

/**
 * Adds a new signing key, published at once and signing from `now + delay`; drops keys that
 * retired long enough ago that no token signed with them can still be alive.
 */
export async function rotateSigningKey(
  store: { transaction<T>(fn: (tx: { secrets: SecretRepo }) => Promise<T>): Promise<T> },
  nowMs: number,
  delayMs = KEY_ACTIVATION_DELAY_MS,
): Promise<{ kid: string; activeFrom: number; dropped: string[] }> {
  const added = await newSigningKey(nowMs, nowMs + delayMs)
  const addedEnc = await newEncryptionKey(nowMs, nowMs + delayMs)
  return store.transaction(async (tx) => {
    // The encryption key rotates with the signing key, on the same schedule.
    const storedEnc = JSON.parse((await tx.secrets.get(ENCRYPTION_KEYS)) ?? '[]') as StoredSigningKey[]
    const keepEnc = new Set(liveKeys([addedEnc, ...storedEnc], nowMs).map(({ key }) => key.kid))
    await tx.secrets.put(
      ENCRYPTION_KEYS,
      JSON.stringify([addedEnc, ...storedEnc].filter((k) => keepEnc.has(k.kid))),
    )
    const stored = JSON.parse((await tx.secrets.get(SIGNING_KEYS)) ?? '[]') as StoredSigningKey[]
    const keep = new Set(liveKeys([added, ...stored], nowMs).map(({ key }) => key.kid))
    const next = [added, ...stored].filter((k) => keep.has(k.kid))
    await tx.secrets.put(SIGNING_KEYS, JSON.stringify(next))
    return {
      kid: added.kid,
      activeFrom: nowMs + delayMs,
      dropped: stored.filter((k) => !keep.has(k.kid)).map((k) => k.kid),
    }
  })
}

/** Copies a freshly loaded key set into the live one the app holds (no restart needed). */
export function replaceKeys(target: KeySet, source: KeySet): void {
  Object.assign(target, source)
}
