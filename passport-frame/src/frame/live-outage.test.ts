import { afterEach, describe, expect, it, vi } from 'vitest'
import type { EndReason } from '../protocol/codes.ts'
import { settle } from '../test-support/fake-window.ts'
import { createLiveChannel, type LiveDeps, type SocketLike } from './live.ts'
import { FrameApiError } from './server-api.ts'

/** The frame's live channel with a fake socket factory and timers the test fires by hand. */
function setup(overrides: Partial<LiveDeps> = {}) {
  const sockets: SocketLike[] = []
  const timers: { fn: () => void; ms: number }[] = []
  const ended: EndReason[] = []
  const deps: LiveDeps = {
    siteId: 'news',
    wsOrigin: 'ws://passport.localhost:8080',
    token: vi.fn(async () => 'token'),
    authkey: () => 'authkey',
    prove: vi.fn(async () => 'proof'),
    check: vi.fn(async () => ({ valid: true, reason: null })),
    openSocket: () => {
      const socket: SocketLike = { onmessage: null, onclose: null, send: () => {}, close: () => {} }
      sockets.push(socket)
      return socket
    },
    openChannel: null,
    locks: null,
    storage: null,
    onEnded: (reason) => ended.push(reason),
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    ...overrides,
  }
  const live = createLiveChannel(deps)
  /** Fires the oldest pending timer and lets the reconnect run. */
  const fireTimer = async () => {
    const timer = timers.shift()
    if (!timer) throw new Error('no timer pending')
    timer.fn()
    await settle()
  }
  const last = () => sockets.at(-1) as SocketLike
  return { deps, live, sockets, timers, ended, fireTimer, last }
}

afterEach(() => vi.restoreAllMocks())

describe('live channel through a passing outage (@see issue 14)', () => {
  it('reconnects with doubling, jittered waits (1 s … 30 s), back to the start after a welcome', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(1)
    const env = setup()
    env.live.start()
    await settle()
    const waits: number[] = []
    for (let i = 0; i < 7; i++) {
      env.last().onclose?.({ code: 1006 }) // the passport went away
      waits.push((env.timers.at(-1) as { ms: number }).ms)
      await env.fireTimer()
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000])
    env.last().onmessage?.({ data: JSON.stringify({ type: 'welcome', last_event_id: 0 }) })
    vi.spyOn(Math, 'random').mockReturnValue(0)
    env.last().onclose?.({ code: 1006 })
    expect(env.timers.at(-1)?.ms).toBe(500) // jitter: half the step at the least
    expect(env.ended).toEqual([])
  })

  it('a token the unreachable passport cannot refresh is asked for again, never taken as a sign-out', async () => {
    const token = vi
      .fn<LiveDeps['token']>()
      .mockRejectedValueOnce(new FrameApiError('temporarily_unavailable'))
      .mockResolvedValue('token')
    const env = setup({ token })
    env.live.start()
    await settle()
    expect(env.sockets).toHaveLength(0)
    await env.fireTimer()
    expect(env.sockets).toHaveLength(1)
    expect(env.ended).toEqual([])
  })

  it('a re-check that cannot reach the passport retries instead of signing out', async () => {
    // Closed as "session ended", then the token cannot be refreshed: the passport is down.
    const token = vi
      .fn<LiveDeps['token']>()
      .mockResolvedValueOnce('token')
      .mockRejectedValueOnce(new FrameApiError('temporarily_unavailable'))
      .mockResolvedValue('token')
    const env = setup({ token })
    env.live.start()
    await settle()
    env.last().onclose?.({ code: 4000 })
    await settle()
    expect(env.ended).toEqual([])
    expect(env.timers).toHaveLength(1)
    await env.fireTimer()
    expect(env.sockets).toHaveLength(2)
  })

  it("the server's verdict on a re-check does end the sign-in", async () => {
    const token = vi
      .fn<LiveDeps['token']>()
      .mockResolvedValueOnce('token')
      .mockRejectedValueOnce(new FrameApiError('invalid_grant', 'revoked'))
    const env = setup({ token })
    env.live.start()
    await settle()
    env.last().onclose?.({ code: 4000 })
    await settle()
    expect(env.ended).toEqual(['revoked'])
  })
})
