import type { webcrypto } from 'node:crypto'
import { base64url, CompactEncrypt, decodeProtectedHeader, jwtDecrypt } from 'jose'
import { ENCRYPTION_ALG, type KeySet } from './keys.ts'

/**
 * Sealed payloads (issue 16 item 3): the browser makes a one-time 256-bit content key, sends it
 * wrapped to the passport's `enc` key as an encrypted JWT (JWE `ECDH-ES+A256KW` / `A256GCM`,
 * claims `k`, `aud`, `jti`, `iat`, `exp`), and the passport answers with a JWE under that key
 * (`dir` / `A256GCM`). Whoever reads the traffic (a TLS-terminating box, a log of bodies) sees
 * only ciphertext; only the page that made the key reads the answer.
 *
 * Refused (null, never an exception to the caller): a JWE that does not decrypt (tampered,
 * wrapped to another or a retired key), another algorithm, an `aud` other than this purpose's,
 * expired or too old, without `jti`, or a `jti` seen before (the wrapped key is single-use).
 */
export const SEALED_CONTENT_ENC = 'A256GCM'
/** A wrapped key is accepted for this long after it was made. */
export const SEALED_KEY_MAX_AGE_SECONDS = 120
const MAX_SEALED_LENGTH = 4096

export type SealedPurpose = 'sign_in' | 'devices' | 'password' | 'passkeys' | 'approvals'

/** The `aud` a wrapped key for `purpose` carries: the passport, and what the key is for. */
export function sealedAudience(issuer: string, purpose: SealedPurpose): string {
  return `${issuer}/sealed/${purpose}`
}

/**
 * Opens a wrapped content key. `claimOnce(jti, expiresAtMs)` records the key's id and answers
 * false if it was recorded before (the store's one-time ids), so a replay opens nothing.
 */
export async function openWrappedKey(input: OpenInput): Promise<Uint8Array | null> {
  return (await openSealedRequest(input))?.key ?? null
}

interface OpenInput {
  keys: KeySet
  issuer: string
  purpose: SealedPurpose
  jwe: string
  nowMs: number
  claimOnce: (id: string, expiresAtMs: number) => Promise<boolean>
}

/**
 * As `openWrappedKey`, with the request's other claims: what the page sends sealed beside the
 * key (a password change's new credential).
 */
export async function openSealedRequest(
  input: OpenInput,
): Promise<{ key: Uint8Array; claims: Record<string, unknown> } | null> {
  if (input.jwe.length > MAX_SEALED_LENGTH) return null
  let payload: Record<string, unknown> & { k?: unknown; jti?: unknown; exp?: unknown }
  try {
    const header = decodeProtectedHeader(input.jwe)
    const key = typeof header.kid === 'string' ? input.keys.encryption.privateKeys.get(header.kid) : undefined
    if (!key) return null
    ;({ payload } = await jwtDecrypt(input.jwe, key as webcrypto.CryptoKey, {
      keyManagementAlgorithms: [ENCRYPTION_ALG],
      contentEncryptionAlgorithms: [SEALED_CONTENT_ENC],
      audience: sealedAudience(input.issuer, input.purpose),
      currentDate: new Date(input.nowMs),
      maxTokenAge: SEALED_KEY_MAX_AGE_SECONDS,
      clockTolerance: 30,
      requiredClaims: ['jti', 'exp', 'iat'],
    }))
  } catch {
    // Every jose refusal (tamper, wrong key, expiry, audience) is the same answer: no key.
    return null
  }
  if (typeof payload.k !== 'string' || typeof payload.jti !== 'string' || payload.jti.length > 64) return null
  let contentKey: Uint8Array
  try {
    contentKey = base64url.decode(payload.k)
  } catch {
    return null
  }
  if (contentKey.length !== 32) return null
  const expiresAtMs = Math.min(Number(payload.exp) * 1000, input.nowMs + SEALED_KEY_MAX_AGE_SECONDS * 1000)
  if (!(await input.claimOnce(`sealed:${payload.jti}`, expiresAtMs + 30_000))) return null
  return { key: contentKey, claims: payload }
}

/** The answer: `data` as JSON in a JWE under the page's content key (`dir`, `A256GCM`). */
export function sealForKey(contentKey: Uint8Array, data: unknown): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(data)))
    .setProtectedHeader({ alg: 'dir', enc: SEALED_CONTENT_ENC, cty: 'json' })
    .encrypt(contentKey)
}
