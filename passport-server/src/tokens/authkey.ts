import type { webcrypto } from 'node:crypto'
import { CompactEncrypt, compactDecrypt } from 'jose'

/**
 * An authkey is the site's service info (site id, origins, registry version) sealed with a
 * server-only AES-256-GCM key (JWE `dir` + `A256GCM`). GCM authenticates: a forged, altered,
 * truncated or re-encrypted authkey fails to open. The site id is also in the protected header
 * (authenticated as additional data) so the SDK can read which site it is without the key.
 */
export const AUTHKEY_TYP = 'passport-authkey'
export const MAX_AUTHKEY_LENGTH = 2048
const COMPACT_JWE = /^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

export interface AuthkeyContent {
  siteId: string
  origins: string[]
  version: number
}

export async function sealAuthkey(key: webcrypto.CryptoKey, content: AuthkeyContent): Promise<string> {
  const payload = new TextEncoder().encode(
    JSON.stringify({ site: content.siteId, origins: content.origins, ver: content.version }),
  )
  return new CompactEncrypt(payload)
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', typ: AUTHKEY_TYP, site: content.siteId })
    .encrypt(key)
}

/** Opens an authkey; every kind of failure gives the same `null`. */
export async function openAuthkey(key: webcrypto.CryptoKey, authkey: string): Promise<AuthkeyContent | null> {
  if (authkey.length > MAX_AUTHKEY_LENGTH || !COMPACT_JWE.test(authkey)) return null
  try {
    const { plaintext, protectedHeader } = await compactDecrypt(authkey, key, {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
      // We never compress authkeys: refuse `zip` outright rather than inflate (decompression bomb).
      maxDecompressedLength: 0,
    })
    if (protectedHeader.typ !== AUTHKEY_TYP) return null
    const body = JSON.parse(new TextDecoder().decode(plaintext)) as Record<string, unknown>
    if (
      typeof body.site !== 'string' ||
      body.site !== protectedHeader.site ||
      !Array.isArray(body.origins) ||
      !body.origins.every((o) => typeof o === 'string') ||
      !Number.isInteger(body.ver)
    ) {
      return null
    }
    return { siteId: body.site, origins: body.origins as string[], version: body.ver as number }
  } catch {
    return null
  }
}

/** How many distinct authkeys `openAuthkeyCached` remembers per authkey key (a few per site). */
export const AUTHKEY_CACHE_SIZE = 256
const opened = new WeakMap<webcrypto.CryptoKey, Map<string, AuthkeyContent>>()

/**
 * `openAuthkey` that remembers what opened, so a frame's every refresh does not decrypt its
 * site's authkey again (a JWE decryption on the thread pool each time). Safe to cache: what an
 * authkey holds never changes for the same key and the same string, and the caller still checks
 * it against the live registry on every use. Keyed by the exact string, per key (a new authkey
 * key starts empty); least recently used first out. Failures are not remembered: each still
 * costs a decryption, as before, and cannot push a good entry out.
 */
export async function openAuthkeyCached(
  key: webcrypto.CryptoKey,
  authkey: string,
): Promise<AuthkeyContent | null> {
  let cache = opened.get(key)
  const hit = cache?.get(authkey)
  if (cache && hit) {
    cache.delete(authkey)
    cache.set(authkey, hit)
    return hit
  }
  const content = await openAuthkey(key, authkey)
  if (content === null) return null
  const frozen = Object.freeze({ ...content, origins: Object.freeze([...content.origins]) as string[] })
  if (!cache) {
    cache = new Map()
    opened.set(key, cache)
  }
  cache.set(authkey, frozen)
  if (cache.size > AUTHKEY_CACHE_SIZE) cache.delete(cache.keys().next().value as string)
  return frozen
}
