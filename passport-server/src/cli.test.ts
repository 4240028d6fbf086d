import { beforeEach, describe, expect, it } from 'vitest'
import { CLI_USAGE, type CliIo, runCli } from './cli.ts'
import { verifyPassword } from './crypto/password.ts'
import type { SessionEndEvent } from './events/bus.ts'
import { authenticateSite, resolveAuthkey } from './services/registry.ts'
import { startSession } from './services/sessions.ts'
import { addUser, createTestDeps, NEWS_ORIGIN, SHOP_ORIGIN, type TestDeps } from './test-support.ts'
import { loadOrCreateKeys } from './tokens/keys.ts'

const PASSWORD = 'correct horse battery staple'

/** A terminal the test reads: every printed line, and how often the password was asked for. */
function fakeIo(secret = `${PASSWORD}\n`) {
  const lines: string[] = []
  let reads = 0
  const io: CliIo = {
    out: (line) => lines.push(line),
    readSecret: async () => {
      reads++
      return secret
    },
  }
  return { io, lines, text: () => lines.join('\n'), reads: () => reads }
}

/** The value printed after a `label:` line. */
function printed(lines: string[], label: string): string {
  const line = lines.find((l) => l.startsWith(`${label}:`)) ?? ''
  return (
    line
      .slice(label.length + 1)
      .trim()
      .split(/\s+/)[0] ?? ''
  )
}

describe('passport CLI', () => {
  let deps: TestDeps
  beforeEach(async () => {
    deps = await createTestDeps()
  })

  const run = (argv: string[], t = fakeIo()) => runCli(deps, argv, t.io)
  const addNews = (t = fakeIo()) => run(['site', 'add', '--id', 'news', '--origin', NEWS_ORIGIN], t)

  describe('site add', () => {
    it('registers a site and prints a working authkey and client secret', async () => {
      const t = fakeIo()
      expect(await addNews(t)).toBe(0)
      expect(t.lines[0]).toBe('site news registered (version 1)')
      const site = await deps.store.sites.get('news')
      expect(site).toMatchObject({
        origins: [NEWS_ORIGIN],
        redirectUris: [`${NEWS_ORIGIN}/`],
        authkeyVersion: 1,
      })
      expect((await resolveAuthkey(deps, printed(t.lines, 'authkey'))).id).toBe('news')
      const secret = printed(t.lines, 'client secret')
      const basic = `Basic ${Buffer.from(`news:${secret}`).toString('base64')}`
      expect((await authenticateSite(deps, basic)).id).toBe('news')
    })

    it('gives a new site password sign-in only; device and CIBA are opt-in with --login-mode', async () => {
      expect(await addNews()).toBe(0)
      expect((await deps.store.sites.get('news'))?.loginModes).toEqual(['password'])
      const modes = ['--login-mode', 'password', '--login-mode', 'device', '--login-mode', 'ciba']
      expect(await run(['site', 'add', '--id', 'news', '--origin', NEWS_ORIGIN, ...modes], fakeIo())).toBe(0)
      expect((await deps.store.sites.get('news'))?.loginModes).toEqual(['password', 'device', 'ciba'])
    })

    it('takes every option', async () => {
      const code = await run([
        'site',
        'add',
        '--id',
        'shop',
        '--origin',
        SHOP_ORIGIN,
        '--origin',
        'https://shop.example',
        '--name',
        'The Shop',
        '--redirect-uri',
        `${SHOP_ORIGIN}/cb`,
        '--redirect-uri',
        'https://shop.example/cb',
        '--login-mode',
        'password',
        '--token-ttl',
        '120',
        '--one-device-per-site',
        'false',
      ])
      expect(code).toBe(0)
      expect(await deps.store.sites.get('shop')).toMatchObject({
        name: 'The Shop',
        origins: [SHOP_ORIGIN, 'https://shop.example'],
        redirectUris: [`${SHOP_ORIGIN}/cb`, 'https://shop.example/cb'],
        loginModes: ['password'],
        tokenTtlSeconds: 120,
        oneDevicePerSite: false,
      })
    })

    it('replaces the config of an existing site and voids its earlier authkeys', async () => {
      const first = fakeIo()
      await addNews(first)
      const second = fakeIo()
      expect(await addNews(second)).toBe(0)
      expect(second.lines[0]).toBe('site news registered (version 2)')
      await expect(resolveAuthkey(deps, printed(first.lines, 'authkey'))).rejects.toMatchObject({
        code: 'invalid_authkey',
      })
      expect((await resolveAuthkey(deps, printed(second.lines, 'authkey'))).authkeyVersion).toBe(2)
    })

    it.each<[string, string[]]>([
      ['no --id', ['--origin', NEWS_ORIGIN]],
      ['no --origin', ['--id', 'news']],
      ['a wildcard origin', ['--id', 'news', '--origin', 'http://*.localhost:8081']],
      [
        'a redirect URI on another origin',
        ['--id', 'news', '--origin', NEWS_ORIGIN, '--redirect-uri', `${SHOP_ORIGIN}/`],
      ],
      ['a non-numeric --token-ttl', ['--id', 'news', '--origin', NEWS_ORIGIN, '--token-ttl', 'soon']],
      [
        'a bad --one-device-per-site',
        ['--id', 'news', '--origin', NEWS_ORIGIN, '--one-device-per-site', 'yes'],
      ],
      ['an unknown --login-mode', ['--id', 'news', '--origin', NEWS_ORIGIN, '--login-mode', 'magic']],
    ])('fails with %s, prints an error and registers nothing', async (_name, args) => {
      const t = fakeIo()
      expect(await run(['site', 'add', ...args], t)).toBe(1)
      expect(t.lines).toHaveLength(1)
      expect(t.lines[0]).toMatch(/^error: invalid_request: /)
      expect(await deps.store.sites.list()).toEqual([])
    })
  })

  describe('site list, remove and authkey', () => {
    it('lists no sites, then every site without its secrets', async () => {
      const empty = fakeIo()
      expect(await run(['site', 'list'], empty)).toBe(0)
      expect(empty.lines).toEqual(['no sites registered'])

      const added = fakeIo()
      await run(
        ['site', 'add', '--id', 'shop', '--origin', SHOP_ORIGIN, '--one-device-per-site', 'false'],
        added,
      )
      await addNews()
      const t = fakeIo()
      expect(await run(['site', 'list'], t)).toBe(0)
      expect(t.lines).toEqual([
        `news\tnews\t${NEWS_ORIGIN}\tttl=900s\trefresh=300s-before,idle=86400s,max=2592000s\tone-device=true\tdpop-bound=false\tv1`,
        `shop\tshop\t${SHOP_ORIGIN}\tttl=900s\trefresh=300s-before,idle=86400s,max=2592000s\tone-device=false\tdpop-bound=false\tv1`,
      ])
      const shop = await deps.store.sites.get('shop')
      expect(t.text()).not.toContain(printed(added.lines, 'client secret'))
      expect(t.text()).not.toContain(shop?.clientSecretHash)
    })

    it('removes a site, after which its authkey stops working', async () => {
      const added = fakeIo()
      await addNews(added)
      const t = fakeIo()
      expect(await run(['site', 'remove', 'news'], t)).toBe(0)
      expect(t.lines).toEqual(['site news removed'])
      expect(await deps.store.sites.get('news')).toBeNull()
      await expect(resolveAuthkey(deps, printed(added.lines, 'authkey'))).rejects.toMatchObject({
        code: 'invalid_authkey',
      })
    })

    it('fails to remove an unknown site', async () => {
      const t = fakeIo()
      expect(await run(['site', 'remove', 'nope'], t)).toBe(1)
      expect(t.lines).toEqual(['no site nope'])
    })

    it('prints a fresh authkey at the same version, keeping the old one valid', async () => {
      const added = fakeIo()
      await addNews(added)
      const t = fakeIo()
      expect(await run(['site', 'authkey', 'news'], t)).toBe(0)
      expect(t.lines).toHaveLength(1)
      const fresh = t.lines[0] ?? ''
      expect(fresh).not.toBe(printed(added.lines, 'authkey'))
      expect((await resolveAuthkey(deps, fresh)).authkeyVersion).toBe(1)
      expect((await resolveAuthkey(deps, printed(added.lines, 'authkey'))).id).toBe('news')
    })

    it('fails to print an authkey for an unknown site', async () => {
      const t = fakeIo()
      expect(await run(['site', 'authkey', 'nope'], t)).toBe(1)
      expect(t.lines).toEqual(['no site nope'])
    })
  })

  describe('user add', () => {
    it('creates a user with the password read from the io, and never prints it', async () => {
      const t = fakeIo()
      expect(await run(['user', 'add', 'alice', '--name', 'Alice A.'], t)).toBe(0)
      expect(t.reads()).toBe(1)
      expect(t.lines).toEqual(['user alice created'])
      const user = await deps.store.users.findByUsername('alice')
      expect(user).toMatchObject({ username: 'alice', name: 'Alice A.' })
      expect(user?.passwordHash).not.toContain(PASSWORD)
      // The trailing newline from standard input is not part of the password.
      expect(await verifyPassword(PASSWORD, user?.passwordHash ?? '')).toBe(true)
      expect(t.text()).not.toContain(PASSWORD)
    })

    it('uses the username as the name by default', async () => {
      await run(['user', 'add', 'bob'])
      expect((await deps.store.users.findByUsername('bob'))?.name).toBe('bob')
    })

    it('refuses a short password without creating the user or printing the password', async () => {
      const t = fakeIo('short77\n')
      expect(await run(['user', 'add', 'alice'], t)).toBe(1)
      expect(t.lines[0]).toMatch(/^error: invalid_request: /)
      expect(t.text()).not.toContain('short77')
      expect(await deps.store.users.findByUsername('alice')).toBeNull()
    })

    it('refuses an existing username before asking for a password', async () => {
      await run(['user', 'add', 'alice'])
      const before = await deps.store.users.findByUsername('alice')
      const t = fakeIo('another password 2')
      expect(await run(['user', 'add', 'alice'], t)).toBe(1)
      expect(t.reads()).toBe(0)
      expect(t.lines[0]).toMatch(/^error: invalid_request: /)
      expect(await deps.store.users.findByUsername('alice')).toEqual(before)
    })

    it.each(['../alice', 'al ice', 'a'.repeat(65), 'alice;drop'])(
      'refuses the username %j before asking for a password',
      async (username) => {
        const t = fakeIo()
        expect(await run(['user', 'add', username], t)).toBe(1)
        expect(t.reads()).toBe(0)
        expect(await deps.store.users.findByUsername(username)).toBeNull()
      },
    )
  })

  describe('session list and revoke', () => {
    it("lists the user's sessions and revokes one, which is published like any other end", async () => {
      const alice = await addUser(deps, 'alice')
      const { session } = await startSession(deps, alice.id, 'Firefox on Linux')
      const events: SessionEndEvent[] = []
      deps.events.subscribe((e) => events.push(e))
      const list = fakeIo()
      list.io.presence = async (ids) => ({ ok: true, sessions: { [ids[0] ?? '']: { news: 1 } } })
      expect(await run(['session', 'list', '--user', 'alice'], list)).toBe(0)
      expect(list.lines).toEqual([
        expect.stringMatching(new RegExp(`^${session.id}\t.*\tlive\tsockets=news:1\tFirefox on Linux$`)),
      ])
      // No passport answering: the sessions are still listed, their sockets unknown.
      const offline = fakeIo()
      expect(await run(['session', 'list', '--user', 'alice'], offline)).toBe(0)
      expect(offline.lines[0]).toMatch(/\tlive\tsockets=\?\t/)
      expect(offline.lines[1]).toBe('(live sockets unknown: the management listener is off)')
      const revoke = fakeIo()
      expect(await run(['session', 'revoke', session.id], revoke)).toBe(0)
      expect(events).toEqual([expect.objectContaining({ sessionId: session.id, reason: 'revoked' })])
      expect((await deps.store.sessions.get(session.id))?.endReason).toBe('revoked')
      // A session id may begin with '-' (base64url): it is still an id, not an option.
      await deps.store.sessions.create({ ...session, id: '-dash-first', endedAt: null, endReason: null })
      const dash = fakeIo()
      expect(await run(['session', 'revoke', '-dash-first'], dash)).toBe(0)
      expect(dash.lines).toEqual(['session -dash-first revoked'])
      const unknown = fakeIo()
      expect(await run(['session', 'revoke', 'nope'], unknown)).toBe(1)
      expect(unknown.lines[0]).toMatch(/^error: not_found/)
    })
  })

  describe('user password', () => {
    it('sets a new password and signs the user out everywhere, never printing it', async () => {
      const alice = await addUser(deps, 'alice')
      const a = (await startSession(deps, alice.id, 'A')).session
      const b = (await startSession(deps, alice.id, 'B')).session
      const events: SessionEndEvent[] = []
      deps.events.subscribe((e) => events.push(e))
      const t = fakeIo('a-brand-new-password\n')
      expect(await run(['user', 'password', 'alice'], t)).toBe(0)
      expect(t.lines).toEqual(['password of alice changed; 2 session(s) signed out'])
      expect(events.map((e) => [e.sessionId, e.reason]).sort()).toEqual(
        [
          [a.id, 'revoked'],
          [b.id, 'revoked'],
        ].sort(),
      )
      const stored = await deps.store.users.findById(alice.id)
      expect(await verifyPassword('a-brand-new-password', stored?.passwordHash ?? '')).toBe(true)
      expect(await verifyPassword(alice.password, stored?.passwordHash ?? '')).toBe(false)
    })
  })

  describe('keys rotate', () => {
    it('publishes a new signing key that signs after the delay, and prints no secret', async () => {
      const t = fakeIo()
      const before = (await loadOrCreateKeys(deps.store.secrets, deps.clock.now())).current.kid
      expect(await run(['keys', 'rotate'], t)).toBe(0)
      expect(t.lines[0]).toMatch(/^signing key [0-9a-f-]{36} published; it signs from /)
      const later = await loadOrCreateKeys(deps.store.secrets, deps.clock.now() + 6 * 60_000)
      expect(later.current.kid).not.toBe(before)
      expect(later.jwks.keys.map((k) => k.kid)).toContain(before)
      expect(t.lines.join('\n')).not.toMatch(/"d"|privateJwk/)
    })
  })

  describe('bad arguments', () => {
    it.each<[string, string[]]>([
      ['no command', []],
      ['an unknown noun', ['frobnicate']],
      ['a noun without a verb', ['site']],
      ['an unknown verb', ['site', 'rename', 'news']],
      ['site remove without an id', ['site', 'remove']],
      ['site authkey without an id', ['site', 'authkey']],
      ['user add without a username', ['user', 'add']],
    ])('prints the usage and exits 2 for %s, changing nothing', async (_name, argv) => {
      const t = fakeIo()
      expect(await run(argv, t)).toBe(2)
      expect(t.lines).toEqual([CLI_USAGE])
      expect(t.reads()).toBe(0)
      expect(await deps.store.sites.list()).toEqual([])
    })

    it.each<[string, string[]]>([
      ['an unknown option', ['site', 'add', '--id', 'news', '--origin', NEWS_ORIGIN, '--bogus']],
      ['an option without its value', ['site', 'add', '--id', 'news', '--origin']],
    ])('names %s, prints the usage, exits 2 and registers nothing', async (_name, argv) => {
      const t = fakeIo()
      expect(await run(argv, t)).toBe(2)
      expect(t.lines[0]).toMatch(/^error: /)
      expect(t.lines[1]).toBe(CLI_USAGE)
      expect(await deps.store.sites.list()).toEqual([])
    })
  })

  describe('--json (issue 19: CLI parity)', () => {
    const json = async (argv: string[], t = fakeIo()) => {
      const code = await run([...argv, '--json'], t)
      expect(t.lines).toHaveLength(1)
      return { code, value: JSON.parse(t.lines[0] ?? '') as Record<string, unknown> }
    }

    it('site add, list, authkey and remove answer one stable JSON object each', async () => {
      const added = await json(['site', 'add', '--id', 'news', '--origin', NEWS_ORIGIN, '--name', 'News'])
      expect(added.code).toBe(0)
      expect(added.value).toEqual({
        site: {
          id: 'news',
          name: 'News',
          origins: [NEWS_ORIGIN],
          redirect_uris: [`${NEWS_ORIGIN}/`],
          login_modes: ['password'],
          token_ttl_seconds: 900,
          refresh_before_seconds: 300,
          refresh_idle_seconds: 86400,
          refresh_absolute_seconds: 2592000,
          one_device_per_site: true,
          dpop_bound_tokens: false,
          backchannel_logout_uri: null,
          authkey_version: 1,
        },
        authkey: expect.any(String),
        client_id: 'news',
        client_secret: expect.any(String),
      })
      expect((await resolveAuthkey(deps, added.value.authkey as string)).id).toBe('news')
      const listed = await json(['site', 'list'])
      expect(listed.value).toEqual({ sites: [added.value.site] })
      expect(JSON.stringify(listed.value)).not.toContain(added.value.client_secret as string)
      const authkey = await json(['site', 'authkey', 'news'])
      expect(authkey.value).toEqual({ id: 'news', authkey: expect.any(String) })
      expect(await json(['site', 'authkey', 'nope'])).toEqual({
        code: 1,
        value: { error: 'not_found', error_description: 'no site nope' },
      })
      expect(await json(['site', 'remove', 'news'])).toEqual({
        code: 0,
        value: { id: 'news', removed: true },
      })
      expect(await json(['site', 'remove', 'news'])).toEqual({
        code: 1,
        value: { id: 'news', removed: false },
      })
    })

    it('user add and user password; errors as {error, error_description} with the same exit codes', async () => {
      const added = await json(['user', 'add', 'carol', '--name', 'Carol'])
      expect(added).toEqual({
        code: 0,
        value: { user: { id: expect.stringMatching(/^u_/), username: 'carol', name: 'Carol' } },
      })
      expect(await json(['user', 'add', 'carol'])).toEqual({
        code: 1,
        value: { error: 'invalid_request', error_description: 'user carol exists' },
      })
      const carol = await deps.store.users.findByUsername('carol')
      await startSession(deps, carol?.id ?? '', 'A')
      expect(await json(['user', 'password', 'carol'], fakeIo('another good password\n'))).toEqual({
        code: 0,
        value: { username: 'carol', sessions_signed_out: 1 },
      })
      expect(await json(['site', 'add', '--bogus'])).toMatchObject({
        code: 2,
        value: { error: 'invalid_request' },
      })
      expect(await json(['nothing'])).toEqual({
        code: 2,
        value: { error: 'invalid_request', error_description: 'unknown command' },
      })
    })

    it('session list with live sockets per site, and session revoke', async () => {
      const alice = await addUser(deps, 'alice')
      const { session } = await startSession(deps, alice.id, 'Firefox on Linux')
      const ended = (await startSession(deps, alice.id, 'Old phone')).session
      await run(['session', 'revoke', ended.id])
      const t = fakeIo()
      const asked: string[][] = []
      t.io.presence = async (ids) => {
        asked.push(ids)
        return { ok: true, sessions: { [session.id]: { news: 1, shop: 2 } } }
      }
      const listed = await json(['session', 'list', '--user', 'alice'], t)
      expect(asked).toEqual([[session.id]]) // only live sessions are asked about
      const sessions = listed.value.sessions as Record<string, unknown>[]
      expect(listed.value).toMatchObject({ user: { id: alice.id, username: 'alice' }, presence: 'ok' })
      expect(sessions.find((s) => s.id === session.id)).toEqual({
        id: session.id,
        state: 'live',
        end_reason: null,
        created_at: new Date(session.createdAt).toISOString(),
        last_seen_at: null,
        expires_at: new Date(session.expiresAt).toISOString(),
        method: 'password',
        user_agent: 'Firefox on Linux',
        live_sockets: { news: 1, shop: 2 },
      })
      expect(sessions.find((s) => s.id === ended.id)).toMatchObject({ state: 'ended', end_reason: 'revoked' })
      const offline = await json(['session', 'list', '--user', 'alice'])
      expect(offline.value.presence).toBe('unavailable')
      expect(
        (offline.value.sessions as { live_sockets: unknown }[]).some((s) => s.live_sockets === null),
      ).toBe(true)
      expect(await json(['session', 'revoke', session.id])).toEqual({
        code: 0,
        value: { id: session.id, revoked: true, end_reason: 'revoked' },
      })
      expect(await json(['session', 'revoke', session.id])).toEqual({
        code: 0,
        value: { id: session.id, revoked: false, end_reason: 'revoked' },
      })
    })

    it('keys rotate', async () => {
      const rotated = await json(['keys', 'rotate'])
      expect(rotated).toEqual({
        code: 0,
        value: { kid: expect.any(String), active_from: expect.any(String), dropped: [] },
      })
    })
  })
})
