import type { EndReason } from '../../../passport-frame/src/protocol/codes.ts'
import { sameSecret, sha256 } from '../crypto/random.ts'
import { openForHolder, sealForHolder } from '../crypto/seal.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import type { RefreshRecord, SessionEventRecord, SessionRecord, SiteRecord, StoreTx } from '../store/types.ts'
import {
  type FamilySpec,
  familyCredential,
  familyKeyOf,
  type MintedGrant,
  mintInTransaction,
  parseFamilyCredential,
  rebuildFamilyAnswer,
} from './minting.ts'
import { publishEvents } from './session-events.ts'
import { isSessionLive } from './sessions.ts'
import { loseSite, recordSiteLoss, type SiteLoss } from './site-access.ts'

const REFRESH_TOKEN = /^[A-Za-z0-9_-]{43}$/

/** What a rotation reports of the family it rotated (and a reuse of the family it revoked). */
type FamilyOf = Pick<RefreshRecord, 'sessionId' | 'userId' | 'familyId' | 'generation'>

type Outcome =
  | { kind: 'rotated'; grant: MintedGrant; replaced: SessionEventRecord[]; record: FamilyOf }
  | { kind: 'replay'; body: string }
  | { kind: 'reuse'; record: FamilyOf; event: SessionEventRecord }
  | { kind: 'refused'; reason: EndReason; wrongSite?: boolean }
  | { kind: 'wrong_key' }

function refused(reason: EndReason): PassportError {
  return new PassportError('invalid_grant', 'the refresh credential is not valid', { extra: { reason } })
}

/**
 * Rotates a refresh credential, idempotently, in one transaction. `jkt` is the thumbprint of the
 * key whose DPoP proof came with the request (null when there was no valid proof); the family is
 * bound to the frame key that signed in.
 *
 * - unused and alive, proof by the family's key: a new token and a successor credential; the
 *   used one keeps the successor's answer, sealed under itself;
 * - unused, without a proof by the family's key (a credential copied out of the frame's
 *   storage): refused with `invalid_dpop_proof`, and nothing changes;
 * - used, proof by the family's key: the same device, retrying (another tab, a lost answer, a
 *   tab asleep for an hour). Within the grace window (default 10 s), while the successor is
 *   unused, the same answer again, byte for byte; after it, the family's current credential is
 *   rotated and its answer given. The user is never signed out by their own retries;
 * - used, with another key or none: the credential was copied. The whole family is revoked and
 *   the device loses the site.
 *
 * Every other refusal is `invalid_grant` with the reason the device was signed out.
 */
export function refreshSiteGrant(
  deps: RefreshDeps,
  site: SiteRecord,
  presented: string,
  jkt: string | null,
): Promise<string> {
  return rotateGrant(deps, site, presented, { by: 'frame', jkt })
}

/**
 * The same rotation for a site backend that holds its grant itself (`POST /token` with its
 * client credentials): its families are bound to no frame key but to the site's client
 * authentication, which the caller has checked. A frame's family is not the backend's to
 * rotate (refused as unknown, unchanged), nor the other way round.
 */
export function refreshSiteBackendGrant(
  deps: RefreshDeps,
  site: SiteRecord,
  presented: string,
): Promise<string> {
  return rotateGrant(deps, site, presented, { by: 'site_backend' })
}

type RefreshDeps = Pick<AppDeps, 'store' | 'keys' | 'clock' | 'config' | 'events' | 'log'>
/** Who presents the credential: the frame (with the key its proof showed, if any), or the site's backend. */
type Presenter = { by: 'frame'; jkt: string | null } | { by: 'site_backend' }

async function rotateGrant(
  deps: RefreshDeps,
  site: SiteRecord,
  presented: string,
  presenter: Presenter,
): Promise<string> {
  const jkt = presenter.by === 'frame' ? presenter.jkt : null
  const named = parseFamilyCredential(presented)
  if (!named && !REFRESH_TOKEN.test(presented)) throw refused('unknown')
  const now = deps.clock.now()
  const graceMs = deps.config.refreshGraceSeconds * 1000
  const familyKey = await familyKeyOf(deps)

  /** The checks before a new generation: the session behind the family if it may have one, else the refusal. */
  const sessionFor = async (
    tx: StoreTx,
    current: { sessionId: string; idleExpiresAt: number; absoluteExpiresAt: number },
  ): Promise<SessionRecord | Outcome> => {
    if (now >= current.idleExpiresAt || now >= current.absoluteExpiresAt)
      return { kind: 'refused', reason: 'expired' }
    const session = await tx.sessions.get(current.sessionId)
    if (!session || session.endedAt !== null) {
      return { kind: 'refused', reason: session?.endReason ?? 'signed_out' }
    }
    if (!isSessionLive(session, now, deps.config)) return { kind: 'refused', reason: 'expired' }
    const exclusion = await tx.sessions.exclusion(session.id, site.id)
    if (exclusion) return { kind: 'refused', reason: exclusion.reason }
    return session
  }

  /** The family's next generation, minted for the live session behind `current`; else the refusal. */
  const mintNext = async (
    tx: StoreTx,
    current: { sessionId: string; idleExpiresAt: number; absoluteExpiresAt: number; jkt: string | null },
    family: FamilySpec,
  ): Promise<Outcome | Awaited<ReturnType<typeof mintInTransaction>>> => {
    const session = await sessionFor(tx, current)
    if (!('userId' in session)) return session
    return mintInTransaction(deps, tx, {
      familyKey,
      site,
      session,
      now,
      newSignIn: false,
      jkt: current.jkt,
      family,
    })
  }

  /**
   * A copy of a used credential in use: the device loses the site (its family among its
   * credentials there), and is told even if, against the checks above, nothing was left live.
   */
  const revokeOnReuse = async (tx: StoreTx, family: FamilyOf): Promise<Outcome> => {
    const loss: SiteLoss = {
      sessionId: family.sessionId,
      userId: family.userId,
      siteId: site.id,
      reason: 'revoked',
      at: now,
    }
    return {
      kind: 'reuse',
      record: family,
      event: (await loseSite(tx, loss)) ?? (await recordSiteLoss(tx, loss)),
    }
  }

  const outcome = await deps.store.transaction(async (tx): Promise<Outcome> => {
    if (named) {
      // A family rotated in place: one row, read by its id; the credential is checked against
      // the one the server derives for the generation it names (a made-up one changes nothing).
      const family = await tx.refresh.getFamily(named.familyId)
      if (!family || !sameSecret(presented, familyCredential(familyKey, named.familyId, named.generation)))
        return { kind: 'refused', reason: 'unknown' }
      if (family.siteId !== site.id) return { kind: 'refused', reason: 'unknown', wrongSite: true }
      if (named.generation > family.generation) return { kind: 'refused', reason: 'unknown' }
      if (family.revokedAt !== null) return { kind: 'refused', reason: family.revokeReason ?? 'revoked' }
      if ((presenter.by === 'frame') !== (family.jkt !== null)) return { kind: 'refused', reason: 'unknown' }
      const sameKey = presenter.by === 'site_backend' || jkt === family.jkt
      const record: FamilyOf = { ...family, generation: named.generation }
      if (!sameKey)
        return named.generation === family.generation ? { kind: 'wrong_key' } : revokeOnReuse(tx, record)
      // Used, by the same device: within the grace window, the answer it missed, again.
      if (named.generation === family.generation - 1 && now - family.issuedAt <= graceMs) {
        return { kind: 'replay', body: await rebuildFamilyAnswer(deps, familyKey, site, family) }
      }
      // Unused, or used past the grace window: the family's current generation is rotated.
      const minted = await mintNext(tx, family, {
        kind: 'advance',
        from: family.generation,
        familyId: family.familyId,
        generation: family.generation + 1,
        absoluteExpiresAt: family.absoluteExpiresAt,
      })
      if (!('grant' in minted)) return minted
      return { kind: 'rotated', grant: minted.grant, replaced: minted.replaced, record: family }
    }

    // A family of an older server: a row per credential, as that server kept it.
    const hash = sha256(presented)
    const record = await tx.refresh.get(hash)
    if (!record) return { kind: 'refused', reason: 'unknown' }
    // Another site's credential proves nothing about theft: refuse it, touch nothing (D4).
    if (record.siteId !== site.id) return { kind: 'refused', reason: 'unknown', wrongSite: true }
    if (record.revokedAt !== null) return { kind: 'refused', reason: record.revokeReason ?? 'revoked' }
    // A frame's family is bound to its key, a site backend's to the site's client credentials;
    // a frame family from before frame keys is bound to none: its device signs in again.
    if ((presenter.by === 'frame') !== (record.jkt !== null)) return { kind: 'refused', reason: 'unknown' }
    const sameKey = presenter.by === 'site_backend' || jkt === record.jkt

    /** Mints the successor of `current` (the presented credential, or the family's newest). */
    const rotate = async (current: RefreshRecord, sealFor: string | null): Promise<Outcome> => {
      const minted = await mintNext(tx, current, {
        kind: 'legacy',
        familyId: current.familyId,
        generation: current.generation + 1,
        absoluteExpiresAt: current.absoluteExpiresAt,
      })
      if (!('grant' in minted)) return minted
      const { grant, replaced } = minted
      const swapped = await tx.refresh.markRotated(
        current.hash,
        now,
        grant.refreshHash,
        sealFor === null ? null : sealForHolder(sealFor, grant.body),
      )
      // The transaction read it unused a moment ago; a store that lets this fail is not serialisable.
      if (!swapped) throw new Error('refresh credential changed inside its transaction')
      return { kind: 'rotated', grant, replaced, record: current }
    }

    if (record.usedAt === null) return sameKey ? rotate(record, presented) : { kind: 'wrong_key' }

    if (sameKey) {
      const successor = record.successorHash ? await tx.refresh.get(record.successorHash) : null
      // The family already ended for another reason (replaced, signed out): say that, nothing more.
      if (successor?.revokedAt) return { kind: 'refused', reason: successor.revokeReason ?? 'revoked' }
      const replayable =
        now - record.usedAt <= graceMs &&
        successor !== null &&
        successor.usedAt === null &&
        record.successorSealed !== null
      const body = replayable ? openForHolder(presented, record.successorSealed as string) : null
      if (body !== null) return { kind: 'replay', body }
      // Past the grace window: the family's current credential is rotated for this device.
      const head = await tx.refresh.head(record.familyId)
      return head ? rotate(head, null) : { kind: 'refused', reason: 'revoked' }
    }

    return revokeOnReuse(tx, record)
  })

  switch (outcome.kind) {
    case 'rotated':
      await publishEvents(deps, outcome.replaced)
      // The console's monitoring view shows the new validity at once (not audited: routine).
      deps.events.publishActivity({
        sessionId: outcome.record.sessionId,
        userId: outcome.record.userId,
        type: 'refreshed',
      })
      return outcome.grant.body
    case 'replay':
      return outcome.body
    case 'wrong_key':
      deps.log('dpop_proof_rejected', { reason: 'refresh_without_family_key', site: site.id })
      throw new PassportError('invalid_dpop_proof', 'a DPoP proof by the key of this sign-in is required')
    case 'reuse':
      deps.log('authn_token_reuse', {
        site: site.id,
        user: outcome.record.userId,
        family: outcome.record.familyId,
        generation: outcome.record.generation,
        with_key: jkt !== null,
      })
      await publishEvents(deps, [outcome.event])
      throw refused('revoked')
    case 'refused':
      if (outcome.wrongSite) deps.log('authz_fail', { site: site.id, what: 'refresh_token_of_another_site' })
      throw refused(outcome.reason)
  }
}
