import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { SessionEndEvent } from '../events/bus.ts'
import { createEngine, ENGINES, type TestEngine } from '../store/test-engines.ts'
import type { SessionRecord, SiteRecord, Store } from '../store/types.ts'
import { defaultFrameKey } from '../test-dpop.ts'
import {
  addSite,
  addUser,
  createTestDeps,
  storedFamily,
  type TestDeps,
  testMasterKey,
} from '../test-support.ts'
import { mintSiteToken } from './minting.ts'
import { refreshSiteGrant } from './refresh.ts'
import { endSession, startSession } from './sessions.ts'
import { checkSiteToken } from './token-status.ts'

/**
 * The races of minting (newest wins) and refresh rotation, through the services, on each store
 * engine. On PostgreSQL they run on two instances sharing the database (each its own pool),
 * so the database alone decides; on SQLite on one (its scale-out is not the point there).
 */
interface Grant {
  access_token: string
  refresh_token: string
}

describe.each(ENGINES)('races through the services: %s', (engineName) => {
  let engine: TestEngine
  let stores: Store[]
  let a: TestDeps
  let b: TestDeps
  let news: SiteRecord
  let alice: { id: string }
  let events: SessionEndEvent[]

  beforeAll(async () => {
    engine = await createEngine(engineName)
  })
  afterAll(async () => {
    await engine?.dispose()
  })
  beforeEach(async () => {
    await engine.reset()
    const masterKey = testMasterKey()
    stores = [await engine.open()]
    a = await createTestDeps({ store: stores[0], masterKey })
    if (engineName === 'postgres') {
      stores.push(await engine.open())
      b = await createTestDeps({ store: stores[1], masterKey })
    } else {
      b = a
    }
    alice = await addUser(a, 'alice')
    news = (await addSite(a, { id: 'news' })).site
    events = []
    for (const deps of new Set([a, b])) deps.events.subscribe((e) => events.push(e))
  })
  afterEach(async () => {
    for (const store of stores) await store.close()
  })

  /** Instance A for even calls, B for odd ones. */
  const on = (i: number) => (i % 2 === 0 ? a : b)
  const valid = async (token: string) => (await checkSiteToken(a, token, 'news')).valid

  it('newest wins: two sessions minting at once on two instances leave exactly one live token', async () => {
    const sessionA = (await startSession(a, alice.id, 'device A')).session
    const sessionB = (await startSession(b, alice.id, 'device B')).session
    const [first, second] = await Promise.all([
      mintSiteToken(a, news, sessionA, defaultFrameKey.jkt),
      mintSiteToken(b, news, sessionB, defaultFrameKey.jkt),
    ])
    const statuses = await Promise.all([
      checkSiteToken(a, first.token, 'news'),
      checkSiteToken(b, second.token, 'news'),
    ])
    expect(statuses.filter((s) => s.valid)).toHaveLength(1)
    expect(statuses.filter((s) => !s.valid && s.reason === 'replaced')).toHaveLength(1)
  })

  it('newest wins: eight sessions minting at once leave exactly one live token and one live family', async () => {
    const sessions: SessionRecord[] = []
    for (let i = 0; i < 8; i++) sessions.push((await startSession(on(i), alice.id, `device ${i}`)).session)
    const minted = await Promise.all(
      sessions.map((s, i) => mintSiteToken(on(i), news, s, defaultFrameKey.jkt)),
    )
    const live = await Promise.all(minted.map((m) => valid(m.token)))
    expect(live.filter(Boolean)).toHaveLength(1)
    const heads = await Promise.all(minted.map((m) => storedFamily(a.store, m.refreshToken)))
    expect(heads.filter((h) => h?.revokedAt === null)).toHaveLength(1)
    const winner = live.indexOf(true)
    expect(heads[winner]?.revokedAt).toBeNull()
  })

  it('20 parallel refreshes of one credential over two instances: one successor, 20 identical answers, still signed in', async () => {
    const session = (await startSession(a, alice.id, 'device A')).session
    const g0 = JSON.parse((await mintSiteToken(a, news, session, defaultFrameKey.jkt)).body) as Grant
    const bodies = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        refreshSiteGrant(on(i), news, g0.refresh_token, defaultFrameKey.jkt),
      ),
    )
    expect(new Set(bodies).size).toBe(1)
    const g1 = JSON.parse(bodies[0] as string) as Grant
    expect(await storedFamily(a.store, g0.refresh_token)).toMatchObject({ generation: 1, revokedAt: null })
    expect((await storedFamily(a.store, g1.refresh_token))?.tokenJti).toBe(
      JSON.parse(atob(g1.access_token.split('.')[1] as string)).jti,
    )
    expect(await valid(g1.access_token)).toBe(true)
    const g2 = JSON.parse(await refreshSiteGrant(b, news, g1.refresh_token, defaultFrameKey.jkt)) as Grant
    expect(await valid(g2.access_token)).toBe(true)
    expect(events).toEqual([])
  })

  it('16 families of one session refreshed at once, twice over, on two instances: every refresh answered', async () => {
    const session = (await startSession(a, alice.id, 'device A')).session
    let heads: string[] = []
    for (let i = 0; i < 16; i++)
      heads.push((await mintSiteToken(a, news, session, defaultFrameKey.jkt)).refreshToken)
    for (let round = 0; round < 2; round++) {
      const bodies = await Promise.all(
        heads.map((h, i) => refreshSiteGrant(on(i + round), news, h, defaultFrameKey.jkt)),
      )
      heads = bodies.map((body) => (JSON.parse(body) as Grant).refresh_token)
    }
    const families = await Promise.all(heads.map((h) => storedFamily(a.store, h)))
    expect(families.map((f) => f?.generation)).toEqual(heads.map(() => 2))
    expect(events).toEqual([])
  })

  it('refreshes racing a sign-out on the other instance: nothing minted outlives the sign-out', async () => {
    const session = (await startSession(a, alice.id, 'device A')).session
    let grant = JSON.parse((await mintSiteToken(a, news, session, defaultFrameKey.jkt)).body) as Grant
    const issued: string[] = [grant.access_token]
    const refreshing = (async () => {
      for (let i = 0; i < 10; i++) {
        try {
          grant = JSON.parse(
            await refreshSiteGrant(a, news, grant.refresh_token, defaultFrameKey.jkt),
          ) as Grant
          issued.push(grant.access_token)
        } catch {
          return // refused: the sign-out came first
        }
      }
    })()
    await new Promise((resolve) => setTimeout(resolve, 5))
    await endSession(b, session, 'signed_out')
    await refreshing
    for (const token of issued) expect(await valid(token)).toBe(false)
    await expect(refreshSiteGrant(a, news, grant.refresh_token, defaultFrameKey.jkt)).rejects.toMatchObject({
      code: 'invalid_grant',
    })
  })
})
