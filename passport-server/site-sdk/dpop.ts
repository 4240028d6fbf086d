import { createHash } from 'node:crypto'
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify } from 'jose'

/**
 * DPoP proofs at a site backend (RFC 9449 §7), for sites registered with `--dpop-bound-tokens`:
 * such a token names its key (`cnf.jkt`), and is accepted only with a fresh proof by that key
 * for this very request. A token copied from a log or a proxy is then useless.
 *
 * Checked: `typ: dpop+jwt`, ES256 only, a public key in the header and the signature by it,
 * its thumbprint equal to the token's `cnf.jkt`, `htm` and `htu` (without query) equal to the
 * request's, `ath` equal to the token's hash, `iat` within a minute, and `jti` once (kept in
 * memory while its `iat` could still pass; several backend processes each keep their own).
 */
export interface ProofContext {
  method: string
  /** The request's full URL as the browser addressed it (scheme, host, port, path). */
  url: string
  /** The `DPoP` header, if any. */
  proof: string | null | undefined
}

const MAX_AGE_MS = 60_000
const MAX_SEEN = 100_000

export function createProofChecker(now: () => number) {
  const seen = new Map<string, number>()
  return async (token: string, jkt: string, request: ProofContext | undefined): Promise<boolean> => {
    if (!request?.proof || request.proof.length > 2048) return false
    let payload: Record<string, unknown>
    let jwk: Record<string, unknown>
    try {
      const verified = await jwtVerify(request.proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['ES256'],
        currentDate: new Date(now()),
      })
      payload = verified.payload
      jwk = verified.protectedHeader.jwk as Record<string, unknown>
    } catch {
      return false
    }
    let target: URL
    try {
      target = new URL(request.url)
    } catch {
      return false
    }
    const iat = typeof payload.iat === 'number' ? payload.iat * 1000 : Number.NaN
    if (
      (await calculateJwkThumbprint(jwk as Parameters<typeof calculateJwkThumbprint>[0])) !== jkt ||
      payload.htm !== request.method ||
      payload.htu !== `${target.origin}${target.pathname}` ||
      payload.ath !== createHash('sha256').update(token).digest('base64url') ||
      !(Math.abs(now() - iat) <= MAX_AGE_MS) ||
      typeof payload.jti !== 'string'
    ) {
      return false
    }
    for (const [key, until] of seen) {
      if (until > now()) break
      seen.delete(key)
    }
    const key = `${jkt}.${payload.jti}`
    if (seen.has(key) || seen.size >= MAX_SEEN) return false
    seen.set(key, now() + 2 * MAX_AGE_MS)
    return true
  }
}
