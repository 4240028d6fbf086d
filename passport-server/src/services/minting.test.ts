import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { beforeEach, describe, expect, it } from 'vitest'
import { sha256 } from '../crypto/random.ts'
import { StoreUnavailableError } from '../errors.ts'
import type { SessionEndEvent } from '../events/bus.ts'
import type { SessionRecord, SiteRecord, UserRecord } from '../store/types.ts'
import { defaultFrameKey } from '../test-dpop.ts'
import {
  addSite,
  addUser,
  allLogText,
  createTestDeps,
  T0,
  TEST_ISSUER,
  type TestDeps,
} from '../test-support.ts'
import { CLOCK_TOLERANCE_SECONDS, signSiteToken } from '../tokens/site-token.ts'
import { mintSiteToken, needsTouch, TOUCH_INTERVAL_MS } from './minting.ts'
import { endSession, startSession } from './sessions.ts'
import { checkSiteToken } from './token-status.ts'

describe('minting site tokens and checking them (newest wins)', () => {
  let deps: TestDeps
  let news: SiteRecord
  let shop: SiteRecord
  let events: SessionEndEvent[]
  let sessionA: SessionRecord
  let sessionB: SessionRecord
  let alice: UserRecord

  beforeEach(async () => {
    deps = await createTestDeps()
    alice = await addUser(deps, 'alice')
    news = (await addSite(deps, { id: 'news' })).site
    shop = (await addSite(deps, { id: 'shop' })).site
    events = []
    deps.events.subscribe((e) => events.push(e))
    sessionA = (await startSession(deps, alice.id, 'device A')).session
    sessionB = (await startSession(deps, alice.id, 'device B')).session
  })

  const check = (token: string, siteId = 'news') => checkSiteToken(deps, token, siteId)

  it('mints a token that checks valid for its site, backed by a stored record', async () => {
    const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
    expect(minted.expiresAt).toBe(T0 + news.tokenTtlSeconds * 1000)
    const status = await check(minted.token)
    expect(status).toEqual({
      valid: true,
      record: {
        jti: minted.jti,
        siteId: 'news',
        userId: sessionA.userId,
        sessionId: sessionA.id,
        issuedAt: T0,
        expiresAt: minted.expiresAt,
        revokedAt: null,
        revokeReason: null,
        jkt: defaultFrameKey.jkt,
      },
      holder: { id: alice.id, username: alice.username, name: alice.name },
    })
    expect(deps.logs).toContainEqual({
      event: 'authn_token_created',
      fields: { site: 'news', user: sessionA.userId, replaced: 0 },
    })
    expect(allLogText(deps.logs)).not.toContain(minted.token)
  })

  it("B11: revokes the other session's token on a new sign-in to the same site, and bars that session", async () => {
    const first = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
    deps.clock.advance(1000)
    const second = await mintSiteToken(deps, news, sessionB, defaultFrameKey.jkt)

    expect(await check(first.token)).toEqual({ valid: false, reason: 'replaced', expiresAt: first.expiresAt })
    expect((await check(second.token)).valid).toBe(true)
    expect(await deps.store.tokens.get(first.jti)).toMatchObject({
      revokedAt: T0 + 1000,
      revokeReason: 'replaced',
    })
    expect(await deps.store.sessions.exclusion(sessionA.id, 'news')).toEqual({
      sessionId: sessionA.id,
      siteId: 'news',
      reason: 'replaced',
      at: T0 + 1000,
    })
    expect(await deps.store.sessions.exclusion(sessionB.id, 'news')).toBeNull()
    expect(events).toEqual([
      {
        id: 1,
        type: 'site_access_ended',
        userId: sessionA.userId,
        sessionId: sessionA.id,
        siteId: 'news',
        reason: 'replaced',
        at: T0 + 1000,
      },
    ])
    expect(deps.logs).toContainEqual({
      event: 'authn_token_created',
      fields: { site: 'news', user: sessionA.userId, replaced: 1 },
    })
  })

  it("leaves the user's tokens on other sites alone", async () => {
    const shopToken = await mintSiteToken(deps, shop, sessionA, defaultFrameKey.jkt)
    await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
    await mintSiteToken(deps, news, sessionB, defaultFrameKey.jkt)
    expect((await check(shopToken.token, 'shop')).valid).toBe(true)
    expect(await deps.store.sessions.exclusion(sessionA.id, 'shop')).toBeNull()
  })

  it("leaves other users' tokens on the same site alone", async () => {
    const bob = await addUser(deps, 'bob')
    const bobSession = (await startSession(deps, bob.id, 'bob')).session
    const bobToken = await mintSiteToken(deps, news, bobSession, defaultFrameKey.jkt)
    await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
    expect((await check(bobToken.token)).valid).toBe(true)
  })

  it('keeps earlier tokens of the same session valid when it mints again', async () => {
    const first = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
    const second = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
    expect((await check(first.token)).valid).toBe(true)
    expect((await check(second.token)).valid).toBe(true)
    expect(events).toEqual([])
  })

  it('keeps both devices signed in when the site allows several devices', async () => {
    const multi = (await addSite(deps, { id: 'multi', oneDevicePerSite: false })).site
    const first = await mintSiteToken(deps, multi, sessionA, defaultFrameKey.jkt)
    const second = await mintSiteToken(deps, multi, sessionB, defaultFrameKey.jkt)
    expect((await check(first.token, 'multi')).valid).toBe(true)
    expect((await check(second.token, 'multi')).valid).toBe(true)
    expect(await deps.store.sessions.exclusion(sessionA.id, 'multi')).toBeNull()
    expect(events).toEqual([])
  })

  it('lets a replaced session take the site back by minting again, which replaces the other one', async () => {
    await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
    const fromB = await mintSiteToken(deps, news, sessionB, defaultFrameKey.jkt)
    const backOnA = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
    expect(await deps.store.sessions.exclusion(sessionA.id, 'news')).toBeNull()
    expect(await deps.store.sessions.exclusion(sessionB.id, 'news')).toMatchObject({ reason: 'replaced' })
    expect(await check(fromB.token)).toMatchObject({ valid: false, reason: 'replaced' })
    expect((await check(backOnA.token)).valid).toBe(true)
  })

  it('leaves exactly one live token when two sessions mint at once', async () => {
    const [a, b] = await Promise.all([
      mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt),
      mintSiteToken(deps, news, sessionB, defaultFrameKey.jkt),
    ])
    const statuses = await Promise.all([check(a.token), check(b.token)])
    expect(statuses.filter((s) => s.valid)).toHaveLength(1)
    expect(statuses.filter((s) => !s.valid && s.reason === 'replaced')).toHaveLength(1)
  })

  it('leaves exactly one live token when eight sessions mint at once', async () => {
    const sessions = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => (await startSession(deps, sessionA.userId, `d${i}`)).session),
    )
    const minted = await Promise.all(sessions.map((s) => mintSiteToken(deps, news, s, defaultFrameKey.jkt)))
    const statuses = await Promise.all(minted.map((m) => check(m.token)))
    expect(statuses.filter((s) => s.valid)).toHaveLength(1)
  })

  it('refuses to mint for an ended session, and that attempt replaces nothing', async () => {
    const onA = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
    await endSession(deps, sessionB, 'signed_out')
    await expect(mintSiteToken(deps, news, sessionB, defaultFrameKey.jkt)).rejects.toThrow()
    expect((await check(onA.token)).valid).toBe(true)
    expect(await deps.store.sessions.exclusion(sessionA.id, 'news')).toBeNull()
  })

  describe('check reasons', () => {
    it('says expired once the token is past its expiry and the clock tolerance', async () => {
      const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      deps.clock.set(minted.expiresAt + (CLOCK_TOLERANCE_SECONDS + 1) * 1000)
      expect(await check(minted.token)).toEqual({ valid: false, reason: 'expired', expiresAt: null })
    })

    it('says expired from the stored record while the signature check still tolerates the skew', async () => {
      const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      deps.clock.set(minted.expiresAt + 1000)
      expect(await check(minted.token)).toEqual({
        valid: false,
        reason: 'expired',
        expiresAt: minted.expiresAt,
      })
    })

    it('is still valid one millisecond before expiry', async () => {
      const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      deps.clock.set(minted.expiresAt - 1)
      expect((await check(minted.token)).valid).toBe(true)
    })

    it('says signed_out after the session signed out', async () => {
      const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      await endSession(deps, sessionA, 'signed_out')
      expect(await check(minted.token)).toEqual({
        valid: false,
        reason: 'signed_out',
        expiresAt: minted.expiresAt,
      })
    })

    it('says revoked after an administrator revoked the session', async () => {
      const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      await endSession(deps, sessionA, 'revoked')
      expect(await check(minted.token)).toEqual({
        valid: false,
        reason: 'revoked',
        expiresAt: minted.expiresAt,
      })
    })

    it('says unknown for a token of another site', async () => {
      const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      expect(await check(minted.token, 'shop')).toEqual({ valid: false, reason: 'unknown', expiresAt: null })
    })

    it('says unknown for a token whose account is no longer in the store', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-minting-'))
      const file = path.join(dir, 'passport.sqlite')
      const own = await createTestDeps({ file })
      try {
        const bob = await addUser(own, 'bob')
        const blog = (await addSite(own, { id: 'news' })).site
        const session = (await startSession(own, bob.id, 'device')).session
        const minted = await mintSiteToken(own, blog, session, defaultFrameKey.jkt)
        expect((await checkSiteToken(own, minted.token, 'news')).valid).toBe(true)
        const db = new DatabaseSync(file)
        db.exec(`DELETE FROM users WHERE id = '${bob.id}'`)
        db.close()
        expect(await checkSiteToken(own, minted.token, 'news')).toEqual({
          valid: false,
          reason: 'unknown',
          expiresAt: null,
        })
      } finally {
        await own.store.close()
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })

    it('says unknown for a correctly signed token that was never recorded', async () => {
      const unrecorded = await signSiteToken(deps.keys, {
        issuer: TEST_ISSUER,
        siteId: 'news',
        userId: sessionA.userId,
        sessionId: sessionA.id,
        jti: 'never-minted',
        issuedAtMs: T0,
        expiresAtMs: T0 + 60_000,
      })
      expect(await check(unrecorded)).toEqual({ valid: false, reason: 'unknown', expiresAt: null })
    })

    it('says unknown for garbage and for tampered tokens', async () => {
      const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      expect(await check('garbage')).toEqual({ valid: false, reason: 'unknown', expiresAt: null })
      expect(await check(`${minted.token.slice(0, -4)}AAAA`)).toMatchObject({
        valid: false,
        reason: 'unknown',
      })
    })
  })

  describe('recognising a minted token by its bytes (issue 4)', () => {
    it('keeps the SHA-256 of the exact token on its row, and nothing that would let it be rebuilt', async () => {
      const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      const stored = await deps.store.tokens.getWithHash(minted.jti)
      expect(stored?.tokenHash).toBe(sha256(minted.token))
      expect(JSON.stringify(stored)).not.toContain(minted.token.split('.')[2])
    })

    it('gives the same answers with and without the hash, at every instant of a token life', async () => {
      const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      // The same token on a row without its hash (as an older server writes it) takes the signature path.
      const legacy = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      const row = await deps.store.tokens.get(legacy.jti)
      if (!row) throw new Error('no row')
      const copy = { ...row, jti: crypto.randomUUID() }
      await deps.store.tokens.create(copy)
      const legacyToken = await signSiteToken(deps.keys, {
        issuer: deps.config.issuer,
        siteId: 'news',
        userId: copy.userId,
        sessionId: copy.sessionId,
        jti: copy.jti,
        issuedAtMs: copy.issuedAt,
        expiresAtMs: copy.expiresAt,
      })
      const strip = (s: Awaited<ReturnType<typeof check>>) =>
        s.valid ? { valid: true, expiresAt: s.record.expiresAt } : s
      for (const at of [0, 899_000, 900_000, 904_000, 905_000, 906_000, 86_400_000 + 10_000]) {
        deps.clock.set(T0 + at)
        expect(strip(await check(minted.token)), `${at}`).toEqual(strip(await check(legacyToken)))
        expect(await check(minted.token, 'shop')).toEqual(await check(legacyToken, 'shop'))
      }
      deps.clock.set(T0 + 1000)
      await mintSiteToken(deps, news, sessionB, defaultFrameKey.jkt) // replaces both on session A
      expect(await check(minted.token)).toMatchObject({ valid: false, reason: 'replaced' })
      expect(await check(legacyToken)).toMatchObject({ valid: false, reason: 'replaced' })
    })
  })

  describe('session activity (idle timeout)', () => {
    it('records it on the first mint, then at most once a minute', async () => {
      const seen = async () => (await deps.store.sessions.get(sessionA.id))?.lastSeenAt
      await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      expect(await seen()).toBe(T0)
      deps.clock.advance(TOUCH_INTERVAL_MS - 1)
      await mintSiteToken(deps, shop, (await deps.store.sessions.get(sessionA.id)) as SessionRecord, null)
      expect(await seen()).toBe(T0)
      deps.clock.advance(1)
      await mintSiteToken(deps, news, (await deps.store.sessions.get(sessionA.id)) as SessionRecord, null)
      expect(await seen()).toBe(T0 + TOUCH_INTERVAL_MS)
    })

    it('a short idle timeout is measured more finely (a hundredth of it)', () => {
      const s = { ...sessionA, lastSeenAt: T0 }
      expect(needsTouch(s, T0 + 59_999, { sessionIdleSeconds: 7 * 86_400 })).toBe(false)
      expect(needsTouch(s, T0 + 60_000, { sessionIdleSeconds: 7 * 86_400 })).toBe(true)
      expect(needsTouch(s, T0 + 9_999, { sessionIdleSeconds: 1000 })).toBe(false)
      expect(needsTouch(s, T0 + 10_000, { sessionIdleSeconds: 1000 })).toBe(true)
      expect(needsTouch({ ...sessionA }, T0, { sessionIdleSeconds: 1000 })).toBe(true)
    })
  })

  describe('store down', () => {
    it('neither mints nor reports a token valid, failing with StoreUnavailableError', async () => {
      const minted = await mintSiteToken(deps, news, sessionA, defaultFrameKey.jkt)
      await deps.store.close()
      await expect(mintSiteToken(deps, news, sessionB, defaultFrameKey.jkt)).rejects.toBeInstanceOf(
        StoreUnavailableError,
      )
      await expect(check(minted.token)).rejects.toBeInstanceOf(StoreUnavailableError)
    })
  })
})
