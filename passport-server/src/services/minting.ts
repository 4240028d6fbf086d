import { randomSecret, sha256, timeOrderedId } from '../auth/random.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { publishEvents, recordEvent } from '../events/record.ts'
import type {
  RefreshRecord,
  SessionEventRecord,
  SessionRecord,
  SiteRecord,
  StoreTx,
  TokenRecord,
} from '../store/types.ts'
import { signSiteToken } from '../tokens/site-token.ts'
import { recordAudit } from './audit.ts'
import { isSessionLive } from './sessions.ts'

export interface MintedToken {
  token: string
  jti: string
  expiresAt: number
}

/** A token with its refresh credential, and the exact answer the frame receives. */
export interface MintedGrant extends MintedToken {
  refreshToken: string
  refreshHash: string
  /** The JSON response body, built once: a replay within the grace window returns these bytes. */
  body: string
}

/** Where a refresh credential sits in its family. A new sign-in starts a new family. */
export interface FamilySpec {
  familyId: string
  generation: number
  absoluteExpiresAt: number
}

type MintDeps = Pick<AppDeps, 'store' | 'keys' | 'clock' | 'config' | 'events' | 'log'>

/** Activity is recorded at most this often per session (or a hundredth of the idle timeout, if less). */
export const TOUCH_INTERVAL_MS = 60_000

/**
 * Whether a mint records the session's activity. Not on every refresh: several sites (tabs) of
 * one session refresh at once, and each write of the one session row would make the others'
 * transactions conflict (PostgreSQL refuses all but one of them under SERIALIZABLE, and they
 * run again); it is also one row write less for every refresh. The idle timeout is then
 * measured from a moment at most this much earlier than the last activity (a minute in the
 * 7 days of the default).
 */
export function needsTouch(
  session: SessionRecord,
  now: number,
  config: Pick<AppDeps['config'], 'sessionIdleSeconds'>,
): boolean {
  if (session.lastSeenAt === undefined) return true
  return now - session.lastSeenAt >= Math.min(TOUCH_INTERVAL_MS, config.sessionIdleSeconds * 10)
}

/**
 * Inside a transaction: newest wins (under the site's one-device policy, revoke the user's
 * tokens and refresh credentials on this site held by every other session and bar those
 * sessions from taking the site back silently), then the new token and refresh credential.
 * Returns the sessions that lost the site, for the caller to announce after commit.
 */
export async function mintInTransaction(
  deps: Pick<AppDeps, 'keys' | 'config'>,
  tx: StoreTx,
  input: {
    site: SiteRecord
    session: SessionRecord
    now: number
    family: FamilySpec
    /**
     * A new sign-in on the site (true) replaces other devices and lifts an exclusion of this
     * session from the site. A refresh (false) does neither: any device signed in later has
     * already ended this one, so no other can hold the site, and the caller has checked in this
     * transaction that the session holds no exclusion (it refuses the refresh otherwise).
     */
    newSignIn: boolean
    /**
     * Thumbprint of the frame key (DPoP) the device proved: the token and the refresh family are
     * bound to it, and only that key opens the frame's API with them. Null where no frame holds
     * the grant (CIBA): such a token opens nothing there.
     */
    jkt: string | null
  },
): Promise<{ grant: MintedGrant; replaced: SessionEventRecord[] }> {
  const { site, session, now, family, jkt } = input
  // Where the site asks for it, the token itself names the key (cnf.jkt) and its backend
  // demands a proof by it; otherwise the binding is the passport's alone (a bearer token).
  const boundToKey = site.dpopBoundTokens && jkt !== null
  const record: TokenRecord = {
    jti: timeOrderedId(now),
    siteId: site.id,
    userId: session.userId,
    sessionId: session.id,
    issuedAt: now,
    expiresAt: Math.min(now + site.tokenTtlSeconds * 1000, session.expiresAt),
    revokedAt: null,
    revokeReason: null,
    jkt,
  }
  const token = await signSiteToken(deps.keys, {
    issuer: deps.config.issuer,
    siteId: site.id,
    userId: session.userId,
    sessionId: session.id,
    jti: record.jti,
    issuedAtMs: record.issuedAt,
    expiresAtMs: record.expiresAt,
    ...(boundToKey ? { confirmationKey: jkt } : {}),
  })
  const refreshToken = randomSecret()
  const refresh: RefreshRecord = {
    hash: sha256(refreshToken),
    familyId: family.familyId,
    generation: family.generation,
    siteId: site.id,
    userId: session.userId,
    sessionId: session.id,
    issuedAt: now,
    idleExpiresAt: Math.min(now + site.refreshIdleSeconds * 1000, family.absoluteExpiresAt),
    absoluteExpiresAt: family.absoluteExpiresAt,
    usedAt: null,
    successorHash: null,
    successorSealed: null,
    revokedAt: null,
    revokeReason: null,
    jkt,
  }

  const replaced: SessionEventRecord[] = []
  if (site.oneDevicePerSite && input.newSignIn) {
    const tokens = await tx.tokens.revokeOtherDevices(session.userId, site.id, session.id, now, 'replaced')
    const credentials = await tx.refresh.revokeOtherDevices(
      session.userId,
      site.id,
      session.id,
      now,
      'replaced',
    )
    // A device counts as signed in on the site while it holds a live token or refresh credential.
    for (const sessionId of new Set([...tokens.map((t) => t.sessionId), ...credentials])) {
      await tx.sessions.exclude({ sessionId, siteId: site.id, reason: 'replaced', at: now })
      replaced.push(
        await recordEvent(tx, {
          type: 'site_access_ended',
          userId: session.userId,
          sessionId,
          siteId: site.id,
          reason: 'replaced',
          at: now,
        }),
      )
    }
  }
  // A refresh has just checked that the session holds no exclusion from the site: nothing to clear.
  if (input.newSignIn) await tx.sessions.clearExclusion(session.id, site.id)
  if (needsTouch(session, now, deps.config)) await tx.sessions.touch(session.id, now)
  await tx.tokens.create(record, sha256(token))
  await tx.refresh.create(refresh)

  const body = JSON.stringify({
    access_token: token,
    token_type: boundToKey ? 'DPoP' : 'Bearer',
    expires_in: Math.floor((record.expiresAt - now) / 1000),
    expires_at: record.expiresAt,
    refresh_token: refreshToken,
    refresh_at: Math.max(now, record.expiresAt - site.refreshBeforeSeconds * 1000),
    refresh_expires_at: refresh.idleExpiresAt,
    server_time: now,
  })
  return {
    grant: {
      token,
      jti: record.jti,
      expiresAt: record.expiresAt,
      refreshToken,
      refreshHash: refresh.hash,
      body,
    },
    replaced,
  }
}

/**
 * A new sign-in of a session on a site: a token and the first refresh credential of a new
 * family, newest wins, atomically. Refuses a session that has ended meanwhile.
 */
export async function mintSiteToken(
  deps: MintDeps,
  site: SiteRecord,
  session: SessionRecord,
  jkt: string | null,
): Promise<MintedGrant> {
  const now = deps.clock.now()
  const minted = await deps.store.transaction(async (tx) => {
    const live = await tx.sessions.get(session.id)
    if (!isSessionLive(live, now, deps.config)) return null
    return mintInTransaction(deps, tx, {
      site,
      session: live,
      now,
      newSignIn: true,
      jkt,
      family: {
        familyId: crypto.randomUUID(),
        generation: 0,
        absoluteExpiresAt: Math.min(now + site.refreshAbsoluteSeconds * 1000, live.expiresAt),
      },
    })
  })
  if (minted === null) throw new PassportError('invalid_grant', 'the sign-in behind this request has ended')
  deps.log('authn_token_created', { site: site.id, user: session.userId, replaced: minted.replaced.length })
  await publishEvents(deps, minted.replaced)
  await recordAudit(deps, {
    type: 'site_sign_in',
    actor: null,
    userId: session.userId,
    siteId: site.id,
    sessionId: session.id,
    detail: { replaced: minted.replaced.length },
  })
  for (const e of minted.replaced) {
    await recordAudit(deps, {
      type: 'site_replaced',
      actor: null,
      userId: e.userId,
      siteId: e.siteId,
      sessionId: e.sessionId,
      detail: { by_session: session.id },
    })
  }
  return minted.grant
}
