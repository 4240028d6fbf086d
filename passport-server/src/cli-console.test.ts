import { describe, expect, it } from 'vitest'
import { type CliIo, runCli } from './cli.ts'
import type { SessionEndEvent } from './events/bus.ts'
import { recordAudit } from './services/audit.ts'
import { startSession } from './services/sessions.ts'
import { addUser, createTestDeps } from './test-support.ts'

/** @see issue 19: the CLI side of the console (admin role, disabling, the audit log). */
function fakeIo(secret = 'a-long-password\n') {
  const lines: string[] = []
  const io: CliIo = { out: (line) => lines.push(line), readSecret: async () => secret }
  return { io, lines }
}

describe('passport CLI: admins, disabling, audit', () => {
  it('user add --admin makes an admin; user admin on|off changes it; both are audited', async () => {
    const deps = await createTestDeps()
    expect(await runCli(deps, ['user', 'add', 'root', '--admin'], fakeIo().io)).toBe(0)
    const root = await deps.store.users.findByUsername('root')
    expect(root?.isAdmin).toBe(true)
    expect(await runCli(deps, ['user', 'admin', 'root', 'off'], fakeIo().io)).toBe(0)
    expect((await deps.store.users.findByUsername('root'))?.isAdmin).toBeUndefined()
    expect(await runCli(deps, ['user', 'admin', 'root', 'maybe'], fakeIo().io)).toBe(2)
    const t = fakeIo()
    expect(await runCli(deps, ['audit', '--user', 'root'], t.io)).toBe(0)
    expect(t.lines.map((l) => l.split('\t')[1])).toEqual(['cli_admin_revoked', 'cli_user_added'])
  })

  it('user disable ends every session, pushed, and user enable lifts it', async () => {
    const deps = await createTestDeps()
    const alice = await addUser(deps, 'alice')
    await startSession(deps, alice.id, 'ua')
    await startSession(deps, alice.id, 'ua')
    const ended: SessionEndEvent[] = []
    deps.events.subscribe((e) => ended.push(e))
    const t = fakeIo()
    expect(await runCli(deps, ['user', 'disable', 'alice'], t.io)).toBe(0)
    expect(t.lines[0]).toBe('alice disabled; 2 session(s) signed out')
    expect(ended).toHaveLength(2)
    expect((await deps.store.users.findById(alice.id))?.disabled).toBe(true)
    expect(await runCli(deps, ['user', 'enable', 'alice'], fakeIo().io)).toBe(0)
    expect((await deps.store.users.findById(alice.id))?.disabled).toBeUndefined()
  })

  it('audit filters by site, type and time, newest first', async () => {
    const deps = await createTestDeps()
    await recordAudit(deps, { type: 'a', actor: null, siteId: 'news' })
    deps.clock.advance(3_600_000)
    await recordAudit(deps, { type: 'b', actor: null, siteId: 'shop' })
    await recordAudit(deps, { type: 'c', actor: null, siteId: 'news' })
    const types = async (...args: string[]) => {
      const t = fakeIo()
      expect(await runCli(deps, ['audit', ...args], t.io)).toBe(0)
      return t.lines.map((l) => l.split('\t')[1])
    }
    expect(await types('--site', 'news')).toEqual(['c', 'a'])
    expect(await types('--type', 'b')).toEqual(['b'])
    const since = new Date(deps.clock.now() - 60_000).toISOString()
    expect(await types('--since', since)).toEqual(['c', 'b'])
    expect(await types('--until', since)).toEqual(['a'])
    expect(await types('--limit', '1')).toEqual(['c'])
    expect(await runCli(deps, ['audit', '--since', 'yesterday'], fakeIo().io)).toBe(1)
  })
})
