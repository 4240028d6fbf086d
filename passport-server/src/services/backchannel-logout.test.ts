import { describe, expect, it, vi } from 'vitest'
import { addSite, addUser, createTestDeps } from '../test-support.ts'
import { startBackchannelLogout } from './backchannel-logout.ts'

describe('back-channel logout retries', () => {
  it('a retry that throws from its bare timer is logged, not left as an unhandled rejection (@see issue 14)', async () => {
    const deps = await createTestDeps()
    const alice = await addUser(deps, 'alice')
    await addSite(deps, { id: 'news', backchannelLogoutUri: 'http://127.0.0.1:9/backchannel-logout' })
    const timers: (() => void)[] = []
    const stop = startBackchannelLogout(deps, {
      fetchImpl: async () => new Response(null, { status: 503 }),
      setTimer: (fn) => void timers.push(fn),
    })
    await deps.events.publish({
      id: 1,
      type: 'site_access_ended',
      userId: alice.id,
      sessionId: 's1',
      siteId: 'news',
      reason: 'revoked',
      at: deps.clock.now(),
    })
    // The first attempt failed: one retry waits (waited for, not slept on: the machine may be busy).
    await vi.waitFor(() => expect(timers).toHaveLength(1))
    // Between the attempt and its retry the signing key became unusable: signing now throws.
    deps.keys.current = { ...deps.keys.current, privateKey: deps.keys.authkeyKey }
    timers[0]?.()
    await new Promise((r) => setTimeout(r, 20))
    stop()
    expect(deps.logs.map((l) => l.event)).toContain('backchannel_logout_failed')
  })
})
