import { beforeEach, describe, expect, it } from 'vitest'
import { sha256 } from '../crypto/random.ts'
import type { SessionEndEvent } from '../events/bus.ts'
import type { SiteRecord } from '../store/types.ts'
import { defaultFrameKey } from '../test-dpop.ts'
import { addSite, addUser, allLogText, createTestDeps, T0, type TestDeps } from '../test-support.ts'
import { mintSiteToken } from './minting.ts'
import { endSession, findLiveSession, startSession } from './sessions.ts'
import { checkSiteToken } from './token-status.ts'

describe('passport sessions', () => {
  let deps: TestDeps
  let userId: string
  let news: SiteRecord
  let shop: SiteRecord
  let events: SessionEndEvent[]

  beforeEach(async () => {
    deps = await createTestDeps()
    userId = (await addUser(deps, 'alice')).id
    news = (await addSite(deps, { id: 'news' })).site
    shop = (await addSite(deps, { id: 'shop' })).site
    events = []
    deps.events.subscribe((e) => events.push(e))
  })

  it('starts a session keyed by the hash of a random cookie value', async () => {
    const { cookieValue, session } = await startSession(deps, userId, 'Mozilla/5.0')
    expect(cookieValue).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(session).toEqual({
      id: sha256(cookieValue),
      userId,
      createdAt: T0,
      expiresAt: T0 + deps.config.sessionTtlSeconds * 1000,
      endedAt: null,
      endReason: null,
      userAgent: 'Mozilla/5.0',
      method: 'password',
    })
    expect(await deps.store.sessions.get(session.id)).toEqual(session)
    expect(await deps.store.sessions.get(cookieValue)).toBeNull()
    expect((await startSession(deps, userId, 'x')).cookieValue).not.toBe(cookieValue)
  })

  it('stores at most 256 characters of the user agent', async () => {
    const { session } = await startSession(deps, userId, 'u'.repeat(1000))
    expect(session.userAgent).toHaveLength(256)
  })

  it('finds the live session by its cookie value, and by nothing else', async () => {
    const { cookieValue, session } = await startSession(deps, userId, 'ua')
    expect(await findLiveSession(deps, cookieValue)).toEqual(session)
    expect(await findLiveSession(deps, session.id)).toBeNull()
    expect(await findLiveSession(deps, undefined)).toBeNull()
    expect(await findLiveSession(deps, '')).toBeNull()
    expect(await findLiveSession(deps, `${cookieValue}x`)).toBeNull()
    expect(await findLiveSession(deps, 'c'.repeat(129))).toBeNull()
  })

  it('stops finding a session at its absolute lifetime, however active it is', async () => {
    const { cookieValue, session } = await startSession(deps, userId, 'ua')
    const day = 86_400_000
    for (let t = day; t < deps.config.sessionTtlSeconds * 1000; t += day) {
      deps.clock.advance(day)
      await deps.store.sessions.touch(session.id, deps.clock.now())
    }
    deps.clock.set(session.createdAt + deps.config.sessionTtlSeconds * 1000 - 1)
    expect(await findLiveSession(deps, cookieValue)).not.toBeNull()
    deps.clock.advance(1)
    expect(await findLiveSession(deps, cookieValue)).toBeNull()
  })

  it('stops finding a session idle past the idle timeout; activity keeps it alive', async () => {
    const { cookieValue, session } = await startSession(deps, userId, 'ua')
    const idle = deps.config.sessionIdleSeconds * 1000
    deps.clock.advance(idle - 1)
    await deps.store.sessions.touch(session.id, deps.clock.now())
    deps.clock.advance(idle - 1)
    expect(await findLiveSession(deps, cookieValue)).not.toBeNull()
    deps.clock.advance(1)
    expect(await findLiveSession(deps, cookieValue)).toBeNull()
  })

  it('B12: ends a session and every token it holds, and tells the event bus once', async () => {
    const { cookieValue, session } = await startSession(deps, userId, 'ua')
    const other = (await startSession(deps, userId, 'other')).session
    const onNews = await mintSiteToken(deps, news, session, defaultFrameKey.jkt)
    const onShop = await mintSiteToken(deps, shop, session, defaultFrameKey.jkt)
    const otherShop = await mintSiteToken(
      deps,
      { ...shop, oneDevicePerSite: false },
      other,
      defaultFrameKey.jkt,
    )
    deps.clock.advance(1000)

    await endSession(deps, session, 'signed_out')

    expect(await findLiveSession(deps, cookieValue)).toBeNull()
    expect(await deps.store.sessions.get(session.id)).toMatchObject({
      endedAt: T0 + 1000,
      endReason: 'signed_out',
    })
    expect(await checkSiteToken(deps, onNews.token, 'news')).toMatchObject({
      valid: false,
      reason: 'signed_out',
    })
    expect(await checkSiteToken(deps, onShop.token, 'shop')).toMatchObject({
      valid: false,
      reason: 'signed_out',
    })
    expect((await checkSiteToken(deps, otherShop.token, 'shop')).valid).toBe(true)
    // Written to the durable log in the same transaction, published with its id.
    expect(await deps.store.events.since(session.id, 0, 10)).toEqual([
      expect.objectContaining({ id: 1, reason: 'signed_out' }),
    ])
    expect(events).toEqual([
      { id: 1, type: 'session_ended', userId, sessionId: session.id, reason: 'signed_out', at: T0 + 1000 },
    ])
    expect(deps.logs).toContainEqual({
      event: 'session_logout',
      fields: { user: userId, reason: 'signed_out' },
    })
    expect(allLogText(deps.logs)).not.toContain(cookieValue)
  })

  it('does nothing more when an ended session is ended again', async () => {
    const { session } = await startSession(deps, userId, 'ua')
    await endSession(deps, session, 'signed_out')
    deps.clock.advance(1000)
    await endSession(deps, session, 'revoked')
    expect(events).toHaveLength(1)
    expect(await deps.store.sessions.get(session.id)).toMatchObject({ endedAt: T0, endReason: 'signed_out' })
  })
})
