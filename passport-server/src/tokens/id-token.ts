import { SignJWT } from 'jose'
import type { KeySet } from './keys.ts'
import { SIGNING_ALG } from './keys.ts'

/**
 * An OpenID Connect ID token, for the grants that must return one (CIBA, authorization code). Same key and
 * algorithm as site tokens, but `typ: JWT` and `aud` = the client: it can never pass as a site
 * token (whose verifier pins `typ: at+jwt`), and it grants nothing on its own.
 */
export function signIdToken(
  keys: KeySet,
  input: {
    issuer: string
    clientId: string
    userId: string
    authTimeMs: number
    issuedAtMs: number
    expiresAtMs: number
    /** More claims (`sid`, `preferred_username`, `name`); never the registered ones above. */
    claims?: Record<string, string>
  },
): Promise<string> {
  return new SignJWT({ ...input.claims, auth_time: Math.floor(input.authTimeMs / 1000) })
    .setProtectedHeader({ alg: SIGNING_ALG, typ: 'JWT', kid: keys.current.kid })
    .setIssuer(input.issuer)
    .setAudience(input.clientId)
    .setSubject(input.userId)
    .setIssuedAt(Math.floor(input.issuedAtMs / 1000))
    .setExpirationTime(Math.floor(input.expiresAtMs / 1000))
    .sign(keys.current.privateKey)
}
