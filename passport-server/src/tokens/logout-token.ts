import { SignJWT } from 'jose'
import type { KeySet } from './keys.ts'
import { SIGNING_ALG } from './keys.ts'

/** OpenID Connect Back-Channel Logout 1.0: the token type and its one event. */
export const LOGOUT_TOKEN_TYP = 'logout+jwt'
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'
/** A logout token is good for two minutes: enough for retries, short enough to be useless later. */
export const LOGOUT_TOKEN_TTL_SECONDS = 120

/**
 * Signs a logout token for one site: `iss`, `aud` = the site, `sub` and `sid`, `iat`, `exp`,
 * `jti`, and the back-channel logout event. Never a `nonce` (the spec forbids it). Two claims of
 * our own: `reason`, and `ended_at` (seconds), when the access ended: `iat` is when this delivery
 * attempt was signed, up to half a minute later on a retry. A site-scoped end (replaced,
 * revoked) leaves the session alive, so the site SDK refuses only its tokens issued before then.
 */
export function signLogoutToken(
  keys: KeySet,
  input: {
    issuer: string
    siteId: string
    userId: string
    sessionId: string
    reason: string
    endedAtMs: number
    nowMs: number
  },
): Promise<string> {
  const iat = Math.floor(input.nowMs / 1000)
  return new SignJWT({
    sid: input.sessionId,
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} },
    reason: input.reason,
    ended_at: Math.floor(input.endedAtMs / 1000),
  })
    .setProtectedHeader({ alg: SIGNING_ALG, typ: LOGOUT_TOKEN_TYP, kid: keys.current.kid })
    .setIssuer(input.issuer)
    .setAudience(input.siteId)
    .setSubject(input.userId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + LOGOUT_TOKEN_TTL_SECONDS)
    .setJti(crypto.randomUUID())
    .sign(keys.current.privateKey)
}
