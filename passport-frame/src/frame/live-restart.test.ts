import { describe, expect, it, vi } from 'vitest'
import type { EndReason } from '../protocol/codes.ts'
import { CLOSE_RESTARTING } from '../protocol/live.ts'
import { MemoryStorage, settle } from '../test-support/fake-window.ts'
import { createLiveChannel, type LiveDeps, type SocketLike } from './live.ts'

/** The live channel with fake sockets whose URLs are kept, and timers fired by hand. */
function setup() {
  const sockets: (SocketLike & { url: string })[] = []
  const timers: { fn: () => void; ms: number }[] = []
  const ended: EndReason[] = []
  const check = vi.fn<LiveDeps['check']>(async () => ({ valid: true, reason: null }))
  const live = createLiveChannel({
    siteId: 'news',
    wsOrigin: 'ws://passport.localhost:8080',
    token: async () => 'token',
    authkey: () => 'authkey',
    prove: async () => 'proof',
    check,
    openSocket: (url) => {
      const socket = { url, onmessage: null, onclose: null, send: () => {}, close: () => {} }
      sockets.push(socket)
      return socket
    },
    openChannel: null,
    locks: null,
    storage: new MemoryStorage() as unknown as Storage,
    onEnded: (reason) => ended.push(reason),
    setTimer: (fn, ms) => timers.push({ fn, ms }),
  })
  const server = (socket: SocketLike | undefined, message: unknown) =>
    socket?.onmessage?.({ data: JSON.stringify(message) })
  return { live, sockets, timers, ended, check, server }
}

describe('the live channel when its instance shuts down (issue 15: rolling restarts)', () => {
  it('CLOSE_RESTARTING: reconnects within a second, resumes from the last event id, signs nothing out', async () => {
    const h = setup()
    h.live.start()
    await settle()
    h.server(h.sockets[0], { type: 'welcome', last_event_id: 7 })
    h.sockets[0]?.onclose?.({ code: CLOSE_RESTARTING })
    await settle()
    expect(h.check).not.toHaveBeenCalled()
    expect(h.ended).toEqual([])
    expect(h.timers).toHaveLength(1)
    const wait = h.timers[0]?.ms ?? -1
    expect(wait).toBeGreaterThanOrEqual(0)
    expect(wait).toBeLessThanOrEqual(1_000)
    h.timers.shift()?.fn()
    await settle()
    expect(h.sockets[1]?.url).toBe('ws://passport.localhost:8080/live?site=news&last_event_id=7')
  })

  it('waits less than an ordinary drop after many failed attempts (the backoff is not applied)', async () => {
    const h = setup()
    h.live.start()
    await settle()
    // Five drops in a row without a welcome: the ordinary backoff has grown to 16 s or more.
    for (let i = 0; i < 5; i += 1) {
      h.sockets.at(-1)?.onclose?.({ code: 1006 })
      await settle()
      h.timers.shift()?.fn()
      await settle()
    }
    h.sockets.at(-1)?.onclose?.({ code: CLOSE_RESTARTING })
    await settle()
    expect(h.timers.at(-1)?.ms).toBeLessThanOrEqual(1_000)
    expect(h.ended).toEqual([])
  })
})
