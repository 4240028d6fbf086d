import { Redis } from 'ioredis'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { fixedClock } from '../clock.ts'
import { closeRedis, openRedis } from '../redis/client.ts'
import { deleteKeys, SHARED_REDIS_URL, uniquePrefix, waitFor } from '../redis/test-redis.ts'
import { addSite, addUser, createTestDeps, freePort, T0 } from '../test-support.ts'
import { startBackchannelLogout } from './backchannel-logout.ts'
import type { CounterStore } from './counters.ts'
import { createLoginThrottle } from './login-throttle.ts'
import { createSharedRateWindow } from './rate-window.ts'
import { createRedisCounters } from './redis-counters.ts'
import { createTimedBlock } from './timed-block.ts'

const keyPrefix = uniquePrefix()
const connections: Redis[] = []
afterEach(async () => {
  await Promise.all(connections.splice(0).map(closeRedis))
})
afterAll(async () => {
  await deleteKeys(SHARED_REDIS_URL, keyPrefix)
})

/** One instance's counters on the shared Redis (each instance has its own connection and memory). */
async function instance(url = SHARED_REDIS_URL, prefix = keyPrefix): Promise<CounterStore> {
  const redis = openRedis(url, () => {}, 'test')
  connections.push(redis)
  if (url === SHARED_REDIS_URL) await waitFor(() => redis.status === 'ready', 5_000, 'redis ready')
  return createRedisCounters({ redis, keyPrefix: prefix, clock: fixedClock(T0), log: () => {} })
}

describe('shared counters in Redis (two instances)', () => {
  it('G1: an account locked by failures spread over two instances is locked on both', async () => {
    const [a, b] = [await instance(), await instance()]
    const onA = createLoginThrottle(fixedClock(T0), a)
    const onB = createLoginThrottle(fixedClock(T0), b)
    const user = `alice-${keyPrefix}`
    for (let i = 0; i < 2; i++) expect(await onA.failed(user, '10.0.0.1')).toBe(false)
    for (let i = 0; i < 2; i++) expect(await onB.failed(user, '10.0.0.2')).toBe(false)
    expect(await onA.failed(user, '10.0.0.1')).toBe(true)
    expect(await onB.check(user, '10.0.0.3')).toEqual({
      allowed: false,
      scope: 'account',
      retryAfterSeconds: 60,
    })
    // A success on either clears it on both.
    await onB.succeeded(user)
    expect(await onA.check(user, '10.0.0.3')).toEqual({ allowed: true })
  })

  it('G2: an address window counts across instances', async () => {
    const [a, b] = [await instance(), await instance()]
    const windowA = createSharedRateWindow(a, 'test_window', 3, 60_000)
    const windowB = createSharedRateWindow(b, 'test_window', 3, 60_000)
    expect(await windowA.take('10.9.9.9')).toEqual({ allowed: true })
    expect(await windowB.take('10.9.9.9')).toEqual({ allowed: true })
    expect(await windowA.take('10.9.9.9')).toEqual({ allowed: true })
    const refused = await windowB.take('10.9.9.9')
    expect(refused.allowed).toBe(false)
    expect(refused.allowed === false && refused.retryAfterSeconds).toBeGreaterThan(55)
    expect((await windowA.check('10.9.9.9')).allowed).toBe(false)
  })

  it('a block set on one instance holds on the other', async () => {
    const [a, b] = [await instance(), await instance()]
    await createTimedBlock(a, 'test_block', 3_600_000).block('someone')
    expect(await createTimedBlock(b, 'test_block', 3_600_000).retryAfterSeconds('someone')).toBe(3600)
  })

  it('a DPoP jti spent on one instance is refused on the other (SET NX PX)', async () => {
    const [a, b] = [await instance(), await instance()]
    expect(await a.claimOnce('dpop_jti:k.j1', 600_000)).toBe('claimed')
    expect(await b.claimOnce('dpop_jti:k.j1', 600_000)).toBe('replayed')
    expect(await a.claimOnce('dpop_jti:k.j1', 600_000)).toBe('replayed')
    expect(await b.claimOnce('dpop_jti:k.j2', 600_000)).toBe('claimed')
  })

  it('a proof claimed and its key counted in one step: counted across instances, and only when the claim is new', async () => {
    const [a, b] = [await instance(), await instance()]
    const spend = (on: CounterStore, jti: string) =>
      on.claimThenIncrement(`dpop_jti:k.${jti}`, 600_000, 'frame_key:k', 60_000)
    expect(await spend(a, 't1')).toMatchObject({ claim: 'claimed', window: { count: 1 } })
    // Spent on A: refused on B, and the replay counts nothing against the key.
    expect(await spend(b, 't1')).toEqual({ claim: 'replayed', window: null })
    const second = await spend(b, 't2')
    expect(second).toMatchObject({ claim: 'claimed', window: { count: 2 } })
    expect(second.window?.resetInMs).toBeGreaterThan(55_000)
    // The same claims and windows as claimOnce and increment.
    expect(await a.claimOnce('dpop_jti:k.t2', 600_000)).toBe('replayed')
    expect(await a.increment('frame_key:k', 60_000)).toMatchObject({ count: 3 })
  })

  it('every key expires by itself and names no user or address', async () => {
    const prefix = uniquePrefix()
    const counters = await instance(SHARED_REDIS_URL, prefix)
    const throttle = createLoginThrottle(fixedClock(T0), counters)
    for (let i = 0; i < 6; i++) await throttle.failed('carol@example.com', '192.0.2.7')
    await counters.claimOnce('dpop_jti:x.y', 1_000)
    const admin = new Redis(SHARED_REDIS_URL)
    try {
      // The whole cursor: one SCAN call looks at ~COUNT slots only, so on a Redis that holds
      // other work's keys a single call can miss some of ours.
      const keys: string[] = []
      let cursor = '0'
      do {
        const [next, found] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
        keys.push(...found)
        cursor = next
      } while (cursor !== '0')
      expect(keys.length).toBe(4) // address window, failures, lock, claim
      for (const key of keys) {
        expect(key).not.toMatch(/carol|192\.0\.2\.7/)
        expect(await admin.pttl(key)).toBeGreaterThan(0)
      }
    } finally {
      admin.disconnect()
      await deleteKeys(SHARED_REDIS_URL, prefix)
    }
  })

  it('Redis gone: what this instance counted before still counts (its memory carries it)', async () => {
    const a = await instance()
    const window = createSharedRateWindow(a, 'test_window_gone', 3, 60_000)
    const block = createTimedBlock(a, 'test_block_gone', 60_000)
    await window.hit('10.1.1.1')
    await window.hit('10.1.1.1')
    await block.block('x')
    ;(connections[0] as Redis).disconnect()
    expect((await window.check('10.1.1.1')).allowed).toBe(true)
    await window.hit('10.1.1.1')
    expect((await window.check('10.1.1.1')).allowed).toBe(false)
    expect(await block.retryAfterSeconds('x')).toBe(60)
  })

  it('Redis gone: proofs this instance spent stay spent, and its count of the key goes on', async () => {
    const a = await instance()
    const spend = (jti: string) => a.claimThenIncrement(`dpop_jti:g.${jti}`, 600_000, 'frame_key:g', 60_000)
    expect(await spend('1')).toMatchObject({ claim: 'claimed', window: { count: 1 } })
    ;(connections[0] as Redis).disconnect()
    expect(await spend('1')).toEqual({ claim: 'replayed', window: null })
    expect(await spend('2')).toEqual({ claim: 'claimed', window: { count: 2, resetInMs: 60_000 } })
  })
})

describe('shared counters without Redis (fail-safe: per instance)', () => {
  it('sign-in limits still hold, from memory, at once', async () => {
    const port = await freePort() // nobody listens there
    const a = await instance(`redis://127.0.0.1:${port}`)
    const throttle = createLoginThrottle(fixedClock(T0), a)
    const started = Date.now()
    for (let i = 0; i < 4; i++) expect(await throttle.failed('dave', '10.0.0.1')).toBe(false)
    expect(await throttle.failed('dave', '10.0.0.1')).toBe(true)
    expect(await throttle.check('dave', '10.0.0.1')).toMatchObject({ allowed: false, scope: 'account' })
    expect(await a.claimOnce('dpop_jti:k.j', 1_000)).toBe('claimed')
    expect(await a.claimOnce('dpop_jti:k.j', 1_000)).toBe('replayed')
    expect(await a.claimThenIncrement('dpop_jti:k.i', 1_000, 'frame_key:k', 60_000)).toEqual({
      claim: 'claimed',
      window: { count: 1, resetInMs: 60_000 },
    })
    expect(await a.claimThenIncrement('dpop_jti:k.i', 1_000, 'frame_key:k', 60_000)).toEqual({
      claim: 'replayed',
      window: null,
    })
    expect(Date.now() - started).toBeLessThan(100)
  })
})

describe('back-channel logout with two instances', () => {
  it('a site gets one logout token per event, however many instances hear it', async () => {
    const sent: string[] = []
    const stops: (() => void)[] = []
    const instances = []
    for (const _ of [1, 2]) {
      const deps = await createTestDeps()
      deps.counters = await instance()
      await addUser(deps, 'alice')
      await addSite(deps, { id: 'news', backchannelLogoutUri: 'https://news.example/backchannel' })
      stops.push(
        startBackchannelLogout(deps, {
          fetchImpl: async (url) => {
            sent.push(String(url))
            return new Response(null, { status: 200 })
          },
        }),
      )
      instances.push(deps)
    }
    const event = {
      id: Math.floor(Math.random() * 1e9),
      type: 'site_access_ended' as const,
      userId: 'u_alice',
      sessionId: 's1',
      siteId: 'news',
      reason: 'revoked' as const,
      at: T0,
    }
    // Both instances hear the same event (as the Redis bus and the log tail make them).
    for (const deps of instances) await deps.events.publish(event)
    await waitFor(() => sent.length >= 1, 2_000, 'a logout token sent')
    await new Promise((r) => setTimeout(r, 100))
    for (const stop of stops) stop()
    expect(sent).toEqual(['https://news.example/backchannel'])
  })
})
