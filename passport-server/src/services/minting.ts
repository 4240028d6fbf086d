import type { EndReason } from '../../../passport-frame/src/protocol/codes.ts'
import type { AppDeps } from '../deps.ts'
import type { SessionRecord, SiteRecord, TokenRecord } from '../store/types.ts'
import { signSiteToken, verifySiteToken } from '../tokens/site-token.ts'

export interface MintedToken {
  token: string
  jti: string
  expiresAt: number
}

/**
 * Mints a site-bound token for a session. Under the site's one-device policy the same
 * transaction revokes the user's tokens on this site held by every other session and bars
 * those sessions from taking the site back silently: newest wins, atomically.
 */
export async function mintSiteToken(
  deps: Pick<AppDeps, 'store' | 'keys' | 'clock' | 'config' | 'events' | 'log'>,
  site: SiteRecord,
  session: SessionRecord,
): Promise<MintedToken> {
  const issuedAt = deps.clock.now()
  const record: TokenRecord = {
    jti: crypto.randomUUID(),
    siteId: site.id,
    userId: session.userId,
    sessionId: session.id,
    issuedAt,
    expiresAt: issuedAt + site.tokenTtlSeconds * 1000,
    revokedAt: null,
    revokeReason: null,
  }
  // Sign first (CPU only, no state): the transaction then holds the store as briefly as possible.
  // A token whose record never commits is worthless, since every check looks the record up.
  const token = await signSiteToken(deps.keys, {
    issuer: deps.config.issuer,
    siteId: site.id,
    userId: session.userId,
    sessionId: session.id,
    jti: record.jti,
    issuedAtMs: record.issuedAt,
    expiresAtMs: record.expiresAt,
  })
  const replaced = await deps.store.transaction(async (tx) => {
    const live = await tx.sessions.get(session.id)
    if (!live || live.endedAt !== null) return null
    const others = site.oneDevicePerSite
      ? await tx.tokens.revokeOtherDevices(session.userId, site.id, session.id, issuedAt, 'replaced')
      : []
    const otherSessions = [...new Set(others.map((t) => t.sessionId))]
    for (const sessionId of otherSessions) {
      await tx.sessions.exclude({ sessionId, siteId: site.id, reason: 'replaced', at: issuedAt })
    }
    await tx.sessions.clearExclusion(session.id, site.id)
    await tx.tokens.create(record)
    return otherSessions
  })
  if (replaced === null) throw new Error('session ended while minting')
  deps.log('authn_token_created', { site: site.id, user: session.userId, replaced: replaced.length })
  for (const sessionId of replaced) {
    await deps.events.publish({
      type: 'site_access_ended',
      userId: session.userId,
      sessionId,
      siteId: site.id,
      reason: 'replaced',
      at: issuedAt,
    })
  }
  return { token, jti: record.jti, expiresAt: record.expiresAt }
}

export type TokenStatus =
  | { valid: true; record: TokenRecord }
  | { valid: false; reason: EndReason; expiresAt: number | null }

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
  const verified = await verifySiteToken(deps.keys, token, {
    issuer: deps.config.issuer,
    audience: siteId,
    nowMs: now,
  })
  if (!verified.ok) {
    return { valid: false, reason: verified.reason === 'expired' ? 'expired' : 'unknown', expiresAt: null }
  }
  const record = await deps.store.tokens.get(verified.claims.jti)
  if (!record || record.siteId !== siteId) return { valid: false, reason: 'unknown', expiresAt: null }
  if (record.revokedAt !== null)
    return { valid: false, reason: record.revokeReason ?? 'revoked', expiresAt: record.expiresAt }
  if (record.expiresAt <= now) return { valid: false, reason: 'expired', expiresAt: record.expiresAt }
  return { valid: true, record }
}
