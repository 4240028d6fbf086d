import type { webcrypto } from 'node:crypto'
import { exportJWK, generateKeyPair, importJWK, type JWK } from 'jose'
import type { SecretRepo } from '../store/types.ts'

export const SIGNING_ALG = 'EdDSA'

export interface SigningKey {
  kid: string
  privateKey: webcrypto.CryptoKey
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
}

interface StoredSigningKey {
  kid: string
  privateJwk: JWK
}

async function newSigningKey(): Promise<StoredSigningKey> {
  const { privateKey } = await generateKeyPair(SIGNING_ALG, { crv: 'Ed25519', extractable: true })
  const privateJwk = await exportJWK(privateKey)
  return { kid: crypto.randomUUID(), privateJwk }
}

function publicPart(jwk: JWK, kid: string): JWK {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid, alg: SIGNING_ALG, use: 'sig' }
}

/**
 * Loads the signing keys and the authkey key from the store, creating them on first start.
 * `putIfAbsent` makes two instances starting at once agree on one set of keys.
 */
export async function loadOrCreateKeys(secrets: SecretRepo): Promise<KeySet> {
  const storedKeys = JSON.parse(
    await secrets.putIfAbsent('signing_keys', JSON.stringify([await newSigningKey()])),
  ) as StoredSigningKey[]
  const authkeyRaw = await secrets.putIfAbsent(
    'authkey_key',
    Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url'),
  )
  const [newest] = storedKeys
  if (!newest) throw new Error('no signing key stored')

  const publicKeys = new Map<string, webcrypto.CryptoKey>()
  const jwks: JWK[] = []
  for (const stored of storedKeys) {
    const pub = publicPart(stored.privateJwk, stored.kid)
    publicKeys.set(stored.kid, (await importJWK(pub, SIGNING_ALG)) as webcrypto.CryptoKey)
    jwks.push(pub)
  }
  return {
    current: {
      kid: newest.kid,
      privateKey: (await importJWK(
        { ...newest.privateJwk, alg: SIGNING_ALG },
        SIGNING_ALG,
      )) as webcrypto.CryptoKey,
    },
    publicKeys,
    jwks: { keys: jwks },
    authkeyKey: await crypto.subtle.importKey('raw', Buffer.from(authkeyRaw, 'base64url'), 'AES-GCM', false, [
      'encrypt',
      'decrypt',
    ]),
  }
}
