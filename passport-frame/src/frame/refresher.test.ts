import { describe, expect, it, vi } from 'vitest'
import type { EndReason } from '../protocol/codes.ts'
import { MemoryStorage } from '../test-support/fake-window.ts'
import { createRefresher, FORCED_REFRESH_INTERVAL_MS, type LockManagerLike } from './refresher.ts'
import { FrameApiError, type TokenAnswer } from './server-api.ts'
import { createTokenCache, toCacheEntry } from './token-cache.ts'

const T0 = 1_700_000_000_000
const TWO_HOURS = 2 * 3600_000

/** Web Locks stand-in: one holder per name, the rest queue in order. */
function fakeLocks(): LockManagerLike {
  const tails = new Map<string, Promise<unknown>>()
  return {
    request: <T>(name: string, fn: () => Promise<T>) => {
      const run = (tails.get(name) ?? Promise.resolve()).then(fn, fn)
      tails.set(
        name,
        run.catch(() => undefined),
      )
      return run
    },
  }
}

/** A tiny timer queue the test advances by hand. */
function fakeTimers() {
  let queue: { at: number; fn: () => void; id: number }[] = []
  let nextId = 1
  const clock = { now: T0 }
  return {
    clock,
    setTimer: (fn: () => void, ms: number) => {
      const id = nextId++
      queue.push({ at: clock.now + ms, fn, id })
      return id
    },
    clearTimer: (id: unknown) => {
      queue = queue.filter((t) => t.id !== id)
    },
    pending: () => queue.map((t) => t.at - clock.now),
    /** Moves the clock to the next timer and fires it. */
    async fireNext() {
      queue.sort((a, b) => a.at - b.at)
      const next = queue.shift()
      if (!next) throw new Error('no timer pending')
      clock.now = Math.max(clock.now, next.at)
      next.fn()
      for (let i = 0; i < 10; i++) await Promise.resolve()
      await new Promise((r) => setTimeout(r, 0))
    },
  }
}

/** Server answers: 15-minute tokens refreshed 5 minutes early, server clock `serverSkew` ahead. */
function serverAnswers(serverNow: () => number) {
  let n = 0
  return vi.fn(async (_authkey: string, _refreshToken: string): Promise<TokenAnswer> => {
    n += 1
    const now = serverNow()
    return {
      token: `token-${n}`,
      expiresAt: now + 900_000,
      serverTime: now,
      refreshToken: `${'r'.repeat(42)}${n}`,
      refreshAt: now + 600_000,
      refreshExpiresAt: now + 86_400_000,
    }
  })
}

function tab(
  storage: MemoryStorage,
  locks: LockManagerLike,
  timers: ReturnType<typeof fakeTimers>,
  refresh: ReturnType<typeof serverAnswers>,
) {
  const signedOut: EndReason[] = []
  const cache = createTokenCache('news', storage, () => timers.clock.now)
  const refresher = createRefresher({
    siteId: 'news',
    api: { refresh },
    cache,
    authkey: () => 'authkey',
    locks,
    now: () => timers.clock.now,
    setTimer: timers.setTimer,
    clearTimer: timers.clearTimer,
    onSignedOut: (reason) => signedOut.push(reason),
  })
  return { cache, refresher, signedOut }
}

describe('monitoring refresh', () => {
  it('J6: refreshes at the server-given time even when the local clock is two hours wrong', async () => {
    for (const localSkew of [TWO_HOURS, -TWO_HOURS]) {
      const timers = fakeTimers()
      const serverNow = () => timers.clock.now - localSkew
      const refresh = serverAnswers(serverNow)
      const t = tab(new MemoryStorage(), fakeLocks(), timers, refresh)
      t.cache.write(toCacheEntry(await refresh('authkey', 'first'), timers.clock.now))
      refresh.mockClear()
      t.refresher.schedule()
      // Ten minutes on the server's clock, whatever the local clock says.
      expect(timers.pending()).toEqual([600_000])
      await timers.fireNext()
      expect(refresh).toHaveBeenCalledOnce()
      expect(t.cache.read()?.token).toBe('token-2')
      expect(timers.pending()).toEqual([600_000])
    }
  })

  it('three tabs of one site due at once: one refresh request, all see the new token', async () => {
    const timers = fakeTimers()
    const storage = new MemoryStorage()
    const locks = fakeLocks()
    const refresh = serverAnswers(() => timers.clock.now)
    const tabs = [1, 2, 3].map(() => tab(storage, locks, timers, refresh))
    tabs[0]?.cache.write(toCacheEntry(await refresh('authkey', 'first'), timers.clock.now))
    refresh.mockClear()
    for (const t of tabs) t.refresher.schedule()
    expect(timers.pending()).toEqual([600_000, 600_000, 600_000])
    for (let i = 0; i < 3; i++) await timers.fireNext()
    expect(refresh).toHaveBeenCalledOnce()
    for (const t of tabs) expect(t.cache.read()?.token).toBe('token-2')
  })

  it('a refused refresh clears the cache, signs the site out with the reason, and stops', async () => {
    const timers = fakeTimers()
    const refresh = serverAnswers(() => timers.clock.now)
    const t = tab(new MemoryStorage(), fakeLocks(), timers, refresh)
    t.cache.write(toCacheEntry(await refresh('authkey', 'first'), timers.clock.now))
    refresh.mockRejectedValue(new FrameApiError('invalid_grant', 'replaced'))
    t.refresher.schedule()
    await timers.fireNext()
    expect(t.signedOut).toEqual(['replaced'])
    expect(t.cache.readRenewable()).toBeNull()
    expect(timers.pending()).toEqual([])
  })

  it.each([
    [1, [5_000, 10_000, 20_000, 40_000, 60_000, 60_000]],
    [0, [2_500, 5_000, 10_000, 20_000, 30_000, 30_000]],
  ])(
    'a failing server is retried with jittered backoff (random %d: up to 5 s, 10 s, 20 s … 60 s, at least half), never in a loop',
    async (random, expected) => {
      const jitter = vi.spyOn(Math, 'random').mockReturnValue(random)
      try {
        const timers = fakeTimers()
        const refresh = serverAnswers(() => timers.clock.now)
        const t = tab(new MemoryStorage(), fakeLocks(), timers, refresh)
        t.cache.write(toCacheEntry(await refresh('authkey', 'first'), timers.clock.now))
        refresh.mockReset()
        refresh.mockRejectedValue(new FrameApiError('temporarily_unavailable'))
        t.refresher.schedule()
        const waits: number[] = []
        for (let i = 0; i < 6; i++) {
          await timers.fireNext()
          waits.push(...timers.pending())
        }
        expect(waits).toEqual(expected)
        expect(refresh).toHaveBeenCalledTimes(6)
        expect(t.signedOut).toEqual([])
      } finally {
        jitter.mockRestore()
      }
    },
  )

  it('a forced refresh rotates now, and two forced refreshes never present the same credential', async () => {
    const timers = fakeTimers()
    const refresh = serverAnswers(() => timers.clock.now)
    const storage = new MemoryStorage()
    const locks = fakeLocks()
    const a = tab(storage, locks, timers, refresh)
    const b = tab(storage, locks, timers, refresh)
    a.cache.write(toCacheEntry(await refresh('authkey', 'first'), timers.clock.now))
    refresh.mockClear()
    timers.clock.now += FORCED_REFRESH_INTERVAL_MS
    await a.refresher.refresh(true)
    timers.clock.now += FORCED_REFRESH_INTERVAL_MS
    await Promise.all([a.refresher.refresh(true), b.refresher.refresh(true)])
    const presented = refresh.mock.calls.map((call) => call[1])
    expect(presented).toHaveLength(2)
    expect(new Set(presented).size).toBe(2)
  })

  it('A10: a page looping passport.refresh() in two tabs gets one forced refresh per 30 s per site', async () => {
    const timers = fakeTimers()
    const refresh = serverAnswers(() => timers.clock.now)
    const storage = new MemoryStorage()
    const locks = fakeLocks()
    const tabs = [tab(storage, locks, timers, refresh), tab(storage, locks, timers, refresh)]
    tabs[0]?.cache.write(toCacheEntry(await refresh('authkey', 'first'), timers.clock.now))
    refresh.mockClear()
    timers.clock.now += FORCED_REFRESH_INTERVAL_MS
    // Two minutes of a loop: 100 forced refreshes a second from each tab.
    for (let second = 0; second < 120; second++) {
      const answers = await Promise.all(
        tabs.flatMap((t) => Array.from({ length: 100 }, () => t.refresher.refresh(true))),
      )
      for (const answer of answers) expect(answer.token).toBe(tabs[0]?.cache.read()?.token)
      timers.clock.now += 1000
    }
    expect(refresh).toHaveBeenCalledTimes(4) // at 0, 30, 60 and 90 s
  })

  it('without a refresh credential it refuses with login_required and calls nothing', async () => {
    const timers = fakeTimers()
    const refresh = serverAnswers(() => timers.clock.now)
    const t = tab(new MemoryStorage(), fakeLocks(), timers, refresh)
    t.cache.write({ token: 't', expiresAt: T0 + 900_000, clockOffsetMs: 0 })
    await expect(t.refresher.refresh(true)).rejects.toMatchObject({ code: 'login_required' })
    expect(refresh).not.toHaveBeenCalled()
  })
})
