import { base64url, compactDecrypt, EncryptJWT, importJWK, type JWK } from 'jose'

/**
 * The browser side of sealed payloads: a one-time 256-bit content key, wrapped to the
 * passport's `enc` key (JWE `ECDH-ES+A256KW` / `A256GCM`, single-use `jti`, `aud` naming the
 * purpose), and the passport's answer opened with it. jose only: no hand-written crypto.
 */
export type SealedPurpose = 'sign_in' | 'devices' | 'password' | 'passkeys' | 'approvals'

/**
 * The passport's clock minus this device's (ms), from the `Date` of its last answer: a wrapped
 * key is dated by the passport's clock, so a device clock hours off still signs in.
 */
let serverSkewMs = 0

/** The skew a `Date` header shows against `deviceNowMs`; 0 when it is absent or unreadable. */
export function skewFromDate(date: string | null, deviceNowMs: number): number {
  const serverMs = date ? Date.parse(date) : Number.NaN
  return Number.isFinite(serverMs) ? serverMs - deviceNowMs : 0
}

/** The passport's current encryption key from its JWKS (the last `use: enc` key published). */
export async function fetchEncryptionKey(issuer: string): Promise<JWK> {
  const res = await fetch(`${issuer}/.well-known/jwks.json`, { credentials: 'omit', cache: 'no-store' })
  serverSkewMs = skewFromDate(res.headers.get('Date'), Date.now())
  const { keys } = (await res.json()) as { keys: JWK[] }
  const enc = keys.filter((k) => k.use === 'enc' && k.alg === 'ECDH-ES+A256KW')
  // Newest first in the JWKS, but a newer key may not be active yet: the server opens any key it
  // still publishes, so the first one is always accepted.
  const key = enc[0]
  if (!key) throw new Error('the passport publishes no encryption key')
  return key
}

/** A fresh content key and its wrapping for `purpose` (valid two minutes, usable once). */
export async function wrapContentKey(
  jwk: JWK,
  issuer: string,
  purpose: SealedPurpose,
  /** The time it is made (ms): the passport's clock as last seen (the device's, corrected), unless given. */
  nowMs = Date.now() + serverSkewMs,
  /** Claims sent sealed beside the key (a password change's new credential). */
  extra: Record<string, unknown> = {},
): Promise<{ key: Uint8Array; wrapped: string }> {
  const now = Math.floor(nowMs / 1000)
  const key = crypto.getRandomValues(new Uint8Array(32))
  const publicKey = await importJWK(jwk, 'ECDH-ES+A256KW')
  const wrapped = await new EncryptJWT({ ...extra, k: base64url.encode(key) })
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', ...(jwk.kid ? { kid: jwk.kid } : {}) })
    .setAudience(`${issuer}/sealed/${purpose}`)
    .setJti(base64url.encode(crypto.getRandomValues(new Uint8Array(16))))
    .setIssuedAt(now)
    .setExpirationTime(now + 120)
    .encrypt(publicKey)
  return { key, wrapped }
}

/** Opens the passport's answer (JWE `dir` / `A256GCM` under the content key). */
export async function openSealed<T>(jwe: string, key: Uint8Array): Promise<T> {
  const { plaintext } = await compactDecrypt(jwe, key, {
    keyManagementAlgorithms: ['dir'],
    contentEncryptionAlgorithms: ['A256GCM'],
  })
  return JSON.parse(new TextDecoder().decode(plaintext)) as T
}
