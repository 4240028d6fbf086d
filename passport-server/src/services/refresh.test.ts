import { beforeEach, describe, expect, it } from 'vitest'
import { sha256 } from '../crypto/random.ts'
import { PassportError } from '../errors.ts'
import type { SessionEndEvent } from '../events/bus.ts'
import type { SessionRecord, SiteRecord } from '../store/types.ts'
import { createTestFrameKey, defaultFrameKey } from '../test-dpop.ts'

const thief = createTestFrameKey()

import { addSite, addUser, createTestDeps, storedFamily, type TestDeps } from '../test-support.ts'
import { mintSiteToken } from './minting.ts'
import { refreshSiteGrant } from './refresh.ts'
import { endSession, startSession } from './sessions.ts'
import { checkSiteToken } from './token-status.ts'

interface Grant {
  access_token: string
  refresh_token: string
  expires_at: number
  refresh_at: number
  refresh_expires_at: number
  server_time: number
}

describe('refresh: rotation, idempotent retries, reuse detection, lifetimes', () => {
  let deps: TestDeps
  let news: SiteRecord
  let shop: SiteRecord
  let session: SessionRecord
  let events: SessionEndEvent[]

  beforeEach(async () => {
    deps = await createTestDeps()
    const alice = await addUser(deps, 'alice')
    news = (await addSite(deps, { id: 'news' })).site
    shop = (await addSite(deps, { id: 'shop' })).site
    session = (await startSession(deps, alice.id, 'device A')).session
    events = []
    deps.events.subscribe((e) => events.push(e))
  })

  const first = async (site = news) =>
    JSON.parse((await mintSiteToken(deps, site, session, defaultFrameKey.jkt)).body) as Grant
  const refresh = async (rt: string, site = news) =>
    JSON.parse(await refreshSiteGrant(deps, site, rt, defaultFrameKey.jkt)) as Grant
  const refusal = async (rt: string, site = news, jkt: string | null = defaultFrameKey.jkt) => {
    const err = await refreshSiteGrant(deps, site, rt, jkt).then(
      () => null,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(PassportError)
    const e = err as PassportError
    return { code: e.code, reason: e.extra?.reason }
  }
  const valid = async (token: string, siteId = 'news') => (await checkSiteToken(deps, token, siteId)).valid

  it('D8: a crash between writing the new token and moving the family on leaves neither half', async () => {
    const g0 = await first()
    const store = deps.store
    // Fault injection: the transaction dies right after the new token row was written, before
    // the family moved on.
    deps.store = {
      ...store,
      transaction: (fn) =>
        store.transaction((tx) =>
          fn({
            ...tx,
            refresh: {
              ...tx.refresh,
              advanceFamily: async () => {
                throw new Error('process killed mid-rotation')
              },
            },
          }),
        ),
    }
    const tokensBefore = (await store.tokens.listLive(deps.clock.now())).length
    await expect(refreshSiteGrant(deps, news, g0.refresh_token, defaultFrameKey.jkt)).rejects.toThrow(
      'mid-rotation',
    )
    deps.store = store
    // Nothing of the attempt remains: the family is where it was, no token was added.
    expect(await storedFamily(store, g0.refresh_token)).toMatchObject({ generation: 0, revokedAt: null })
    expect(await store.tokens.listLive(deps.clock.now())).toHaveLength(tokensBefore)
    // The retry rotates normally and yields a valid pair.
    const g1 = await refresh(g0.refresh_token)
    expect(await valid(g1.access_token)).toBe(true)
    expect(await storedFamily(store, g1.refresh_token)).toMatchObject({ generation: 1, revokedAt: null })
  })

  it('rotates: a new token and a new refresh credential; the old token stays valid until it expires', async () => {
    const g0 = await first()
    deps.clock.advance(60_000)
    const g1 = await refresh(g0.refresh_token)
    expect(g1.refresh_token).not.toBe(g0.refresh_token)
    expect(g1.access_token).not.toBe(g0.access_token)
    expect(await valid(g1.access_token)).toBe(true)
    expect(await valid(g0.access_token)).toBe(true)
    expect(g1.expires_at).toBe(deps.clock.now() + 900_000)
    expect(g1.refresh_at).toBe(g1.expires_at - 300_000)
    expect(g1.server_time).toBe(deps.clock.now())
  })

  it('D1: 20 parallel refreshes of one credential: one successor, 20 identical answers, still signed in (D1)', async () => {
    const g0 = await first()
    const bodies = await Promise.all(
      Array.from({ length: 20 }, () => refreshSiteGrant(deps, news, g0.refresh_token, defaultFrameKey.jkt)),
    )
    expect(new Set(bodies).size).toBe(1)
    const g1 = JSON.parse(bodies[0] as string) as Grant
    expect(await storedFamily(deps.store, g0.refresh_token)).toMatchObject({ generation: 1 })
    expect(g1.refresh_token).toBe(
      g0.refresh_token.replace(/\.0\..*$/, '.1.') + g1.refresh_token.split('.')[2],
    )
    expect(await valid(g1.access_token)).toBe(true)
    // The successor is the family's one live credential, and it works.
    const g2 = await refresh(g1.refresh_token)
    expect(await valid(g2.access_token)).toBe(true)
    expect(events).toEqual([])
  })

  it('a retry within the grace window gets the byte-identical answer', async () => {
    const g0 = await first()
    const a = await refreshSiteGrant(deps, news, g0.refresh_token, defaultFrameKey.jkt)
    deps.clock.advance(9_000)
    expect(await refreshSiteGrant(deps, news, g0.refresh_token, defaultFrameKey.jkt)).toBe(a)
  })

  it('D2: reuse after the grace window, by a copy (another key), revokes the family and signs the device out of the site (D2)', async () => {
    const g0 = await first()
    const shopGrant = await first(shop)
    const g1 = await refresh(g0.refresh_token)
    deps.clock.advance(10_001)
    expect(await refusal(g0.refresh_token, news, thief.jkt)).toEqual({
      code: 'invalid_grant',
      reason: 'revoked',
    })
    // Both generations are dead, their access tokens too, and the site cannot come back silently.
    expect(await refusal(g1.refresh_token)).toEqual({ code: 'invalid_grant', reason: 'revoked' })
    expect(await checkSiteToken(deps, g1.access_token, 'news')).toMatchObject({
      valid: false,
      reason: 'revoked',
    })
    expect(await deps.store.sessions.exclusion(session.id, 'news')).toMatchObject({ reason: 'revoked' })
    expect(deps.logs.map((l) => l.event)).toContain('authn_token_reuse')
    expect(events).toEqual([
      expect.objectContaining({
        type: 'site_access_ended',
        siteId: 'news',
        sessionId: session.id,
        reason: 'revoked',
      }),
    ])
    // Another site of the same session is untouched.
    expect(await valid(shopGrant.access_token, 'shop')).toBe(true)
  })

  it('D3: the grace window covers the previous generation only: an older one presented by a copy is reuse (D3)', async () => {
    const g0 = await first()
    const g1 = await refresh(g0.refresh_token)
    const g2 = await refresh(g1.refresh_token)
    expect(await refusal(g0.refresh_token, news, null)).toEqual({ code: 'invalid_grant', reason: 'revoked' })
    expect(await valid(g2.access_token)).toBe(false)
  })

  it('an older generation presented by the family key is the same device: it gets the current successor (issue 13)', async () => {
    const g0 = await first()
    const g1 = await refresh(g0.refresh_token)
    await refresh(g1.refresh_token)
    deps.clock.advance(3_600_000)
    const again = await refresh(g0.refresh_token)
    expect(await valid(again.access_token)).toBe(true)
    expect(events).toEqual([])
    expect(await deps.store.sessions.exclusion(session.id, 'news')).toBeNull()
  })

  it("another site's credential is refused and its family left alone (D4)", async () => {
    const g0 = await first()
    expect(await refusal(g0.refresh_token, shop)).toEqual({ code: 'invalid_grant', reason: 'unknown' })
    expect(deps.logs.map((l) => l.event)).toContain('authz_fail')
    expect(await valid((await refresh(g0.refresh_token)).access_token)).toBe(true)
  })

  it.each(['', 'short', 'x'.repeat(43), `${'a'.repeat(42)}+`])(
    'an unknown or malformed credential %j is refused',
    async (rt) => {
      await first()
      expect(await refusal(rt)).toEqual({ code: 'invalid_grant', reason: 'unknown' })
    },
  )

  it('expires when idle past the idle limit (D6)', async () => {
    const g0 = await first()
    deps.clock.advance(news.refreshIdleSeconds * 1000)
    expect(await refusal(g0.refresh_token)).toEqual({ code: 'invalid_grant', reason: 'expired' })
  })

  it('never outlives the absolute limit, however often it is used (D6)', async () => {
    const site = (
      await addSite(deps, { id: 'tight', refreshIdleSeconds: 3600, refreshAbsoluteSeconds: 7200 })
    ).site
    let grant = await first(site)
    for (let i = 0; i < 3; i++) {
      deps.clock.advance(1800_000)
      grant = await refresh(grant.refresh_token, site)
    }
    // 5400 s in: the newest credential may not run past 7200 s from the sign-in.
    expect(grant.refresh_expires_at).toBe(deps.clock.now() - 5400_000 + 7200_000)
    deps.clock.advance(1800_000)
    expect(await refusal(grant.refresh_token, site)).toEqual({ code: 'invalid_grant', reason: 'expired' })
  })

  it('after sign-out: refused with signed_out (D7)', async () => {
    const g0 = await first()
    await endSession(deps, session, 'signed_out')
    expect(await refusal(g0.refresh_token)).toEqual({ code: 'invalid_grant', reason: 'signed_out' })
  })

  it('after a newer sign-in on another device: refused with replaced', async () => {
    const g0 = await first()
    const other = (await startSession(deps, session.userId, 'device B')).session
    await mintSiteToken(deps, news, other, defaultFrameKey.jkt)
    expect(await refusal(g0.refresh_token)).toEqual({ code: 'invalid_grant', reason: 'replaced' })
  })

  it('keeps no credential, not even its hash: a family row alone gives nothing to present', async () => {
    const g0 = await first()
    const g1 = await refresh(g0.refresh_token)
    const row = JSON.stringify(await storedFamily(deps.store, g1.refresh_token))
    for (const secret of [g0.refresh_token, g1.refresh_token].map((c) => c.split('.')[2] as string)) {
      expect(row).not.toContain(secret)
      expect(row).not.toContain(sha256(secret))
    }
    // What the row does name (the family and its generation) opens nothing without the server's key.
    const [familyId, generation] = g1.refresh_token.split('.')
    expect(await refusal(`${familyId}.${generation}.${sha256(`${familyId}.${generation}`)}`)).toEqual({
      code: 'invalid_grant',
      reason: 'unknown',
    })
    expect(await valid(g1.access_token)).toBe(true)
  })
})

describe('refresh families rotated in place (issue 15): derived credentials', () => {
  let deps: TestDeps
  let news: SiteRecord
  let session: SessionRecord

  beforeEach(async () => {
    deps = await createTestDeps()
    const alice = await addUser(deps, 'alice')
    news = (await addSite(deps, { id: 'news' })).site
    session = (await startSession(deps, alice.id, 'ua')).session
  })

  const first = async () =>
    JSON.parse((await mintSiteToken(deps, news, session, defaultFrameKey.jkt)).body) as Grant
  const refresh = async (rt: string, jkt: string | null = defaultFrameKey.jkt) =>
    JSON.parse(await refreshSiteGrant(deps, news, rt, jkt)) as Grant
  const refusal = async (rt: string, jkt: string | null = defaultFrameKey.jkt) =>
    refreshSiteGrant(deps, news, rt, jkt).then(
      () => null,
      (e: PassportError) => ({ code: e.code, reason: e.extra?.reason }),
    )
  /** The same family and generation with another MAC: what someone who read the family id could make. */
  const forged = (credential: string, generation?: number) => {
    const [familyId, g] = credential.split('.')
    return `${familyId}.${generation ?? g}.${'A'.repeat(43)}`
  }

  it('keeps one row per family however often it rotates', async () => {
    let g = await first()
    for (let i = 0; i < 5; i++) g = await refresh(g.refresh_token)
    expect(await storedFamily(deps.store, g.refresh_token)).toMatchObject({ generation: 5, revokedAt: null })
    // Revoking the session's credentials finds that one row, and no other.
    expect(await deps.store.refresh.revokeSession(session.id, deps.clock.now(), 'signed_out')).toBe(1)
  })

  it('a made-up credential of a real family is unknown and changes nothing, whatever key proves it', async () => {
    const g0 = await first()
    const g1 = await refresh(g0.refresh_token)
    for (const jkt of [defaultFrameKey.jkt, thief.jkt, null]) {
      // Current generation, an old one, a future one: none is genuine.
      for (const cred of [
        forged(g1.refresh_token),
        forged(g1.refresh_token, 0),
        forged(g1.refresh_token, 7),
      ]) {
        expect(await refusal(cred, jkt)).toEqual({ code: 'invalid_grant', reason: 'unknown' })
      }
    }
    expect(await storedFamily(deps.store, g1.refresh_token)).toMatchObject({ generation: 1, revokedAt: null })
    expect((await refresh(g1.refresh_token)).access_token).toBeTruthy()
  })

  it('a genuine credential of any older generation, presented by another key, revokes the family', async () => {
    const g0 = await first()
    let g = await refresh(g0.refresh_token)
    for (let i = 0; i < 3; i++) g = await refresh(g.refresh_token)
    deps.clock.advance(86_400_000 / 2) // long after: an older server had purged the used rows by now
    expect(await refusal(g0.refresh_token, thief.jkt)).toEqual({ code: 'invalid_grant', reason: 'revoked' })
    expect(await refusal(g.refresh_token)).toEqual({ code: 'invalid_grant', reason: 'revoked' })
    expect(await storedFamily(deps.store, g.refresh_token)).toMatchObject({ revokeReason: 'revoked' })
  })

  it('the grace answer is rebuilt only for the generation just before the current one', async () => {
    const g0 = await first()
    const g1 = await refreshSiteGrant(deps, news, g0.refresh_token, defaultFrameKey.jkt)
    deps.clock.advance(5_000)
    expect(await refreshSiteGrant(deps, news, g0.refresh_token, defaultFrameKey.jkt)).toBe(g1)
    // Once the tab that got it has used it, the older one no longer gets that answer: the
    // family's current generation is rotated for it instead (still no sign-out).
    const g2 = await refresh((JSON.parse(g1) as Grant).refresh_token)
    const late = await refresh(g0.refresh_token)
    expect(late.refresh_token).not.toBe(g2.refresh_token)
    expect(await storedFamily(deps.store, late.refresh_token)).toMatchObject({
      generation: 3,
      revokedAt: null,
    })
  })

  it('a family of an older server (a row per credential) still rotates, replays and detects reuse', async () => {
    const legacy = 'L'.repeat(43)
    const legacyRow = {
      hash: sha256(legacy),
      familyId: crypto.randomUUID(),
      generation: 3,
      siteId: news.id,
      userId: session.userId,
      sessionId: session.id,
      issuedAt: deps.clock.now(),
      idleExpiresAt: deps.clock.now() + 86_400_000,
      absoluteExpiresAt: deps.clock.now() + 7 * 86_400_000,
      usedAt: null,
      successorHash: null,
      successorSealed: null,
      revokedAt: null,
      revokeReason: null,
      jkt: defaultFrameKey.jkt,
    }
    await deps.store.refresh.create(legacyRow)
    const a = await refreshSiteGrant(deps, news, legacy, defaultFrameKey.jkt)
    const next = JSON.parse(a) as Grant
    expect(next.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(await deps.store.refresh.get(sha256(next.refresh_token))).toMatchObject({ generation: 4 })
    expect(await refreshSiteGrant(deps, news, legacy, defaultFrameKey.jkt)).toBe(a)
    deps.clock.advance(11_000)
    expect(await refusal(legacy, thief.jkt)).toEqual({ code: 'invalid_grant', reason: 'revoked' })
    expect(await refusal(next.refresh_token)).toEqual({ code: 'invalid_grant', reason: 'revoked' })
  })
})

describe('newest wins reaches a device through its refresh credential too', () => {
  it('replaces a device whose access token expired but whose refresh credential is alive', async () => {
    const deps = await createTestDeps()
    const alice = await addUser(deps, 'alice')
    const news = (await addSite(deps, { id: 'news' })).site
    const a = (await startSession(deps, alice.id, 'device A')).session
    const b = (await startSession(deps, alice.id, 'device B')).session
    const first = JSON.parse((await mintSiteToken(deps, news, a, defaultFrameKey.jkt)).body) as Grant
    deps.clock.advance(news.tokenTtlSeconds * 1000 + 1000) // A's token expired, its refresh lives
    await mintSiteToken(deps, news, b, defaultFrameKey.jkt)
    expect(await deps.store.sessions.exclusion(a.id, 'news')).toMatchObject({ reason: 'replaced' })
    const err = await refreshSiteGrant(deps, news, first.refresh_token, defaultFrameKey.jkt).catch(
      (e: PassportError) => e,
    )
    expect(err).toMatchObject({ code: 'invalid_grant', extra: { reason: 'replaced' } })
  })

  it('a replaced device retrying its previous credential is told replaced, not treated as reuse', async () => {
    const deps = await createTestDeps()
    const alice = await addUser(deps, 'alice')
    const news = (await addSite(deps, { id: 'news' })).site
    const a = (await startSession(deps, alice.id, 'device A')).session
    const b = (await startSession(deps, alice.id, 'device B')).session
    const g0 = JSON.parse((await mintSiteToken(deps, news, a, defaultFrameKey.jkt)).body) as Grant
    await refreshSiteGrant(deps, news, g0.refresh_token, defaultFrameKey.jkt)
    await mintSiteToken(deps, news, b, defaultFrameKey.jkt)
    const err = await refreshSiteGrant(deps, news, g0.refresh_token, defaultFrameKey.jkt).catch(
      (e: PassportError) => e,
    )
    expect(err).toMatchObject({ code: 'invalid_grant', extra: { reason: 'replaced' } })
    expect(deps.logs.map((l) => l.event)).not.toContain('authn_token_reuse')
  })
})
