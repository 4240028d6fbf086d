import { createHmac, createSecretKey, type KeyObject } from 'node:crypto'
import { randomSecret, sha256, timeOrderedId } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import type {
  RefreshFamilyRecord,
  RefreshRecord,
  SessionEventRecord,
  SessionRecord,
  SiteRecord,
  Store,
  StoreTx,
  TokenRecord,
} from '../store/types.ts'
import { signSiteToken } from '../tokens/site-token.ts'
import { recordAudit } from './audit.ts'
import { publishEvents } from './session-events.ts'
import { isSessionLive } from './sessions.ts'
import { recordSiteLoss } from './site-access.ts'

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

/**
 * Where a refresh credential sits in its family, and how it is kept: a new sign-in starts a
 * new family (`new`, one row rotated in place from then on); a rotation either moves that row
 * on from generation `from` (`advance`), or, for a family of an older server, adds a row of
 * the old kind beside the used one (`legacy`, see `RefreshRecord`).
 */
export type FamilySpec = {
  familyId: string
  generation: number
  absoluteExpiresAt: number
} & ({ kind: 'new' } | { kind: 'advance'; from: number } | { kind: 'legacy' })

/** The server key behind family credentials (HMAC-SHA256), sealed among the store's secrets. */
const FAMILY_KEY_SECRET = 'refresh_family_key'
const familyKeys = new WeakMap<Store, Promise<KeyObject>>()

/**
 * The family credential key of this store, read once per process (a failed read is tried
 * again). A KeyObject: node:crypto probes a Buffer key with a throw and catch on every HMAC.
 */
export function familyKeyOf(deps: Pick<AppDeps, 'store'>): Promise<KeyObject> {
  let key = familyKeys.get(deps.store)
  if (key === undefined) {
    key = deps.store.secrets
      .putIfAbsent(FAMILY_KEY_SECRET, randomSecret())
      .then((value) => createSecretKey(Buffer.from(value, 'base64url')))
    familyKeys.set(deps.store, key)
    key.catch(() => familyKeys.delete(deps.store))
  }
  return key
}

const FAMILY_CREDENTIAL =
  /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(0|[1-9][0-9]{0,8})\.([A-Za-z0-9_-]{43})$/

/** Generation `generation` of a family: `<familyId>.<generation>.<HMAC-SHA256(key, "<familyId>.<generation>")>`. */
export function familyCredential(key: KeyObject, familyId: string, generation: number): string {
  const name = `${familyId}.${generation}`
  return `${name}.${createHmac('sha256', key).update(name).digest('base64url')}`
}

/** The family and generation a credential names, if it has the shape of one (not yet checked). */
export function parseFamilyCredential(value: string): { familyId: string; generation: number } | null {
  const m = FAMILY_CREDENTIAL.exec(value)
  return m ? { familyId: m[1] as string, generation: Number(m[2]) } : null
}

/** The answer the frame (or a site backend) receives, byte for byte the same when rebuilt. */
export function grantBody(input: {
  token: string
  boundToKey: boolean
  issuedAt: number
  expiresAt: number
  refreshToken: string
  refreshExpiresAt: number
  refreshBeforeSeconds: number
}): string {
  return JSON.stringify({
    access_token: input.token,
    token_type: input.boundToKey ? 'DPoP' : 'Bearer',
    expires_in: Math.floor((input.expiresAt - input.issuedAt) / 1000),
    expires_at: input.expiresAt,
    refresh_token: input.refreshToken,
    refresh_at: Math.max(input.issuedAt, input.expiresAt - input.refreshBeforeSeconds * 1000),
    refresh_expires_at: input.refreshExpiresAt,
    server_time: input.issuedAt,
  })
}

/**
 * The answer of a family's current generation again (a retry within the grace window): the
 * same token (its id and times from the row; Ed25519 signatures are deterministic, so the
 * same bytes while the signing key is the same) and the same credential (derived). Writes
 * nothing.
 */
export async function rebuildFamilyAnswer(
  deps: Pick<AppDeps, 'keys' | 'config'>,
  key: KeyObject,
  site: SiteRecord,
  family: RefreshFamilyRecord,
): Promise<string> {
  const boundToKey = site.dpopBoundTokens && family.jkt !== null
  const token = await signSiteToken(deps.keys, {
    issuer: deps.config.issuer,
    siteId: site.id,
    userId: family.userId,
    sessionId: family.sessionId,
    jti: family.tokenJti,
    issuedAtMs: family.issuedAt,
    expiresAtMs: family.tokenExpiresAt,
    ...(boundToKey ? { confirmationKey: family.jkt as string } : {}),
  })
  return grantBody({
    token,
    boundToKey,
    issuedAt: family.issuedAt,
    expiresAt: family.tokenExpiresAt,
    refreshToken: familyCredential(key, family.familyId, family.generation),
    refreshExpiresAt: family.idleExpiresAt,
    refreshBeforeSeconds: site.refreshBeforeSeconds,
  })
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
    /** The family credential key (`familyKeyOf`), read before the transaction. */
    familyKey: KeyObject
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
  const refreshToken =
    family.kind === 'legacy'
      ? randomSecret()
      : familyCredential(input.familyKey, family.familyId, family.generation)
  const refreshHash = sha256(refreshToken)
  const idleExpiresAt = Math.min(now + site.refreshIdleSeconds * 1000, family.absoluteExpiresAt)

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
      replaced.push(
        await recordSiteLoss(tx, {
          sessionId,
          userId: session.userId,
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
  const next = {
    generation: family.generation,
    issuedAt: now,
    idleExpiresAt,
    tokenJti: record.jti,
    tokenExpiresAt: record.expiresAt,
  }
  if (family.kind === 'new') {
    await tx.refresh.createFamily({
      familyId: family.familyId,
      siteId: site.id,
      userId: session.userId,
      sessionId: session.id,
      jkt,
      ...next,
      absoluteExpiresAt: family.absoluteExpiresAt,
      revokedAt: null,
      revokeReason: null,
    })
  } else if (family.kind === 'advance') {
    // The caller read the family at `from` in this transaction; a store that lets this fail is not serialisable.
    if (!(await tx.refresh.advanceFamily(family.familyId, family.from, next)))
      throw new Error('refresh family changed inside its transaction')
  } else {
    const refresh: RefreshRecord = {
      hash: refreshHash,
      familyId: family.familyId,
      generation: family.generation,
      siteId: site.id,
      userId: session.userId,
      sessionId: session.id,
      issuedAt: now,
      idleExpiresAt,
      absoluteExpiresAt: family.absoluteExpiresAt,
      usedAt: null,
      successorHash: null,
      successorSealed: null,
      revokedAt: null,
      revokeReason: null,
      jkt,
    }
    await tx.refresh.create(refresh)
  }

  const body = grantBody({
    token,
    boundToKey,
    issuedAt: now,
    expiresAt: record.expiresAt,
    refreshToken,
    refreshExpiresAt: idleExpiresAt,
    refreshBeforeSeconds: site.refreshBeforeSeconds,
  })
  return {
    grant: {
      token,
      jti: record.jti,
      expiresAt: record.expiresAt,
      refreshToken,
      refreshHash,
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
  const familyKey = await familyKeyOf(deps)
  const minted = await deps.store.transaction(async (tx) => {
    const live = await tx.sessions.get(session.id)
    if (!isSessionLive(live, now, deps.config)) return null
    return mintInTransaction(deps, tx, {
      familyKey,
      site,
      session: live,
      now,
      newSignIn: true,
      jkt,
      family: {
        kind: 'new',
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
