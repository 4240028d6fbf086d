import type { EndReason } from '../../../passport-frame/src/protocol/codes.ts'
import { sameSecret, sha256 } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import type { StoredToken, TokenHolder, TokenRecord } from '../store/types.ts'
import {
  checkMintedSiteToken,
  decodeSiteToken,
  type VerifyResult,
  verifySiteToken,
} from '../tokens/site-token.ts'

/**
 * Validity of site tokens: is this token, presented for this site, valid now, and why not.
 * What introspection, `/token/status`, the frame's check and the live channel all ask.
 */

export type TokenStatus =
  | { valid: true; record: TokenRecord; holder: TokenHolder }
  | { valid: false; reason: EndReason; expiresAt: number | null }

/**
 * A presented token, judged as ours (signature, issuer, audience, type, times) and its row.
 *
 * The signature is checked by the token's bytes when it can be: its row (found by the `jti` it
 * claims) keeps the SHA-256 of the exact token minted for it, and a token that hashes to that
 * is the one we signed, so `checkMintedSiteToken` does every other check of `verifySiteToken`
 * without verifying Ed25519 again (the costliest step of an introspection by far). A token
 * whose hash does not match (forged, altered, re-encoded), with no row, or with a row written
 * without a hash, is verified in full as before. Either way the answer is the same.
 */
async function readSiteToken(
  deps: Pick<AppDeps, 'store' | 'keys'>,
  token: string,
  expected: { issuer: string; audience: string; nowMs: number; allowExpired?: boolean },
): Promise<{ verified: VerifyResult; row: StoredToken | null }> {
  const decoded = decodeSiteToken(token)
  const jti = typeof decoded?.claims.jti === 'string' ? decoded.claims.jti : null
  const stored = jti === null ? null : await deps.store.tokens.getWithHash(jti)
  if (decoded && stored?.tokenHash && sameSecret(stored.tokenHash, sha256(token))) {
    return { verified: checkMintedSiteToken(deps.keys, decoded, expected), row: stored }
  }
  const verified = await verifySiteToken(deps.keys, token, expected)
  // The row of the jti the signature vouches for (a kept row when it was just read above).
  return { verified, row: verified.ok ? await deps.store.tokens.getWithHash(verified.claims.jti) : null }
}

/**
 * Is this token, presented for this site, valid right now? Signature, issuer, audience, type
 * and expiry first; then the server-side record, which knows about newest-wins replacement,
 * sign-out and revocation before the token's own expiry.
 */
export async function checkSiteToken(
  deps: Pick<AppDeps, 'store' | 'keys' | 'clock' | 'config'>,
  token: string,
  siteId: string,
): Promise<TokenStatus> {
  const now = deps.clock.now()
  const { verified, row } = await readSiteToken(deps, token, {
    issuer: deps.config.issuer,
    audience: siteId,
    nowMs: now,
  })
  if (!verified.ok) {
    return { valid: false, reason: verified.reason === 'expired' ? 'expired' : 'unknown', expiresAt: null }
  }
  if (!row || row.record.siteId !== siteId) return { valid: false, reason: 'unknown', expiresAt: null }
  const { record } = row
  if (record.revokedAt !== null)
    return { valid: false, reason: record.revokeReason ?? 'revoked', expiresAt: record.expiresAt }
  if (record.expiresAt <= now) return { valid: false, reason: 'expired', expiresAt: record.expiresAt }
  // A token outliving its account (deleted meanwhile) is no one's: nothing to vouch for.
  if (!row.holder) return { valid: false, reason: 'unknown', expiresAt: null }
  return { valid: true, record, holder: row.holder }
}

/** The one answer body for "is my token valid, and why not" (`/token/status`, `/api/frame/check`). */
export function statusBody(status: TokenStatus, serverTime: number) {
  return {
    valid: status.valid,
    reason: status.valid ? null : status.reason,
    expires_at: status.valid ? status.record.expiresAt : status.expiresAt,
    server_time: serverTime,
  }
}

/**
 * The row of a token we signed for this site, expired or not (a sign-out may follow expiry by
 * up to a day: rows are kept that long), or null for anything else. For callers that must know
 * whose token it is before they judge it (the frame's API checks the key it is bound to).
 */
export async function findSiteTokenRow(
  deps: Pick<AppDeps, 'store' | 'keys' | 'clock' | 'config'>,
  token: string,
  siteId: string,
): Promise<TokenRecord | null> {
  const { verified, row } = await readSiteToken(deps, token, {
    issuer: deps.config.issuer,
    audience: siteId,
    nowMs: deps.clock.now(),
    allowExpired: true,
  })
  return verified.ok && row && row.record.siteId === siteId ? row.record : null
}
