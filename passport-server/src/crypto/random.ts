import { hash, randomBytes, timingSafeEqual } from 'node:crypto'

/** 256 bits of randomness, URL-safe. Used for session cookies, codes and client secrets. */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url')
}

/** What the store keeps instead of a bearer secret: a leaked table does not hand out sessions. */
export function sha256(value: string): string {
  return hash('sha256', value, 'base64url')
}

/** PKCE S256 (RFC 7636): BASE64URL(SHA256(ASCII(code_verifier))). */
export function pkceChallenge(verifier: string): string {
  return sha256(verifier)
}

/** Compares two secrets (or their hashes) in constant time for equal lengths. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * A UUID of version 7 (RFC 9562): the time in milliseconds first, then 74 random bits. Rows
 * keyed by it (token ids) go in at the end of their index instead of on a random page of it,
 * so a refresh dirties, and its commit writes, fewer pages. Not a secret: a token id sits in
 * the signed token next to its `iat`.
 */
export function timeOrderedId(nowMs: number): string {
  const bytes = randomBytes(16)
  bytes.writeUIntBE(Math.max(0, Math.floor(nowMs)) % 2 ** 48, 0, 6)
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x70
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}
