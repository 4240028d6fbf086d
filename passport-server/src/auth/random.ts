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
