import { describe, expect, it, vi } from 'vitest'
import type { EndReason } from '../protocol/codes.ts'
import { MemoryStorage } from '../test-support/fake-window.ts'
import { createLiveChannel, type LiveDeps, type SocketLike } from './live.ts'
import { FrameApiError } from './server-api.ts'

/** A socket the test drives: what the frame sent, and hooks to answer as the server would. */
function fakeSocket(url: string, protocols: string[]) {
  const sent: string[] = []
  const socket: SocketLike & { url: string; protocols: string[]; sent: string[] } = {
    url,
    protocols,
    sent,
    onmessage: null,
    onclose: null,
    send: (data) => sent.push(data),
    close: () => socket.onclose?.({ code: 1000 }),
  }
  return socket
}

function harness(check: LiveDeps['check'] = async () => ({ valid: true, reason: null })) {
  const sockets: ReturnType<typeof fakeSocket>[] = []
  const timers: (() => void)[] = []
  const ended: EndReason[] = []
  const prove = vi.fn<LiveDeps['prove']>(async ({ challenge }) => `proof-over-${challenge}`)
  const checkSpy = vi.fn(check)
  const live = createLiveChannel({
    siteId: 'news',
    wsOrigin: 'ws://passport.localhost:8080',
    token: async () => 'site-token',
    authkey: () => 'authkey',
    prove,
    check: checkSpy,
    openSocket: (url, protocols) => {
      const s = fakeSocket(url, protocols)
      sockets.push(s)
      return s
    },
    openChannel: null,
    locks: null,
    storage: new MemoryStorage() as unknown as Storage,
    onEnded: (reason) => ended.push(reason),
    setTimer: (fn) => timers.push(fn),
  })
  const server = (socket: ReturnType<typeof fakeSocket> | undefined, message: unknown) =>
    socket?.onmessage?.({ data: JSON.stringify(message) })
  const settle = () => new Promise((r) => setTimeout(r, 0))
  return { live, sockets, timers, ended, prove, check: checkSpy, server, settle }
}

describe('the live channel, frame side (issue 13: authenticated on the socket itself)', () => {
  it('opens with no credential in the URL and answers the challenge with the token and a proof over it', async () => {
    const h = harness()
    h.live.start()
    await h.settle()
    const socket = h.sockets[0]
    expect(socket?.url).toBe('ws://passport.localhost:8080/live?site=news')
    expect(socket?.protocols).toEqual(['passport.v2'])
    expect(socket?.sent).toEqual([])
    h.server(socket, { type: 'challenge', nonce: 'n1' })
    await h.settle()
    expect(h.prove).toHaveBeenCalledWith({
      url: 'ws://passport.localhost:8080/live',
      token: 'site-token',
      challenge: 'n1',
    })
    expect(socket?.sent.map((m) => JSON.parse(m))).toEqual([
      { type: 'auth', token: 'site-token', proof: 'proof-over-n1' },
    ])
  })

  it('remembers where the log stood at welcome, and resumes from there after a dropped socket', async () => {
    const h = harness()
    h.live.start()
    await h.settle()
    h.server(h.sockets[0], { type: 'challenge', nonce: 'n1' })
    h.server(h.sockets[0], { type: 'welcome', last_event_id: 42 })
    h.sockets[0]?.onclose?.({ code: 1006 })
    h.timers.shift()?.()
    await h.settle()
    expect(h.sockets[1]?.url).toBe('ws://passport.localhost:8080/live?site=news&last_event_id=42')
  })

  it('refused (4401): asks whether the token ended, and signs out with the reason when it did', async () => {
    const h = harness(async () => ({ valid: false, reason: 'replaced' }))
    h.live.start()
    await h.settle()
    h.sockets[0]?.onclose?.({ code: 4401 })
    await h.settle()
    expect(h.check).toHaveBeenCalledWith('authkey', 'site-token')
    expect(h.ended).toEqual(['replaced'])
  })

  it('refused (4401) while the token is still valid: tries again later, signs nothing out', async () => {
    const h = harness()
    h.live.start()
    await h.settle()
    h.sockets[0]?.onclose?.({ code: 4401 })
    await h.settle()
    expect(h.ended).toEqual([])
    h.timers.shift()?.()
    await h.settle()
    expect(h.sockets).toHaveLength(2)
  })

  it('a frame whose key no longer opens its sign-in (storage cleared) is signed out of the site', async () => {
    const h = harness(async () => {
      throw new FrameApiError('invalid_dpop_proof')
    })
    h.live.start()
    await h.settle()
    h.sockets[0]?.onclose?.({ code: 4401 })
    await h.settle()
    expect(h.ended).toEqual(['unknown'])
  })

  it('a pushed ending signs out once', async () => {
    const h = harness()
    h.live.start()
    await h.settle()
    h.server(h.sockets[0], { type: 'welcome', last_event_id: 1 })
    h.server(h.sockets[0], { type: 'session_event', id: 2, reason: 'signed_out', site_id: null })
    h.sockets[0]?.onclose?.({ code: 4000 })
    await h.settle()
    expect(h.ended).toEqual(['signed_out'])
  })
})

describe('refresh_now (the monitoring terminal, a site backend)', () => {
  /** Two tabs' BroadcastChannels of one site, joined. */
  function channelPair() {
    const ends: {
      onmessage: ((e: { data: unknown }) => void) | null
      postMessage(m: unknown): void
      close(): void
    }[] = []
    const open = () => {
      const end = {
        onmessage: null as ((e: { data: unknown }) => void) | null,
        postMessage: (m: unknown) => {
          for (const other of ends) if (other !== end) other.onmessage?.({ data: structuredClone(m) })
        },
        close: () => {},
      }
      ends.push(end)
      return end
    }
    return open
  }

  it("refreshes on the request and tells the site's other tabs only when the token changed", async () => {
    const openChannel = channelPair()
    const heard: string[] = []
    let changed = true
    const onRefreshNow = vi.fn(async () => changed)
    const sockets: ReturnType<typeof fakeSocket>[] = []
    const base = {
      siteId: 'news',
      wsOrigin: 'ws://passport.localhost:8080',
      token: async () => 'site-token',
      authkey: () => 'authkey',
      prove: async () => 'proof',
      check: async () => ({ valid: true, reason: null }),
      openSocket: (url: string, protocols: string[]) => {
        const s = fakeSocket(url, protocols)
        sockets.push(s)
        return s
      },
      openChannel,
      locks: null,
      storage: new MemoryStorage() as unknown as Storage,
      onEnded: () => {},
      setTimer: () => 0,
    }
    const leader = createLiveChannel({ ...base, onRefreshNow, onRefreshed: () => heard.push('leader') })
    createLiveChannel({ ...base, onRefreshed: () => heard.push('follower') })
    leader.start()
    await new Promise((r) => setTimeout(r, 0))
    const say = (m: unknown) => sockets[0]?.onmessage?.({ data: JSON.stringify(m) })
    say({ type: 'challenge', nonce: 'n1' })
    say({ type: 'welcome', last_event_id: 1 })
    say({ type: 'refresh_now', request_id: 'r1' })
    await new Promise((r) => setTimeout(r, 0))
    expect(onRefreshNow).toHaveBeenCalledTimes(1)
    expect(heard).toEqual(['follower'])
    changed = false // held by the 30 s forced-refresh limit: nothing new to tell
    say({ type: 'refresh_now', request_id: 'r2' })
    await new Promise((r) => setTimeout(r, 0))
    expect(onRefreshNow).toHaveBeenCalledTimes(2)
    expect(heard).toEqual(['follower'])
  })
})
