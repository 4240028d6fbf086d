import { beforeEach, describe, expect, it } from 'vitest'
import { T0 } from '../test-support.ts'
import { ENGINES, useEngine } from './test-engines.ts'
import type { Store } from './types.ts'

/** What the operator console reads and writes, the same on both engines. */
describe.each(ENGINES)('console repositories: %s', (engineName) => {
  const engine = useEngine(engineName)
  let store: Store
  beforeEach(() => {
    store = engine.store()
  })

  const user = (id: string) => ({ id, username: id, name: id, passwordHash: 'h', createdAt: T0 })

  it('users: the admin and disabled flags round-trip; list is by username', async () => {
    await store.users.create({ ...user('zed'), isAdmin: true })
    await store.users.create(user('amy'))
    expect((await store.users.list()).map((u) => u.username)).toEqual(['amy', 'zed'])
    expect((await store.users.findById('zed'))?.isAdmin).toBe(true)
    await store.users.setAdmin('zed', false)
    await store.users.setDisabled('amy', true)
    expect((await store.users.findById('zed'))?.isAdmin).toBeUndefined()
    expect((await store.users.findById('amy'))?.disabled).toBe(true)
  })

  it('sessions and tokens: only live ones are listed; the address is kept', async () => {
    const session = (id: string, over = {}) => ({
      id,
      userId: 'amy',
      createdAt: T0,
      expiresAt: T0 + 1000,
      endedAt: null,
      endReason: null,
      userAgent: 'ua',
      ...over,
    })
    await store.sessions.create(session('live', { address: '203.0.113.7', createdAt: T0 + 1 }))
    await store.sessions.create(session('ended', { endedAt: T0, endReason: 'signed_out' }))
    await store.sessions.create(session('expired', { expiresAt: T0 }))
    const live = await store.sessions.listLive(T0 + 10, 10)
    expect(live.map((s) => [s.id, s.address])).toEqual([['live', '203.0.113.7']])
    const token = (jti: string, over = {}) => ({
      jti,
      siteId: 'news',
      userId: 'amy',
      sessionId: 'live',
      issuedAt: T0,
      expiresAt: T0 + 1000,
      revokedAt: null,
      revokeReason: null,
      jkt: null,
      ...over,
    })
    await store.tokens.create(token('t1'))
    await store.tokens.create(token('t2', { revokedAt: T0, revokeReason: 'signed_out' }))
    await store.tokens.create(token('t3', { sessionId: 'other' }))
    expect((await store.tokens.listLive(T0 + 10)).map((t) => t.jti).sort()).toEqual(['t1', 't3'])
    expect((await store.tokens.listLive(T0 + 10, 'live')).map((t) => t.jti)).toEqual(['t1'])
    expect(await store.tokens.listLive(T0 + 2000)).toEqual([])
  })

  it('audit: newest first, filtered, paged by id, purged by age', async () => {
    const row = (type: string, at: number, userId: string | null = 'amy') => ({
      type,
      actor: 'cli',
      userId,
      siteId: 'news',
      sessionId: null,
      detail: '{}',
      at,
    })
    const first = await store.audit.append(row('sign_in', T0))
    const second = await store.audit.append(row('sign_out', T0 + 10))
    await store.audit.append(row('sign_in', T0 + 20, 'zed'))
    expect(second).toBeGreaterThan(first)
    expect((await store.audit.list({ limit: 10 })).map((r) => r.at)).toEqual([T0 + 20, T0 + 10, T0])
    expect((await store.audit.list({ limit: 10, userId: 'amy', type: 'sign_in' })).map((r) => r.id)).toEqual([
      first,
    ])
    expect((await store.audit.list({ limit: 10, since: T0 + 5, until: T0 + 15 })).map((r) => r.id)).toEqual([
      second,
    ])
    expect((await store.audit.list({ limit: 1, beforeId: second })).map((r) => r.id)).toEqual([first])
    expect(await store.audit.purge(T0 + 15)).toBe(2)
    expect(await store.audit.list({ limit: 10 })).toHaveLength(1)
  })
})
