import { sign } from 'node:crypto'
import { errors, jwtVerify } from 'jose'
import type { KeySet, SigningKey } from './keys.ts'
import { SIGNING_ALG } from './keys.ts'

/** RFC 9068 access-token type: a token of another kind can never pass as a site token. */
export const SITE_TOKEN_TYP = 'at+jwt'
/** Clock tolerance when checking `exp`/`iat` (requirement: at most 15 s). */
export const CLOCK_TOLERANCE_SECONDS = 5
/** Anything longer is not one of ours; refuse it before any parsing or crypto. */
export const MAX_TOKEN_LENGTH = 2048
/** No site token lives longer than a day (a site's configured lifetime is at most this). */
export const MAX_TOKEN_LIFETIME_SECONDS = 86_400
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

export interface SiteTokenClaims {
  iss: string
  aud: string
  sub: string
  sid: string
  jti: string
  iat: number
  exp: number
}

export interface SiteTokenInput {
  issuer: string
  siteId: string
  userId: string
  sessionId: string
  jti: string
  issuedAtMs: number
  expiresAtMs: number
  /** RFC 9449 `cnf.jkt`: the token works at the site backend only with a DPoP proof by this key. */
  confirmationKey?: string
}

/** A key's protected header, base64url: the same for every token the key signs. */
const encodedHeaders = new WeakMap<SigningKey, string>()
const base64url = (text: string) => Buffer.from(text).toString('base64url')

/**
 * Signs a site token: exactly the bytes jose's `SignJWT` produces for the same header and
 * claims (Ed25519 is deterministic), with the header encoded once per key and node:crypto's
 * synchronous Ed25519 called directly, without jose's per-call building and checking and
 * without WebCrypto's thread-pool round trip (minting signs inside the store's transaction).
 */
export async function signSiteToken(keys: KeySet, input: SiteTokenInput): Promise<string> {
  const key = keys.current
  let header = encodedHeaders.get(key)
  if (header === undefined) {
    header = base64url(JSON.stringify({ alg: SIGNING_ALG, typ: SITE_TOKEN_TYP, kid: key.kid }))
    encodedHeaders.set(key, header)
  }
  const iat = Math.floor(input.issuedAtMs / 1000)
  const exp = Math.floor(input.expiresAtMs / 1000)
  if (!Number.isFinite(iat) || !Number.isFinite(exp)) {
    throw new TypeError('token times must be finite numbers')
  }
  // The claims in the order jose's builder set them: sid, iss, aud, sub, jti, iat, exp.
  const payload = JSON.stringify({
    sid: input.sessionId,
    iss: input.issuer,
    aud: input.siteId,
    sub: input.userId,
    jti: input.jti,
    iat,
    exp,
    ...(input.confirmationKey ? { cnf: { jkt: input.confirmationKey } } : {}),
  })
  const signingInput = `${header}.${base64url(payload)}`
  const signature = sign(null, Buffer.from(signingInput), key.keyObject)
  return `${signingInput}.${signature.toString('base64url')}`
}

export type VerifyResult =
  | { ok: true; claims: SiteTokenClaims }
  | { ok: false; reason: 'malformed' | 'invalid' | 'expired' }

/**
 * Verifies a site token: one pinned algorithm, our issuer, exactly the expected audience, the
 * access-token `typ`, required claims, and a key chosen by `kid` from our own set only (never
 * from `jwk`/`jku`/`x5c` in the header). Every failure becomes a reason value; jose's messages
 * never leave this function.
 */
export async function verifySiteToken(
  keys: KeySet,
  token: string,
  expected: {
    issuer: string
    audience?: string
    nowMs: number
    /** For revocation: a token expired up to a day ago still names its device. */
    allowExpired?: boolean
  },
): Promise<VerifyResult> {
  if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) return { ok: false, reason: 'malformed' }
  try {
    const { payload } = await jwtVerify(
      token,
      (header) => {
        const key = typeof header.kid === 'string' ? keys.publicKeys.get(header.kid) : undefined
        if (!key) throw new errors.JWKSNoMatchingKey()
        return key
      },
      {
        algorithms: [SIGNING_ALG],
        issuer: expected.issuer,
        ...(expected.audience === undefined ? {} : { audience: expected.audience }),
        typ: SITE_TOKEN_TYP,
        requiredClaims: ['iss', 'aud', 'sub', 'sid', 'jti', 'iat', 'exp'],
        clockTolerance: expected.allowExpired ? MAX_TOKEN_LIFETIME_SECONDS : CLOCK_TOLERANCE_SECONDS,
        currentDate: new Date(expected.nowMs),
        maxTokenAge: MAX_TOKEN_LIFETIME_SECONDS,
      },
    )
    return ownChecks(payload, expected.nowMs)
  } catch (err) {
    if (err instanceof errors.JWTExpired) return { ok: false, reason: 'expired' }
    return { ok: false, reason: 'invalid' }
  }
}

/** What `verifySiteToken` checks beyond jose's own claim checks. */
function ownChecks(payload: Record<string, unknown>, nowMs: number): VerifyResult {
  if (
    typeof payload.aud !== 'string' ||
    typeof payload.sid !== 'string' ||
    typeof payload.iat !== 'number' ||
    typeof payload.exp !== 'number' ||
    // Issued in the future, or valid for longer than any token we mint (B10).
    payload.iat > nowMs / 1000 + CLOCK_TOLERANCE_SECONDS ||
    payload.exp - payload.iat > MAX_TOKEN_LIFETIME_SECONDS
  ) {
    return { ok: false, reason: 'invalid' }
  }
  return { ok: true, claims: payload as unknown as SiteTokenClaims }
}

/** A token's header and claims, read without checking anything. */
export interface DecodedSiteToken {
  header: { alg: string; typ: string; kid: string }
  claims: Record<string, unknown>
}

const HEADER_FIELDS = ['alg', 'kid', 'typ'].join()

/**
 * Reads a token shaped like the ones `signSiteToken` makes (a header of exactly `alg`, `typ`
 * and `kid`, a JSON object for claims), checking nothing else; null for any other shape. Its
 * use is to find the token's stored row by `claims.jti`; nothing it returns may be trusted
 * until `checkMintedSiteToken` (after the stored hash matched) or `verifySiteToken` said so.
 */
export function decodeSiteToken(token: string): DecodedSiteToken | null {
  if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) return null
  const dot = token.indexOf('.')
  const end = token.indexOf('.', dot + 1)
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString()) as unknown
    const claims = JSON.parse(Buffer.from(token.slice(dot + 1, end), 'base64url').toString()) as unknown
    if (
      !isPlainObject(header) ||
      !isPlainObject(claims) ||
      Object.keys(header).sort().join() !== HEADER_FIELDS ||
      typeof header.alg !== 'string' ||
      typeof header.typ !== 'string' ||
      typeof header.kid !== 'string'
    ) {
      return null
    }
    return { header: header as DecodedSiteToken['header'], claims }
  } catch {
    return null
  }
}

const isPlainObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x)

/** jose compares `typ` as a media type: `at+jwt` and `application/at+jwt`, in any case. */
const mediaType = (typ: string) =>
  typ.includes('/') ? typ.toLowerCase() : `application/${typ.toLowerCase()}`

/**
 * Every check of `verifySiteToken` except the signature, with the same outcome at every
 * instant: the key must still be one of ours (a retired key ends its tokens), then the
 * algorithm, type, issuer, audience, required claims and times, in jose's order and with its
 * rules. Only for a token whose exact bytes the caller knows we signed: the SHA-256 of the
 * token matched the one kept on its row when it was minted. Nothing else can match that hash,
 * so verifying the Ed25519 signature again (most of an introspection's cost) proves nothing more.
 */
export function checkMintedSiteToken(
  keys: KeySet,
  decoded: DecodedSiteToken,
  expected: { issuer: string; audience?: string; nowMs: number; allowExpired?: boolean },
): VerifyResult {
  const invalid: VerifyResult = { ok: false, reason: 'invalid' }
  const expired: VerifyResult = { ok: false, reason: 'expired' }
  const { header, claims } = decoded
  if (!keys.publicKeys.has(header.kid) || header.alg !== SIGNING_ALG) return invalid
  if (mediaType(header.typ) !== mediaType(SITE_TOKEN_TYP)) return invalid
  for (const claim of ['iss', 'aud', 'sub', 'sid', 'jti', 'iat', 'exp']) {
    if (!Object.hasOwn(claims, claim)) return invalid
  }
  if (claims.iss !== expected.issuer) return invalid
  if (expected.audience !== undefined) {
    const aud = claims.aud
    if (
      typeof aud === 'string'
        ? aud !== expected.audience
        : !Array.isArray(aud) || !aud.includes(expected.audience)
    )
      return invalid
  }
  const tolerance = expected.allowExpired ? MAX_TOKEN_LIFETIME_SECONDS : CLOCK_TOLERANCE_SECONDS
  const now = Math.floor(expected.nowMs / 1000)
  const { iat, nbf, exp } = claims
  if (typeof iat !== 'number') return invalid
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + tolerance)) return invalid
  if (typeof exp !== 'number') return invalid
  if (exp <= now - tolerance) return expired
  const age = now - iat
  if (age - tolerance > MAX_TOKEN_LIFETIME_SECONDS) return expired
  if (age < -tolerance) return invalid
  return ownChecks(claims, expected.nowMs)
}
