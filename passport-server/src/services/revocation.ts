import { sameSecret, sha256 } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import type { SiteRecord } from '../store/types.ts'
import { verifySiteToken } from '../tokens/site-token.ts'
import { recordAudit } from './audit.ts'
import { familyCredential, familyKeyOf, parseFamilyCredential } from './minting.ts'
import { endSiteAccess } from './site-access.ts'

/**
 * RFC 7009 revocation by a site backend: the device behind the token (an access token or a
 * refresh credential of this site) loses this site, as if the site signed it out: its tokens
 * and refresh credentials for the site are revoked and it may not come back silently. Tokens
 * of other sites, unknown or malformed values change nothing (and, per RFC 7009, still get 200).
 */
export async function revokeForSite(
  deps: Pick<AppDeps, 'store' | 'keys' | 'clock' | 'config' | 'events' | 'log'>,
  site: SiteRecord,
  token: string,
): Promise<boolean> {
  const now = deps.clock.now()
  let holder: { sessionId: string; userId: string } | null = null
  const named = parseFamilyCredential(token)
  if (named) {
    // A refresh credential of a family rotated in place: any genuine generation names the device.
    const family = await deps.store.refresh.getFamily(named.familyId)
    const genuine = sameSecret(
      token,
      familyCredential(await familyKeyOf(deps), named.familyId, named.generation),
    )
    if (family && genuine && family.siteId === site.id && named.generation <= family.generation)
      holder = { sessionId: family.sessionId, userId: family.userId }
  } else if (token.includes('.')) {
    // An expired token still names its device; only a signature we made for this site counts.
    const verified = await verifySiteToken(deps.keys, token, {
      issuer: deps.config.issuer,
      audience: site.id,
      nowMs: now,
      allowExpired: true,
    })
    if (verified.ok) holder = { sessionId: verified.claims.sid, userId: verified.claims.sub }
  } else if (/^[A-Za-z0-9_-]{43}$/.test(token)) {
    const record = await deps.store.refresh.get(sha256(token))
    if (record && record.siteId === site.id) holder = { sessionId: record.sessionId, userId: record.userId }
  }
  if (!holder) return false
  const ended = await endSiteAccess(deps, holder, site.id)
  if (!ended) return false
  deps.log('authn_token_revoked', { site: site.id, user: holder.userId })
  await recordAudit(deps, {
    type: 'site_access_ended',
    actor: `site:${site.id}`,
    userId: holder.userId,
    siteId: site.id,
    sessionId: holder.sessionId,
    detail: { reason: 'revoked' },
  })
  return true
}
