import { createRemoteJWKSet, errors, jwtVerify } from 'jose'
import { createProofChecker, type ProofContext } from './dpop.ts'

export type { ProofContext }

/**
 * The site backend SDK: turns a Passport token into a user, framework-free.
 *
 * 1. Local verification against the passport's JWKS (fetched once, refetched on an unknown
 *    `kid`, so key rotation needs no restart), pinned to EdDSA, the issuer, this site as the
 *    audience and the access-token `typ`.
 * 2. A revocation check: RFC 7662 introspection, whose "active" answer is cached per token for
 *    `revocationCacheMs` (default 5 s; 0 = ask every time). A token replaced by a newer
 *    sign-in, signed out or revoked is refused within that time, not at its expiry.
 * 3. When the passport says inactive, the status endpoint tells why (`replaced`,
 *    `signed_out`, `revoked`, `expired`), for the message the site shows its user.
 *
 * @example
 * const verifier = createSiteVerifier({ issuer: 'https://passport.example.com', siteId: 'news', clientSecret })
 * const result = await verifier.verify(token)
 * if (result.ok) console.log(result.user.sub) else console.log(result.reason)
 */
export interface SiteVerifierOptions {
  /** The passport's public origin: the tokens' `iss`. */
  issuer: string
  /** This site's id: the tokens' `aud` and the client id for introspection. */
  siteId: string
  /** The client secret printed by `passport site add`. */
  clientSecret: string
  /** Where this backend reaches the passport, when not at `issuer` (e.g. an internal address). */
  internalUrl?: string
  /** How long an "active" answer is trusted. Default 5000 ms. */
  revocationCacheMs?: number
  /** Clock, for tests. */
  now?: () => number
}

export interface PassportUser {
  sub: string
  sid: string
  username: string
  name: string
  /** Token expiry, ms since the epoch. */
  expiresAt: number
}

export interface IdTokenClaims {
  sub: string
  sid: string
  username: string
  name: string
}

export type VerifyFailure =
  | 'missing'
  | 'invalid'
  /** A DPoP-bound token (`cnf.jkt`) without a valid proof by its key for this request. */
  | 'invalid_proof'
  | 'expired'
  | 'replaced'
  | 'signed_out'
  | 'revoked'
  | 'unknown'
export type VerifyResult = { ok: true; user: PassportUser } | { ok: false; reason: VerifyFailure }

export type LogoutResult =
  | { ok: true; sub: string; sid: string; reason: VerifyFailure }
  | { ok: false; error: 'invalid' | 'replayed' }

const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'

const END_REASONS = new Set(['expired', 'replaced', 'signed_out', 'revoked', 'unknown'])
const MAX_CACHE_ENTRIES = 10_000

export function createSiteVerifier(options: SiteVerifierOptions) {
  const base = (options.internalUrl ?? options.issuer).replace(/\/$/, '')
  const now = options.now ?? Date.now
  const cacheMs = options.revocationCacheMs ?? 5000
  const authorization = `Basic ${Buffer.from(
    `${encodeURIComponent(options.siteId)}:${encodeURIComponent(options.clientSecret)}`,
  ).toString('base64')}`
  const jwks = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`))
  const active = new Map<string, { user: PassportUser; until: number }>()
  // Sessions whose access to this site the passport said ended (back-channel logout): why, and
  // when (seconds). Only tokens issued before then are refused: after a site-scoped end
  // (replaced, revoked) the same session may sign in to the site again. And logout tokens seen.
  const endedSessions = new Map<string, { reason: VerifyFailure; endedAt: number }>()
  const seenLogoutJtis = new Map<string, number>()

  const post = async (path: string, token: string) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { Authorization: authorization, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }),
    })
    if (!res.ok) throw new Error(`passport ${path} answered ${res.status}`)
    return (await res.json()) as Record<string, unknown>
  }

  const checkProof = createProofChecker(now)

  /**
   * `request` is needed for DPoP-bound tokens (sites registered with `--dpop-bound-tokens`):
   * the request's method, URL and `DPoP` header. Bearer tokens ignore it.
   */
  const verify = async (token: string | undefined | null, request?: ProofContext): Promise<VerifyResult> => {
    if (!token) return { ok: false, reason: 'missing' }
    let jti: string
    let sid: string
    let boundTo: string | null = null
    let iat: number
    try {
      const { payload } = await jwtVerify(token, jwks, {
        algorithms: ['EdDSA'],
        issuer: options.issuer,
        audience: options.siteId,
        typ: 'at+jwt',
        clockTolerance: 5,
        requiredClaims: ['sub', 'sid', 'jti', 'exp', 'iat'],
        currentDate: new Date(now()),
      })
      jti = String(payload.jti)
      sid = String(payload.sid)
      iat = Number(payload.iat)
      const cnf = payload.cnf as { jkt?: unknown } | undefined
      if (cnf !== undefined) boundTo = typeof cnf?.jkt === 'string' ? cnf.jkt : ''
    } catch (err) {
      return { ok: false, reason: err instanceof errors.JWTExpired ? 'expired' : 'invalid' }
    }
    if (boundTo !== null && !(boundTo !== '' && (await checkProof(token, boundTo, request)))) {
      return { ok: false, reason: 'invalid_proof' }
    }
    // Issued in the very second of the end: it may be either side of it, so the passport decides.
    const ended = endedSessions.get(sid)
    if (ended && iat < ended.endedAt) return { ok: false, reason: ended.reason }
    const cached = active.get(jti)
    if (cached && cached.until > now()) return { ok: true, user: cached.user }

    const answer = await post('/token/introspect', token)
    if (answer.active === true) {
      const user: PassportUser = {
        sub: String(answer.sub),
        sid: String(answer.sid),
        username: String(answer.username),
        name: String(answer.name),
        expiresAt: Number(answer.exp) * 1000,
      }
      if (cacheMs > 0) {
        if (active.size >= MAX_CACHE_ENTRIES) active.clear()
        active.set(jti, { user, until: Math.min(now() + cacheMs, user.expiresAt) })
      }
      return { ok: true, user }
    }
    active.delete(jti)
    const status = await post('/token/status', token)
    const reason =
      typeof status.reason === 'string' && END_REASONS.has(status.reason) ? status.reason : 'unknown'
    return { ok: false, reason: reason as 'unknown' }
  }

  /**
   * Verifies an OIDC back-channel logout token (signature, issuer, this site as audience,
   * `typ: logout+jwt`, fresh `iat`, the logout event, a `sid`, no `nonce`, not seen before) and
   * remembers the session as ended, so every later token of it is refused here at once.
   */
  const verifyLogoutToken = async (token: string | undefined | null): Promise<LogoutResult> => {
    if (!token) return { ok: false, error: 'invalid' }
    let payload: Record<string, unknown>
    try {
      ;({ payload } = await jwtVerify(token, jwks, {
        algorithms: ['EdDSA'],
        issuer: options.issuer,
        audience: options.siteId,
        typ: 'logout+jwt',
        clockTolerance: 5,
        maxTokenAge: '3m',
        requiredClaims: ['iat', 'jti', 'sid', 'sub', 'events'],
        currentDate: new Date(now()),
      }))
    } catch {
      return { ok: false, error: 'invalid' }
    }
    const events = payload.events as Record<string, unknown> | undefined
    const event = events?.[BACKCHANNEL_LOGOUT_EVENT]
    if ('nonce' in payload || typeof event !== 'object' || event === null || Array.isArray(event)) {
      return { ok: false, error: 'invalid' }
    }
    const jti = String(payload.jti)
    for (const [seen, until] of seenLogoutJtis) if (until <= now()) seenLogoutJtis.delete(seen)
    if (seenLogoutJtis.has(jti)) return { ok: false, error: 'replayed' }
    seenLogoutJtis.set(jti, now() + 5 * 60_000)
    const reason =
      typeof payload.reason === 'string' && END_REASONS.has(payload.reason)
        ? (payload.reason as VerifyFailure)
        : 'signed_out'
    const sid = String(payload.sid)
    // A passport that does not send `ended_at`: the token's signing time, never earlier than the end.
    const endedAt = Number.isInteger(payload.ended_at) ? Number(payload.ended_at) : Number(payload.iat)
    if (endedSessions.size >= MAX_CACHE_ENTRIES) endedSessions.clear()
    endedSessions.set(sid, { reason, endedAt: Math.max(endedAt, endedSessions.get(sid)?.endedAt ?? 0) })
    active.clear()
    return { ok: true, sub: String(payload.sub), sid, reason }
  }

  /**
   * An ID token straight from the token endpoint (the code exchange): signature, issuer, this
   * site as the audience, fresh; the passport's `sid`, username and name in it.
   */
  const verifyIdToken = async (token: unknown): Promise<IdTokenClaims | null> => {
    if (typeof token !== 'string') return null
    try {
      const { payload } = await jwtVerify(token, jwks, {
        algorithms: ['EdDSA'],
        issuer: options.issuer,
        audience: options.siteId,
        typ: 'JWT',
        clockTolerance: 5,
        maxTokenAge: '5m',
        requiredClaims: ['sub', 'sid', 'iat', 'exp'],
        currentDate: new Date(now()),
      })
      return {
        sub: String(payload.sub),
        sid: String(payload.sid),
        username: String(payload.preferred_username ?? ''),
        name: String(payload.name ?? ''),
      }
    } catch {
      return null
    }
  }

  return {
    verify,
    verifyLogoutToken,
    verifyIdToken,
    /** Forget cached answers, e.g. on a pushed revocation. */
    forget: (jti?: string) => (jti ? active.delete(jti) : active.clear()),
  }
}

export type SiteVerifier = ReturnType<typeof createSiteVerifier>
