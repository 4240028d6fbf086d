import type { Redis } from 'ioredis'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { closeRedis, openRedis } from '../redis/client.ts'
import { deleteKeys, SHARED_REDIS_URL, uniquePrefix, waitFor } from '../redis/test-redis.ts'
import { freePort } from '../test-support.ts'
import { createRedisPresence } from './redis-presence.ts'

const keyPrefix = uniquePrefix()
const connections: Redis[] = []
const closers: (() => void)[] = []
afterEach(async () => {
  for (const close of closers.splice(0)) close()
  await Promise.all(connections.splice(0).map(closeRedis))
})
afterAll(async () => {
  await deleteKeys(SHARED_REDIS_URL, keyPrefix)
})

async function instance(options: { ttlMs?: number; heartbeatMs?: number; url?: string } = {}) {
  const redis = openRedis(options.url ?? SHARED_REDIS_URL, () => {}, 'test')
  connections.push(redis)
  if (!options.url) await waitFor(() => redis.status === 'ready', 5_000, 'redis ready')
  const presence = createRedisPresence({ redis, keyPrefix, log: () => {}, ...options })
  closers.push(() => presence.close())
  return { presence, redis }
}
const socket = (sessionId: string, siteId: string) => ({ sessionId, siteId, userId: 'u', connectedAt: 0 })
const settle = () => new Promise((r) => setTimeout(r, 50))

describe('live-socket presence in Redis', () => {
  it('counts the sockets of every instance, and forgets closed ones', async () => {
    const a = await instance()
    const b = await instance()
    const s1 = `s1-${keyPrefix}`
    const s2 = `s2-${keyPrefix}`
    const closeNewsA = a.presence.connected(socket(s1, 'news'))
    a.presence.connected(socket(s1, 'shop'))
    b.presence.connected(socket(s1, 'news'))
    b.presence.connected(socket(s2, 'docs'))
    await settle()
    for (const { presence } of [a, b]) {
      expect(await presence.countsBySession([s1, s2, 'nobody'])).toEqual(
        new Map([
          [s1, 3],
          [s2, 1],
        ]),
      )
      expect(await presence.countsBySessionSite(s1)).toEqual(
        new Map([
          ['news', 2],
          ['shop', 1],
        ]),
      )
    }
    closeNewsA()
    closeNewsA() // a close reported twice counts once
    await settle()
    expect(await b.presence.countsBySessionSite(s1)).toEqual(
      new Map([
        ['news', 1],
        ['shop', 1],
      ]),
    )
  })

  it("a crashed instance's sockets stop counting once its record expires", async () => {
    const a = await instance()
    const crashed = await instance({ ttlMs: 300, heartbeatMs: 100 })
    const s = `s-crash-${keyPrefix}`
    a.presence.connected(socket(s, 'news'))
    crashed.presence.connected(socket(s, 'news'))
    await settle()
    expect(await a.presence.countsBySession([s])).toEqual(new Map([[s, 2]]))
    // The process dies: no close, no more heartbeats.
    crashed.redis.disconnect()
    await waitFor(async () => (await a.presence.countsBySession([s])).get(s) === 1, 2_000, 'expiry')
  })

  it('rewrites its record when Redis forgot it (a restart without persistence)', async () => {
    const a = await instance({ heartbeatMs: 100 })
    const b = await instance()
    const s = `s-restart-${keyPrefix}`
    a.presence.connected(socket(s, 'news'))
    await settle()
    await deleteKeys(SHARED_REDIS_URL, `${keyPrefix}presence:`)
    await waitFor(async () => (await b.presence.countsBySession([s])).get(s) === 1, 2_000, 'rewrite')
  })

  it('without Redis it reports what this instance knows', async () => {
    const port = await freePort()
    const { presence } = await instance({ url: `redis://127.0.0.1:${port}` })
    presence.connected(socket('s-alone', 'news'))
    expect(await presence.countsBySession(['s-alone'])).toEqual(new Map([['s-alone', 1]]))
    expect(await presence.countsBySessionSite('s-alone')).toEqual(new Map([['news', 1]]))
  })
})
