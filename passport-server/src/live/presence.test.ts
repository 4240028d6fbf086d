import { describe, expect, it } from 'vitest'
import { createInProcessPresence } from './presence.ts'

const info = (sessionId: string, siteId: string) => ({ sessionId, siteId, userId: 'u_alice', connectedAt: 1 })

describe('in-process live presence', () => {
  it('counts open sockets per session and per site until they close', async () => {
    const presence = createInProcessPresence()
    const closeNews = presence.connected(info('s1', 'news'))
    const closeNews2 = presence.connected(info('s1', 'news'))
    const closeShop = presence.connected(info('s1', 'shop'))
    presence.connected(info('s2', 'news'))

    expect(await presence.countsBySession(['s1', 's2', 's3'])).toEqual(
      new Map([
        ['s1', 3],
        ['s2', 1],
      ]),
    )
    expect(await presence.countsBySessionSite('s1')).toEqual(
      new Map([
        ['news', 2],
        ['shop', 1],
      ]),
    )

    closeNews()
    closeNews() // a second report of the same close changes nothing
    closeShop()
    expect(await presence.countsBySessionSite('s1')).toEqual(new Map([['news', 1]]))
    closeNews2()
    expect(await presence.countsBySession(['s1'])).toEqual(new Map())
  })
})
