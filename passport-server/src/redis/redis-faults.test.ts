import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../app.ts'
import { fixedClock } from '../clock.ts'
import { resolveConfig } from '../config.ts'
import type { AppDeps } from '../deps.ts'
import { createDeps } from '../server.ts'
import { startEventLogTail } from '../services/log-tail.ts'
import { publishEvents } from '../services/session-events.ts'
import { frameApi, signIn } from '../test-flows.ts'
import {
  ALL_LOGIN_MODES,
  addSite,
  addUser,
  type LogLine,
  NEWS_ORIGIN,
  T0,
  TEST_ISSUER,
  testMasterKey,
} from '../test-support.ts'
import { type OwnRedis, startOwnRedis, uniquePrefix, waitFor } from './test-redis.ts'

/**
 * Issue 15, item 5 (the Redis faults): two passport instances in one test process, on one SQLite
 * file, sharing a Redis of the test's own, which the test restarts and whose connections it
 * kills. Session events published on either instance during and after the fault reach the
 * other instance's subscribers exactly once, none missed; sign-in and refresh work throughout.
 */

let redis: OwnRedis
const dirs: string[] = []
const cleanups: (() => Promise<void>)[] = []

beforeAll(async () => {
  redis = await startOwnRedis()
}, 15_000)
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  // A test that stopped Redis leaves it stopped; the next one gets it back.
  await redis.stop()
  await redis.start()
}, 15_000)
afterAll(async () => {
  await redis?.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

interface Instance {
  deps: AppDeps
  app: ReturnType<typeof createApp>
  /** Ids of the session events this instance's subscribers heard, in order. */
  heard: number[]
  logs: LogLine[]
}

/**
 * Two instances with their log tails. `tailIntervalMs` long: the tail reads the log only when
 * the bus wakes it (reconnection), so what arrives proves the Redis path and its catch-up.
 */
async function twoInstances(tailIntervalMs: number): Promise<[Instance, Instance]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'passport-redis-'))
  dirs.push(dir)
  const storeFile = path.join(dir, 'passport.sqlite')
  const masterKey = testMasterKey()
  const config = resolveConfig({
    issuer: TEST_ISSUER,
    scryptCost: 1024,
    redisUrl: redis.url,
    redisKeyPrefix: uniquePrefix(),
  })
  const instances: Instance[] = []
  for (const _ of [1, 2]) {
    const logs: LogLine[] = []
    const deps = await createDeps({
      config,
      storeFile,
      masterKey,
      clock: fixedClock(T0),
      log: (event, fields = {}) => logs.push({ event, fields }),
    })
    const heard: number[] = []
    deps.events.subscribe((e) => heard.push(e.id))
    const stopTail = await startEventLogTail(deps, tailIntervalMs)
    cleanups.push(async () => {
      stopTail()
      await deps.events.close()
      await deps.store.close()
    })
    instances.push({ deps, app: createApp(deps), heard, logs })
  }
  const [a, b] = instances as [Instance, Instance]
  await waitFor(() => a.deps.events.ready() && b.deps.events.ready(), 5_000, 'both buses ready')
  return [a, b]
}

let sessionNumber = 0
/** What a sign-out does: the event is logged in the store, then published after the commit. */
async function signOutEvent(on: Instance): Promise<number> {
  sessionNumber += 1
  const row = await on.deps.store.events.append({
    type: 'session_ended',
    userId: 'u_alice',
    sessionId: `s-${sessionNumber}`,
    siteId: null,
    reason: 'signed_out',
    at: on.deps.clock.now(),
  })
  await publishEvents(on.deps, [row])
  return row.id
}

/** Each id once, none missing, none extra. */
function expectExactlyOnce(heard: number[], published: number[]) {
  expect([...heard].sort((x, y) => x - y)).toEqual([...published].sort((x, y) => x - y))
}

/** Alice and the News site, registered through one instance (the other reads the same store). */
async function aliceOnNews(on: Instance) {
  await addUser(on.deps, 'alice')
  return addSite(on.deps, { id: 'news', origins: [NEWS_ORIGIN], loginModes: ALL_LOGIN_MODES })
}

describe('Redis faults (own redis-server, two instances on one store)', () => {
  it('Redis restarted: events published during and after the outage reach the other instance exactly once; sign-in and refresh work during it', async () => {
    const [a, b] = await twoInstances(60_000)
    const site = await aliceOnNews(a)
    const published: number[] = []

    for (let i = 0; i < 5; i++) published.push(await signOutEvent(a))
    await waitFor(() => b.heard.length === 5, 3_000, 'events before the outage')

    await redis.stop()
    await waitFor(() => !a.deps.events.ready() && !b.deps.events.ready(), 5_000, 'buses see the outage')
    for (let i = 0; i < 5; i++) published.push(await signOutEvent(i % 2 === 0 ? a : b))
    // Sign-in on A, refresh on B, during the outage: counters and the DPoP replay cache fall back.
    const started = Date.now()
    const signedIn = await signIn(a.app, site, { username: 'alice', password: 'alice-password-1' })
    const refreshed = await frameApi(b.app, 'token', {
      grant_type: 'refresh_token',
      authkey: site.authkey,
      refresh_token: signedIn.body.refresh_token,
    })
    expect(refreshed.status).toBe(200)
    expect(Date.now() - started).toBeLessThan(3_000)

    await redis.start()
    await waitFor(() => a.deps.events.ready() && b.deps.events.ready(), 5_000, 'buses back')
    for (let i = 0; i < 5; i++) published.push(await signOutEvent(i % 2 === 0 ? b : a))

    await waitFor(() => a.heard.length >= 15 && b.heard.length >= 15, 5_000, 'every event on both')
    await new Promise((r) => setTimeout(r, 300)) // anything late and twice would show now
    expectExactlyOnce(a.heard, published)
    expectExactlyOnce(b.heard, published)
  })

  it('Redis hung (SIGSTOP): sign-in and refresh answer within a few seconds; events catch up once it answers', async () => {
    const [a, b] = await twoInstances(250)
    const site = await aliceOnNews(a)
    const published = [await signOutEvent(a)]
    await waitFor(() => b.heard.length === 1, 3_000, 'first event')
    redis.freeze()
    try {
      const started = Date.now()
      const signedIn = await signIn(b.app, site, { username: 'alice', password: 'alice-password-1' })
      const refreshed = await frameApi(a.app, 'token', {
        grant_type: 'refresh_token',
        authkey: site.authkey,
        refresh_token: signedIn.body.refresh_token,
      })
      expect(refreshed.status).toBe(200)
      // One command timeout (500 ms) per instance, then the counters leave Redis alone a while.
      expect(Date.now() - started).toBeLessThan(3_000)
      for (let i = 0; i < 3; i++) published.push(await signOutEvent(a))
    } finally {
      redis.thaw()
    }
    await waitFor(() => a.heard.length >= 4 && b.heard.length >= 4, 5_000, 'events after the thaw')
    await new Promise((r) => setTimeout(r, 400))
    expectExactlyOnce(a.heard, published)
    expectExactlyOnce(b.heard, published)
  })

  it('pushes go on from the log during the outage (default tail), still exactly once', async () => {
    const [a, b] = await twoInstances(250)
    const published: number[] = []
    published.push(await signOutEvent(a))
    await redis.stop()
    await waitFor(() => !b.deps.events.ready(), 5_000, 'outage seen')
    for (let i = 0; i < 3; i++) published.push(await signOutEvent(a))
    await waitFor(() => b.heard.length === 4, 3_000, 'events during the outage, from the log')
    await redis.start()
    await waitFor(() => a.deps.events.ready() && b.deps.events.ready(), 5_000, 'buses back')
    for (let i = 0; i < 3; i++) published.push(await signOutEvent(b))
    await waitFor(() => a.heard.length >= 7 && b.heard.length >= 7, 3_000, 'all events')
    await new Promise((r) => setTimeout(r, 400))
    expectExactlyOnce(a.heard, published)
    expectExactlyOnce(b.heard, published)
  })

  it('client connections killed mid-stream (CLIENT KILL): none missed, none twice', async () => {
    const [a, b] = await twoInstances(60_000)
    const published: number[] = []
    for (let i = 0; i < 120; i++) {
      if (i === 40 || i === 80) expect(await redis.killClients()).toBeGreaterThanOrEqual(6)
      published.push(await signOutEvent(i % 2 === 0 ? a : b))
      await new Promise((r) => setTimeout(r, 2))
    }
    await waitFor(() => a.heard.length >= 120 && b.heard.length >= 120, 8_000, 'all 120 events on both')
    await new Promise((r) => setTimeout(r, 300))
    expectExactlyOnce(a.heard, published)
    expectExactlyOnce(b.heard, published)
    expect(a.logs.some((l) => l.event === 'redis_unavailable')).toBe(true)
  })
})
