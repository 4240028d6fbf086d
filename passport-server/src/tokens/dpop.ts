import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto'

/**
 * DPoP proofs (RFC 9449): a JWT the frame signs with its own non-extractable key for every
 * request it makes, so that holding what a page or a site backend holds (the site token, the
 * authkey) is never enough to act as the frame.
 *
 * Verified with node:crypto directly (ECDSA P-256 is one synchronous call), not with jose:
 * a proof's key is in its own header, so there is no key set to choose from, and this runs on
 * every frame request, including every refresh.
 */

/** The one algorithm accepted: what WebCrypto gives the frame (ECDSA P-256, SHA-256). */
export const DPOP_ALG = 'ES256'
export const DPOP_TYP = 'dpop+jwt'
/** A proof is a few hundred bytes; anything longer is refused before parsing. */
export const MAX_PROOF_LENGTH = 2048
/**
 * Without a server nonce, how old a proof's `iat` may be, and how far ahead of the server's
 * clock. With one, the nonce's age is what counts: a frame whose device clock jumped (or that
 * slept) still dates its proofs right enough, and the server decides what is fresh.
 */
export const PROOF_MAX_AGE_MS = 60_000
export const PROOF_MAX_FUTURE_MS = 10_000

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/
const COORDINATE = /^[A-Za-z0-9_-]{43}$/
const JTI = /^[\x21-\x7e]{8,64}$/

export interface ProofExpectation {
  /** HTTP method the proof must name (`htm`). */
  method: string
  /** The URL the proof must name (`htu`), without query or fragment. */
  url: string
  nowMs: number
  /** Judge freshness by `iat` (true), or leave it to a nonce the caller checks (false). */
  checkIat: boolean
  /** The access token sent with the proof: its SHA-256 must be the proof's `ath`. */
  accessToken?: string
  /** The nonce the proof must carry, when the caller requires one it knows (a socket's challenge). */
  nonce?: string
}

export type ProofResult =
  | {
      ok: true
      /** RFC 7638 thumbprint of the proof's key: what a credential is bound to. */
      jkt: string
      jti: string
      /** The proof's `nonce` claim, for the caller to judge; null when absent. */
      nonce: string | null
    }
  | { ok: false; reason: string }

const base64urlSha256 = (text: string) => createHash('sha256').update(text).digest('base64url')

/** Public keys by thumbprint: importing a JWK costs more than the verification itself. */
const keyCache = new Map<string, KeyObject>()
const MAX_CACHED_KEYS = 10_000

function publicKeyFor(jkt: string, jwk: { kty: string; crv: string; x: string; y: string }): KeyObject {
  let key = keyCache.get(jkt)
  if (key === undefined) {
    // Throws for a point that is not on the curve.
    key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, format: 'jwk' })
    if (keyCache.size >= MAX_CACHED_KEYS) keyCache.delete(keyCache.keys().next().value as string)
    keyCache.set(jkt, key)
  }
  return key
}

const parsePart = (part: string): Record<string, unknown> | null => {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null
  } catch {
    return null
  }
}

/** RFC 7638 thumbprint of a P-256 public key: SHA-256 of its required members in order. */
export function jwkThumbprint(jwk: { x: string; y: string }): string {
  return base64urlSha256(`{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`)
}

/** `ath`: base64url SHA-256 of the access token (RFC 9449 §4.2). */
export function accessTokenHash(token: string): string {
  return base64urlSha256(token)
}

/** The `htu` form of a URL: scheme, host, port and path; no query, no fragment. */
export function proofUrl(url: string): string | null {
  try {
    const parsed = new URL(url)
    return `${parsed.origin}${parsed.pathname}`
  } catch {
    return null
  }
}

/**
 * A proof header that passed, by its exact base64url text: a frame sends the same header (its
 * key) with every proof, and the same text always decodes to the same header, so its checks,
 * its thumbprint and its key are worked out once. Only headers that passed are kept.
 */
const headerCache = new Map<string, { ok: true; jkt: string; key: KeyObject }>()

type HeaderResult = { ok: true; jkt: string; key: KeyObject } | { ok: false; reason: string }

/** `typ`, the pinned algorithm, a public P-256 key: its thumbprint and the imported key. */
function proofHeader(headerPart: string): HeaderResult {
  const known = headerCache.get(headerPart)
  if (known !== undefined) return known
  const header = parsePart(headerPart)
  if (!header) return { ok: false, reason: 'malformed' }
  if (header.typ !== DPOP_TYP) return { ok: false, reason: 'typ' }
  if (header.alg !== DPOP_ALG) return { ok: false, reason: 'alg' }
  const jwk = header.jwk as Record<string, unknown> | undefined
  if (
    typeof jwk !== 'object' ||
    jwk === null ||
    jwk.kty !== 'EC' ||
    jwk.crv !== 'P-256' ||
    typeof jwk.x !== 'string' ||
    typeof jwk.y !== 'string' ||
    !COORDINATE.test(jwk.x) ||
    !COORDINATE.test(jwk.y) ||
    'd' in jwk // a private key in a header is a client bug we refuse to reward
  ) {
    return { ok: false, reason: 'jwk' }
  }
  const jkt = jwkThumbprint({ x: jwk.x, y: jwk.y })
  let key: KeyObject
  try {
    key = publicKeyFor(jkt, { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y })
  } catch {
    return { ok: false, reason: 'jwk' }
  }
  const result = { ok: true as const, jkt, key }
  if (headerCache.size >= MAX_CACHED_KEYS) headerCache.delete(headerCache.keys().next().value as string)
  headerCache.set(headerPart, result)
  return result
}

/** Whether each expected URL is already in `htu` form (then a proof naming it exactly needs no parsing). */
const normalUrls = new Map<string, boolean>()

/** `proofUrl(htu) === url`, without parsing `htu` when it is exactly `url` and `url` is in `htu` form. */
function sameProofUrl(htu: string, url: string): boolean {
  if (htu === url) {
    let normal = normalUrls.get(url)
    if (normal === undefined) {
      normal = proofUrl(url) === url
      if (normalUrls.size < 64) normalUrls.set(url, normal)
    }
    if (normal) return true
  }
  return proofUrl(htu) === url
}

/**
 * Checks a DPoP proof (RFC 9449 §4.3): shape, `typ`, the pinned algorithm, a public P-256 key
 * in the header and the signature by it, `htm`, `htu`, `iat` within the window, `jti`, `ath`
 * for a token sent with it, and the nonce where the caller names one. Replay of a `jti` and
 * the server nonce's freshness are the caller's (they need state); so is `iat` when the caller
 * judges freshness by a nonce (`checkIat: false`).
 */
export function verifyDpopProof(proof: string | undefined, expected: ProofExpectation): ProofResult {
  if (proof === undefined || proof.length === 0) return { ok: false, reason: 'missing' }
  if (proof.length > MAX_PROOF_LENGTH || !COMPACT_JWS.test(proof)) return { ok: false, reason: 'malformed' }
  const [headerPart, payloadPart, signaturePart] = proof.split('.') as [string, string, string]
  const claims = parsePart(payloadPart)
  if (!claims) return { ok: false, reason: 'malformed' }
  const header = proofHeader(headerPart)
  if (!header.ok) return header
  const { jkt, key } = header
  let valid = false
  try {
    valid = verify(
      'sha256',
      Buffer.from(`${headerPart}.${payloadPart}`),
      { key, dsaEncoding: 'ieee-p1363' },
      Buffer.from(signaturePart, 'base64url'),
    )
  } catch {
    return { ok: false, reason: 'jwk' }
  }
  if (!valid) return { ok: false, reason: 'signature' }

  if (typeof claims.jti !== 'string' || !JTI.test(claims.jti)) return { ok: false, reason: 'jti' }
  if (claims.htm !== expected.method) return { ok: false, reason: 'htm' }
  if (typeof claims.htu !== 'string' || !sameProofUrl(claims.htu, expected.url))
    return { ok: false, reason: 'htu' }
  if (typeof claims.iat !== 'number' || !Number.isFinite(claims.iat)) return { ok: false, reason: 'iat' }
  const iatMs = claims.iat * 1000
  if (
    expected.checkIat &&
    (iatMs < expected.nowMs - PROOF_MAX_AGE_MS || iatMs > expected.nowMs + PROOF_MAX_FUTURE_MS)
  ) {
    return { ok: false, reason: 'iat' }
  }
  if (expected.accessToken !== undefined) {
    if (claims.ath !== accessTokenHash(expected.accessToken)) return { ok: false, reason: 'ath' }
  } else if (claims.ath !== undefined) {
    return { ok: false, reason: 'ath' }
  }
  const nonce = typeof claims.nonce === 'string' ? claims.nonce : null
  if (claims.nonce !== undefined && nonce === null) return { ok: false, reason: 'nonce' }
  if (expected.nonce !== undefined && nonce !== expected.nonce) return { ok: false, reason: 'nonce' }
  return { ok: true, jkt, jti: claims.jti, nonce }
}
