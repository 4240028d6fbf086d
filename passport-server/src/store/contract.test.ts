import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../errors.ts'
import { T0 } from '../test-support.ts'
import { createEngine, ENGINES, type TestEngine } from './test-engines.ts'
import type {
  ApprovalRecord,
  CodeRecord,
  RefreshFamilyRecord,
  RefreshRecord,
  SessionEventRecord,
  SessionRecord,
  SiteRecord,
  Store,
  TokenRecord,
  UserRecord,
} from './types.ts'

/**
 * The store contract (`types.ts`), run against every engine on a real database: SQLite in a
 * file, PostgreSQL in a database of its own. What only one engine does (SQLite's migrations of
 * old files, PostgreSQL's concurrent migrations) is tested beside that engine.
 */

const user = (id: string, username = id): UserRecord => ({
  id,
  username,
  name: username,
  passwordHash: 'scrypt$1024$8$1$salt$hash',
  createdAt: T0,
})
const site = (id: string, over: Partial<SiteRecord> = {}): SiteRecord => ({
  id,
  name: id,
  origins: [`http://${id}.localhost:8081`],
  redirectUris: [`http://${id}.localhost:8081/`],
  loginModes: ['password'],
  tokenTtlSeconds: 900,
  refreshIdleSeconds: 86_400,
  refreshAbsoluteSeconds: 30 * 86_400,
  refreshBeforeSeconds: 300,
  backchannelLogoutUri: null,
  oneDevicePerSite: true,
  dpopBoundTokens: false,
  authkeyVersion: 1,
  clientSecretHash: 'hash',
  createdAt: T0,
  ...over,
})
const session = (id: string, over: Partial<SessionRecord> = {}): SessionRecord => ({
  id,
  userId: 'u_alice',
  createdAt: T0,
  expiresAt: T0 + 86_400_000,
  endedAt: null,
  endReason: null,
  userAgent: 'test',
  ...over,
})
const code = (hash: string): CodeRecord => ({
  hash,
  siteId: 'news',
  userId: 'u_alice',
  sessionId: 'session-a',
  redirectUri: 'http://news.localhost:8081/',
  codeChallenge: 'challenge',
  expiresAt: T0 + 60_000,
  usedAt: null,
})
const token = (jti: string, over: Partial<TokenRecord> = {}): TokenRecord => ({
  jti,
  siteId: 'news',
  userId: 'u_alice',
  sessionId: 'session-a',
  issuedAt: T0,
  expiresAt: T0 + 900_000,
  revokedAt: null,
  revokeReason: null,
  jkt: 'key-thumbprint',
  ...over,
})
const refresh = (hash: string, over: Partial<RefreshRecord> = {}): RefreshRecord => ({
  hash,
  familyId: 'family-1',
  generation: 0,
  siteId: 'news',
  userId: 'u_alice',
  sessionId: 'session-a',
  issuedAt: T0,
  idleExpiresAt: T0 + 86_400_000,
  absoluteExpiresAt: T0 + 30 * 86_400_000,
  usedAt: null,
  successorHash: null,
  successorSealed: null,
  revokedAt: null,
  revokeReason: null,
  jkt: 'key-thumbprint',
  ...over,
})
const family = (familyId: string, over: Partial<RefreshFamilyRecord> = {}): RefreshFamilyRecord => ({
  familyId,
  siteId: 'news',
  userId: 'u_alice',
  sessionId: 'session-a',
  jkt: 'key-thumbprint',
  generation: 0,
  issuedAt: T0,
  idleExpiresAt: T0 + 86_400_000,
  absoluteExpiresAt: T0 + 30 * 86_400_000,
  tokenJti: `jti-${familyId}-0`,
  tokenExpiresAt: T0 + 900_000,
  revokedAt: null,
  revokeReason: null,
  ...over,
})
const approval = (id: string, over: Partial<ApprovalRecord> = {}): ApprovalRecord => ({
  id,
  secretHash: `secret-${id}`,
  kind: 'browser',
  userId: 'u_alice',
  requestedFor: 'alice-hash',
  siteId: 'news',
  code: '42',
  userAgent: 'Firefox',
  address: '10.0.0.1',
  context: '{}',
  createdAt: T0,
  expiresAt: T0 + 120_000,
  status: 'pending',
  decidedAt: null,
  decidedBy: null,
  ...over,
})
const ended = (sessionId: string, at: number): Omit<SessionEventRecord, 'id'> => ({
  type: 'session_ended',
  userId: 'u_alice',
  sessionId,
  siteId: null,
  reason: 'signed_out',
  at,
})
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.each(ENGINES)('store contract: %s', (engineName) => {
  let engine: TestEngine
  let store: Store
  const opened: Store[] = []
  /** Another store on the same database: another instance of the server. */
  const another = async () => {
    const other = await engine.open()
    opened.push(other)
    return other
  }

  beforeAll(async () => {
    engine = await createEngine(engineName)
  })
  afterAll(async () => {
    await engine?.dispose()
  })
  beforeEach(async () => {
    await engine.reset()
    store = await engine.open()
  })
  afterEach(async () => {
    for (const s of [store, ...opened.splice(0)]) await s.close().catch(() => undefined)
  })

  describe('transactions', () => {
    it('commits every write of a transaction and returns its value', async () => {
      const value = await store.transaction(async (tx) => {
        await tx.users.create(user('u_alice'))
        await tx.sites.create(site('news'))
        return 'done'
      })
      expect(value).toBe('done')
      expect(await store.users.findById('u_alice')).toEqual(user('u_alice'))
      expect(await store.sites.get('news')).toEqual(site('news'))
    })

    it('rolls back every write when the function throws, and rethrows the same error', async () => {
      const boom = new Error('boom')
      await expect(
        store.transaction(async (tx) => {
          await tx.users.create(user('u_alice'))
          await tx.sites.create(site('news'))
          throw boom
        }),
      ).rejects.toBe(boom)
      expect(await store.users.findById('u_alice')).toBeNull()
      expect(await store.sites.get('news')).toBeNull()
    })

    it('rolls back earlier writes when a later statement fails', async () => {
      await expect(
        store.transaction(async (tx) => {
          await tx.users.create(user('u_alice'))
          await tx.users.create(user('u_alice2', 'u_alice')) // duplicate username
        }),
      ).rejects.toThrow()
      expect(await store.users.findById('u_alice')).toBeNull()
    })

    it('stays usable after a rollback', async () => {
      await expect(store.transaction(() => Promise.reject(new Error('no')))).rejects.toThrow('no')
      await store.transaction((tx) => tx.users.create(user('u_bob')))
      expect(await store.users.findById('u_bob')).not.toBeNull()
    })

    it('keeps its writes from calls made outside it until it commits, and never takes theirs with it', async () => {
      let release = () => {}
      const gate = new Promise<void>((resolve) => {
        release = resolve
      })
      let wrote = () => {}
      const written = new Promise<void>((resolve) => {
        wrote = resolve
      })
      const tx = store.transaction(async (t) => {
        await t.users.create(user('u_alice'))
        wrote()
        await gate
        throw new Error('abort')
      })
      await Promise.race([written, sleep(50)])
      const read = store.users.findById('u_alice')
      // An outside write issued meanwhile must not be rolled back with the transaction.
      const write = store.users.create(user('u_bob'))
      await sleep(20)
      release()
      await expect(tx).rejects.toThrow('abort')
      expect(await read).toBeNull()
      await write
      expect(await store.users.findById('u_bob')).not.toBeNull()
      expect(await store.users.findById('u_alice')).toBeNull()
    })

    it('is seen whole by another instance once committed', async () => {
      const other = await another()
      await store.transaction(async (tx) => {
        await tx.users.create(user('u_alice'))
        await tx.sessions.create(session('s1'))
      })
      expect(await other.users.findById('u_alice')).not.toBeNull()
      expect(await other.sessions.get('s1')).not.toBeNull()
    })
  })

  describe('users and secrets', () => {
    it('refuses a second user with the same username', async () => {
      await store.users.create(user('u_1', 'alice'))
      await expect(store.users.create(user('u_2', 'alice'))).rejects.toThrow()
      expect(await store.users.findByUsername('alice')).toMatchObject({ id: 'u_1' })
    })

    it('changes a password hash', async () => {
      await store.users.create(user('u_alice', 'alice'))
      await store.users.setPasswordHash('u_alice', 'scrypt$new')
      expect((await store.users.findByUsername('alice'))?.passwordHash).toBe('scrypt$new')
      expect(await store.users.findById('nobody')).toBeNull()
    })

    it('keeps the first value of a secret unless put over', async () => {
      expect(await store.secrets.get('k')).toBeNull()
      expect(await store.secrets.putIfAbsent('k', 'first')).toBe('first')
      expect(await store.secrets.putIfAbsent('k', 'second')).toBe('first')
      expect(await store.secrets.get('k')).toBe('first')
      await store.secrets.put('k', 'third')
      expect(await store.secrets.get('k')).toBe('third')
    })

    it('gives every instance racing at first start the same secret', async () => {
      const stores = [store, await another(), await another()]
      const values = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          (stores[i % 3] as Store).secrets.putIfAbsent('signing', `v${i}`),
        ),
      )
      expect(new Set(values).size).toBe(1)
      expect(await store.secrets.get('signing')).toBe(values[0])
    })
  })

  describe('sites', () => {
    it('round-trips sites, including arrays and booleans, lists them by id and removes them', async () => {
      await store.sites.create(
        site('shop', {
          oneDevicePerSite: false,
          dpopBoundTokens: true,
          origins: ['http://a:1', 'http://b:2'],
          backchannelLogoutUri: 'http://shop.localhost:8082/logout',
        }),
      )
      await store.sites.create(site('news'))
      expect(await store.sites.get('shop')).toEqual(
        site('shop', {
          oneDevicePerSite: false,
          dpopBoundTokens: true,
          origins: ['http://a:1', 'http://b:2'],
          backchannelLogoutUri: 'http://shop.localhost:8082/logout',
        }),
      )
      expect((await store.sites.list()).map((s) => s.id)).toEqual(['news', 'shop'])
      await store.sites.update(site('news', { authkeyVersion: 2, tokenTtlSeconds: 60 }))
      expect(await store.sites.get('news')).toMatchObject({ authkeyVersion: 2, tokenTtlSeconds: 60 })
      expect(await store.sites.remove('news')).toBe(true)
      expect(await store.sites.remove('news')).toBe(false)
      expect(await store.sites.get('news')).toBeNull()
    })

    it('remembers the highest authkey version of a removed site id', async () => {
      expect(await store.sites.retiredVersion('news')).toBe(0)
      await store.sites.create(site('news', { authkeyVersion: 5 }))
      await store.sites.remove('news')
      expect(await store.sites.retiredVersion('news')).toBe(5)
      await store.sites.create(site('news', { authkeyVersion: 3 }))
      await store.sites.remove('news')
      expect(await store.sites.retiredVersion('news')).toBe(5)
      await store.sites.create(site('news', { authkeyVersion: 7 }))
      await store.transaction((tx) => tx.sites.remove('news'))
      expect(await store.sites.retiredVersion('news')).toBe(7)
    })

    it('hands out site records nobody can change: they are shared between requests', async () => {
      await store.sites.create(site('news'))
      const read = (await store.sites.get('news')) as SiteRecord
      expect(() => read.origins.push('http://evil.localhost:8083')).toThrow(TypeError)
      expect(() => Object.assign(read, { authkeyVersion: 9 })).toThrow(TypeError)
      expect(await store.sites.get('news')).toEqual(site('news'))
    })

    it('forgets a site read inside a transaction that rolled back its change', async () => {
      await store.sites.create(site('news'))
      await expect(
        store.transaction(async (tx) => {
          await tx.sites.update(site('news', { authkeyVersion: 2 }))
          expect((await tx.sites.get('news'))?.authkeyVersion).toBe(2)
          throw new Error('changed my mind')
        }),
      ).rejects.toThrow('changed my mind')
      expect((await store.sites.get('news'))?.authkeyVersion).toBe(1)
    })

    it('sees a site changed or removed by another connection (the CLI, another server) on the next request', async () => {
      await store.sites.create(site('news'))
      await store.sites.create(site('shop'))
      expect((await store.sites.get('news'))?.authkeyVersion).toBe(1)
      expect(await store.sites.get('blog')).toBeNull()
      await engine.exec(
        "UPDATE sites SET authkey_version = 2, client_secret_hash = 'rotated' WHERE id = 'news'",
      )
      await engine.exec("DELETE FROM sites WHERE id = 'shop'")
      await engine.exec(`INSERT INTO sites (id, name, origins, redirect_uris, login_modes, token_ttl_seconds,
        refresh_idle_seconds, refresh_absolute_seconds, refresh_before_seconds, backchannel_logout_uri,
        one_device_per_site, dpop_bound_tokens, authkey_version, client_secret_hash, created_at)
        SELECT 'blog', name, origins, redirect_uris, login_modes, token_ttl_seconds,
        refresh_idle_seconds, refresh_absolute_seconds, refresh_before_seconds, backchannel_logout_uri,
        one_device_per_site, dpop_bound_tokens, authkey_version, client_secret_hash, created_at
        FROM sites WHERE id = 'news'`)
      // The SQLite store asks whether another connection committed at most once a millisecond.
      await sleep(5)
      expect(await store.sites.get('news')).toMatchObject({ authkeyVersion: 2, clientSecretHash: 'rotated' })
      expect(await store.sites.get('shop')).toBeNull()
      expect((await store.sites.get('blog'))?.id).toBe('blog')
    })

    it("keeps a site's FedCM opt-in and dialog links, and leaves them out where unset", async () => {
      const links = {
        privacyPolicyUrl: 'https://news.example/privacy',
        termsOfServiceUrl: 'https://news.example/terms',
      }
      await store.sites.create(site('news', { fedcm: true, ...links }))
      await store.sites.create(site('shop'))
      expect(await store.sites.get('news')).toMatchObject({ fedcm: true, ...links })
      expect(await store.sites.get('shop')).toEqual(site('shop'))
      await store.sites.update(site('news'))
      expect(await store.sites.get('news')).toEqual(site('news'))
    })
  })

  describe('sessions', () => {
    it('ends a session once, keeping the first reason', async () => {
      await store.sessions.create(session('s1', { expiresAt: T0 + 1000 }))
      expect(await store.sessions.end('s1', 'signed_out', T0 + 1)).toBe(true)
      expect(await store.sessions.end('s1', 'revoked', T0 + 2)).toBe(false)
      expect(await store.sessions.get('s1')).toMatchObject({ endedAt: T0 + 1, endReason: 'signed_out' })
      expect(await store.sessions.end('unknown', 'revoked', T0)).toBe(false)
    })

    it('round-trips the sign-in method and the last activity, absent when never set', async () => {
      await store.sessions.create(session('old'))
      await store.sessions.create(session('new', { method: 'device_approval' }))
      const old = await store.sessions.get('old')
      expect(old).toEqual(session('old'))
      expect(old && ('method' in old || 'lastSeenAt' in old)).toBe(false)
      await store.sessions.touch('new', T0 + 5)
      expect(await store.sessions.get('new')).toEqual(
        session('new', { method: 'device_approval', lastSeenAt: T0 + 5 }),
      )
      // An ended session is not touched.
      await store.sessions.end('old', 'signed_out', T0 + 6)
      await store.sessions.touch('old', T0 + 7)
      expect((await store.sessions.get('old'))?.lastSeenAt).toBeUndefined()
    })

    it('lists sessions past expiry or idle that nobody ended, and a user’s sessions newest first', async () => {
      await store.sessions.create(session('expired', { expiresAt: T0 + 10 }))
      await store.sessions.create(session('idle', { createdAt: T0 + 1 }))
      await store.sessions.create(session('active', { createdAt: T0 + 2 }))
      await store.sessions.touch('active', T0 + 500)
      await store.sessions.create(session('ended', { expiresAt: T0 + 10, createdAt: T0 + 3 }))
      await store.sessions.end('ended', 'signed_out', T0 + 4)
      await store.sessions.create(session('bob', { userId: 'u_bob', createdAt: T0 + 4 }))
      expect((await store.sessions.listExpired(T0 + 100, 10)).map((s) => s.id)).toEqual(['expired'])
      expect((await store.sessions.listExpired(T0 + 100, 10, T0 + 100)).map((s) => s.id).sort()).toEqual([
        'bob',
        'expired',
        'idle',
      ])
      expect(await store.sessions.listExpired(T0 + 100, 1, T0 + 100)).toHaveLength(1)
      expect((await store.sessions.listByUser('u_alice')).map((s) => s.id)).toEqual([
        'ended',
        'active',
        'idle',
        'expired',
      ])
    })

    it('records, replaces and clears a site exclusion', async () => {
      await store.sessions.exclude({ sessionId: 's1', siteId: 'news', reason: 'replaced', at: T0 })
      await store.sessions.exclude({ sessionId: 's1', siteId: 'news', reason: 'revoked', at: T0 + 1 })
      expect(await store.sessions.exclusion('s1', 'news')).toEqual({
        sessionId: 's1',
        siteId: 'news',
        reason: 'revoked',
        at: T0 + 1,
      })
      expect(await store.sessions.exclusion('s1', 'shop')).toBeNull()
      await store.sessions.clearExclusion('s1', 'news')
      expect(await store.sessions.exclusion('s1', 'news')).toBeNull()
    })

    it('knows the sites a session was given tokens for, and when last', async () => {
      expect(await store.sessions.sitesOf('session-a')).toEqual([])
      expect(await store.sessions.lastActivity('session-a')).toBeNull()
      await store.tokens.create(token('t1', { siteId: 'shop', issuedAt: T0 + 3 }))
      await store.tokens.create(token('t2', { siteId: 'news', issuedAt: T0 + 9 }))
      await store.tokens.create(token('t3', { siteId: 'news', issuedAt: T0 + 5 }))
      await store.tokens.create(token('t4', { sessionId: 'other', issuedAt: T0 + 20 }))
      expect(await store.sessions.sitesOf('session-a')).toEqual(['news', 'shop'])
      expect(await store.sessions.lastActivity('session-a')).toBe(T0 + 9)
    })
  })

  describe('codes', () => {
    it('lets exactly one of 20 concurrent consumers have a code', async () => {
      await store.codes.create(code('h1'))
      const results = await Promise.all(Array.from({ length: 20 }, () => store.codes.consume('h1', T0 + 1)))
      const winners = results.filter((r) => r !== null)
      expect(winners).toEqual([{ ...code('h1'), usedAt: T0 + 1 }])
      expect(await store.codes.consume('h1', T0 + 2)).toBeNull()
    })

    it('returns null for an unknown code', async () => {
      expect(await store.codes.consume('nope', T0)).toBeNull()
    })
  })

  describe('token revocation', () => {
    beforeEach(async () => {
      await store.tokens.create(token('a-news', { sessionId: 'session-a' }))
      await store.tokens.create(token('b-news', { sessionId: 'session-b' }))
      await store.tokens.create(token('c-news', { sessionId: 'session-c' }))
      await store.tokens.create(token('a-shop', { sessionId: 'session-a', siteId: 'shop' }))
      await store.tokens.create(token('bob-news', { sessionId: 'session-bob', userId: 'u_bob' }))
      await store.tokens.create(
        token('a-old', { sessionId: 'session-a', revokedAt: T0 - 1, revokeReason: 'signed_out' }),
      )
    })

    it("revokes the user's live tokens on the site held by other sessions, and returns them", async () => {
      const revoked = await store.tokens.revokeOtherDevices(
        'u_alice',
        'news',
        'session-b',
        T0 + 5,
        'replaced',
      )
      expect(revoked.map((t) => t.jti).sort()).toEqual(['a-news', 'c-news'])
      expect(revoked.every((t) => t.revokedAt === T0 + 5 && t.revokeReason === 'replaced')).toBe(true)
      expect(await store.tokens.get('a-news')).toMatchObject({ revokedAt: T0 + 5, revokeReason: 'replaced' })
      for (const jti of ['b-news', 'a-shop', 'bob-news']) {
        expect(await store.tokens.get(jti)).toMatchObject({ revokedAt: null, revokeReason: null })
      }
      // An already revoked token keeps its first reason and time.
      expect(await store.tokens.get('a-old')).toMatchObject({ revokedAt: T0 - 1, revokeReason: 'signed_out' })
      expect(
        await store.tokens.revokeOtherDevices('u_alice', 'news', 'session-b', T0 + 6, 'replaced'),
      ).toEqual([])
    })

    it('revokes every live token of one session on every site, and only those', async () => {
      const revoked = await store.tokens.revokeSession('session-a', T0 + 7, 'signed_out')
      expect(revoked.map((t) => t.jti).sort()).toEqual(['a-news', 'a-shop'])
      expect(await store.tokens.get('a-shop')).toMatchObject({
        revokedAt: T0 + 7,
        revokeReason: 'signed_out',
      })
      for (const jti of ['b-news', 'c-news', 'bob-news']) {
        expect((await store.tokens.get(jti))?.revokedAt).toBeNull()
      }
      expect(await store.tokens.get('a-old')).toMatchObject({ revokedAt: T0 - 1 })
      expect(await store.tokens.revokeSession('session-a', T0 + 8, 'revoked')).toEqual([])
    })

    it('revokes a session on one site, and a whole site (its unexpired tokens)', async () => {
      expect(
        (await store.tokens.revokeSessionSite('session-a', 'shop', T0 + 1, 'revoked')).map((t) => t.jti),
      ).toEqual(['a-shop'])
      expect((await store.tokens.get('a-news'))?.revokedAt).toBeNull()
      await store.tokens.create(token('expired-news', { sessionId: 'session-d', expiresAt: T0 + 1 }))
      const revoked = await store.tokens.revokeSite('news', T0 + 2, 'revoked')
      expect(revoked.map((t) => t.jti).sort()).toEqual(['a-news', 'b-news', 'bob-news', 'c-news'])
      expect((await store.tokens.get('expired-news'))?.revokedAt).toBeNull()
    })
  })

  describe('token rows read with their hash (introspection reads the same token again and again)', () => {
    const revokedAfter = async (revoke: () => Promise<unknown>) => {
      await store.tokens.create(token('kept', { sessionId: 'session-a' }), 'hash-of-kept')
      expect((await store.tokens.getWithHash('kept'))?.record.revokedAt).toBeNull() // now kept
      await revoke()
      return (await store.tokens.getWithHash('kept'))?.record.revokeReason
    }

    it('reads the token, its hash and its holder; no hash for a row written without one', async () => {
      await store.users.create(user('u_alice', 'alice'))
      await store.tokens.create(token('with'), 'hash-of-with')
      await store.tokens.create(token('without', { userId: 'u_gone', jkt: null }))
      expect(await store.tokens.getWithHash('with')).toEqual({
        record: token('with'),
        tokenHash: 'hash-of-with',
        holder: { id: 'u_alice', username: 'alice', name: 'alice' },
      })
      expect(await store.tokens.getWithHash('without')).toEqual({
        record: token('without', { userId: 'u_gone', jkt: null }),
        tokenHash: null,
        holder: null,
      })
      expect(await store.tokens.getWithHash('nothing')).toBeNull()
    })

    it('sees every kind of revocation at once', async () => {
      expect(await revokedAfter(() => store.tokens.revokeSession('session-a', T0 + 1, 'signed_out'))).toBe(
        'signed_out',
      )
    })

    it('sees a revocation of the session on the site at once', async () => {
      expect(
        await revokedAfter(() => store.tokens.revokeSessionSite('session-a', 'news', T0 + 1, 'revoked')),
      ).toBe('revoked')
    })

    it('sees newest-wins replacement at once, made inside a transaction', async () => {
      expect(
        await revokedAfter(() =>
          store.transaction((tx) =>
            tx.tokens.revokeOtherDevices('u_alice', 'news', 'session-b', T0 + 1, 'replaced'),
          ),
        ),
      ).toBe('replaced')
    })

    it('forgets a purged row', async () => {
      await store.tokens.create(token('old', { expiresAt: T0 }), 'hash-of-old')
      expect(await store.tokens.getWithHash('old')).not.toBeNull()
      await store.maintenance.purge(T0 + 2 * 86_400_000)
      expect(await store.tokens.getWithHash('old')).toBeNull()
    })

    it('forgets what a rolled-back transaction revoked and then read', async () => {
      await store.tokens.create(token('kept'), 'hash-of-kept')
      await expect(
        store.transaction(async (tx) => {
          await tx.tokens.revokeSession('session-a', T0 + 1, 'signed_out')
          expect((await tx.tokens.getWithHash('kept'))?.record.revokedAt).toBe(T0 + 1)
          throw new Error('undo')
        }),
      ).rejects.toThrow('undo')
      expect((await store.tokens.getWithHash('kept'))?.record.revokedAt).toBeNull()
    })

    it('hands out rows nobody can change', async () => {
      await store.users.create(user('u_alice', 'alice'))
      await store.tokens.create(token('kept'), 'hash-of-kept')
      const row = await store.tokens.getWithHash('kept')
      expect(row?.holder).toEqual({ id: 'u_alice', username: 'alice', name: 'alice' })
      expect(() => Object.assign(row?.record ?? {}, { revokedAt: null, siteId: 'shop' })).toThrow(TypeError)
      expect(() => Object.assign(row?.holder ?? {}, { username: 'mallory' })).toThrow(TypeError)
    })

    it('J4, B12: sees a token revoked by another connection (another server) on the next request', async () => {
      await store.tokens.create(token('kept'), 'hash-of-kept')
      expect((await store.tokens.getWithHash('kept'))?.record.revokedAt).toBeNull()
      await engine.exec(
        `UPDATE tokens SET revoked_at = ${T0 + 1}, revoke_reason = 'signed_out' WHERE jti = 'kept'`,
      )
      await sleep(5)
      expect((await store.tokens.getWithHash('kept'))?.record.revokeReason).toBe('signed_out')
    })
  })

  describe('refresh credentials', () => {
    it('round-trips a credential; the head is the newest unused, unrevoked one of its family', async () => {
      await store.refresh.create(refresh('r0'))
      expect(await store.refresh.get('r0')).toEqual(refresh('r0'))
      expect(await store.refresh.head('family-1')).toEqual(refresh('r0'))
      expect(await store.refresh.markRotated('r0', T0 + 1, 'r1', 'sealed')).toBe(true)
      expect(await store.refresh.head('family-1')).toBeNull()
      await store.refresh.create(refresh('r1', { generation: 1, issuedAt: T0 + 1 }))
      expect((await store.refresh.head('family-1'))?.hash).toBe('r1')
      expect(await store.refresh.get('r0')).toMatchObject({
        usedAt: T0 + 1,
        successorHash: 'r1',
        successorSealed: 'sealed',
      })
      expect(await store.refresh.get('nothing')).toBeNull()
      expect(await store.refresh.head('nothing')).toBeNull()
    })

    it('rotates a credential once: a used or revoked one is not swapped again', async () => {
      await store.refresh.create(refresh('r0'))
      expect(await store.refresh.markRotated('r0', T0 + 1, 'r1', null)).toBe(true)
      expect(await store.refresh.markRotated('r0', T0 + 2, 'r2', null)).toBe(false)
      expect((await store.refresh.get('r0'))?.successorHash).toBe('r1')
      await store.refresh.create(refresh('x0', { familyId: 'family-x' }))
      expect(await store.refresh.revokeFamily('family-x', T0 + 3, 'revoked')).toBe(1)
      expect(await store.refresh.markRotated('x0', T0 + 4, 'x1', null)).toBe(false)
      expect(await store.refresh.markRotated('nothing', T0 + 4, 'x1', null)).toBe(false)
    })

    it('revokes by family, session, session and site, and forgets the sealed answers it revokes', async () => {
      await store.refresh.create(
        refresh('used', { usedAt: T0, successorHash: 'r1', successorSealed: 'sealed' }),
      )
      await store.refresh.create(refresh('r1', { generation: 1 }))
      await store.refresh.create(refresh('shop', { familyId: 'family-2', siteId: 'shop' }))
      await store.refresh.create(refresh('other', { familyId: 'family-3', sessionId: 'session-b' }))
      expect(await store.refresh.revokeFamily('family-1', T0 + 1, 'revoked')).toBe(2)
      expect(await store.refresh.revokeFamily('family-1', T0 + 2, 'revoked')).toBe(0)
      expect(await store.refresh.get('used')).toMatchObject({
        revokedAt: T0 + 1,
        revokeReason: 'revoked',
        successorSealed: null,
      })
      expect(await store.refresh.revokeSessionSite('session-a', 'news', T0 + 3, 'revoked')).toBe(0)
      expect(await store.refresh.revokeSession('session-a', T0 + 4, 'signed_out')).toBe(1)
      expect((await store.refresh.get('shop'))?.revokeReason).toBe('signed_out')
      expect((await store.refresh.get('other'))?.revokedAt).toBeNull()
      expect(await store.refresh.revokeSessionSite('session-b', 'news', T0 + 5, 'revoked')).toBe(1)
    })

    it("revokes the user's unused credentials of a site on other devices, and a whole site", async () => {
      await store.refresh.create(refresh('a', { sessionId: 'session-a', familyId: 'fa' }))
      await store.refresh.create(refresh('b', { sessionId: 'session-b', familyId: 'fb' }))
      await store.refresh.create(refresh('b-used', { sessionId: 'session-b', familyId: 'fb2', usedAt: T0 }))
      await store.refresh.create(refresh('c', { sessionId: 'session-c', familyId: 'fc' }))
      await store.refresh.create(refresh('c2', { sessionId: 'session-c', familyId: 'fc2' }))
      await store.refresh.create(
        refresh('bob', { sessionId: 'session-bob', userId: 'u_bob', familyId: 'fbob' }),
      )
      await store.refresh.create(
        refresh('a-shop', { sessionId: 'session-a', siteId: 'shop', familyId: 'fs' }),
      )
      const others = await store.refresh.revokeOtherDevices(
        'u_alice',
        'news',
        'session-a',
        T0 + 1,
        'replaced',
      )
      expect(others.sort()).toEqual(['session-b', 'session-c'])
      expect((await store.refresh.get('b-used'))?.revokedAt).toBeNull()
      expect((await store.refresh.get('a'))?.revokedAt).toBeNull()
      const ended = await store.refresh.revokeSite('news', T0 + 2, 'revoked')
      expect(ended.map((e) => `${e.sessionId}/${e.userId}`).sort()).toEqual([
        'session-a/u_alice',
        'session-b/u_alice',
        'session-bob/u_bob',
      ])
      expect((await store.refresh.get('a-shop'))?.revokedAt).toBeNull()
    })
  })

  describe('refresh families rotated in place', () => {
    const next = (generation: number, at: number) => ({
      generation,
      issuedAt: at,
      idleExpiresAt: at + 86_400_000,
      tokenJti: `jti-${generation}`,
      tokenExpiresAt: at + 900_000,
    })

    it('round-trips a family and moves it on in place, compare-and-swap on the generation', async () => {
      await store.refresh.createFamily(family('f1'))
      expect(await store.refresh.getFamily('f1')).toEqual(family('f1'))
      expect(await store.refresh.getFamily('nothing')).toBeNull()
      expect(await store.refresh.advanceFamily('f1', 0, next(1, T0 + 1))).toBe(true)
      expect(await store.refresh.getFamily('f1')).toEqual({ ...family('f1'), ...next(1, T0 + 1) })
      // A racer that read generation 0 loses, and changes nothing.
      expect(await store.refresh.advanceFamily('f1', 0, next(1, T0 + 2))).toBe(false)
      expect((await store.refresh.getFamily('f1'))?.issuedAt).toBe(T0 + 1)
      expect(await store.refresh.advanceFamily('nothing', 0, next(1, T0 + 2))).toBe(false)
      // A revoked family does not move.
      expect(await store.refresh.revokeFamily('f1', T0 + 3, 'revoked')).toBe(1)
      expect(await store.refresh.advanceFamily('f1', 1, next(2, T0 + 4))).toBe(false)
      expect(await store.refresh.getFamily('f1')).toMatchObject({
        generation: 1,
        revokedAt: T0 + 3,
        revokeReason: 'revoked',
      })
    })

    it('every revocation reaches families too, beside the rows of older servers', async () => {
      await store.refresh.createFamily(family('fa'))
      await store.refresh.createFamily(family('fa-shop', { siteId: 'shop' }))
      await store.refresh.createFamily(family('fb', { sessionId: 'session-b' }))
      await store.refresh.createFamily(family('fc', { sessionId: 'session-c' }))
      await store.refresh.createFamily(family('fbob', { sessionId: 'session-bob', userId: 'u_bob' }))
      await store.refresh.create(refresh('legacy-b', { sessionId: 'session-b', familyId: 'lb' }))
      const others = await store.refresh.revokeOtherDevices(
        'u_alice',
        'news',
        'session-a',
        T0 + 1,
        'replaced',
      )
      expect(others.sort()).toEqual(['session-b', 'session-c'])
      expect((await store.refresh.getFamily('fb'))?.revokeReason).toBe('replaced')
      expect((await store.refresh.get('legacy-b'))?.revokeReason).toBe('replaced')
      expect((await store.refresh.getFamily('fa'))?.revokedAt).toBeNull()
      expect(await store.refresh.revokeSessionSite('session-a', 'shop', T0 + 2, 'revoked')).toBe(1)
      expect((await store.refresh.getFamily('fa-shop'))?.revokeReason).toBe('revoked')
      expect(await store.refresh.revokeSession('session-a', T0 + 3, 'signed_out')).toBe(1)
      expect((await store.refresh.getFamily('fa'))?.revokeReason).toBe('signed_out')
      const ended = await store.refresh.revokeSite('news', T0 + 4, 'revoked')
      expect(ended.map((e) => `${e.sessionId}/${e.userId}`)).toEqual(['session-bob/u_bob'])
    })

    it('purges a family a day past its expiry or its revocation, and keeps a live one', async () => {
      const now = T0 + 30 * 86_400_000
      await store.refresh.createFamily(family('idle', { idleExpiresAt: now - 2 * 86_400_000 }))
      await store.refresh.createFamily(
        family('revoked', {
          revokedAt: now - 2 * 86_400_000,
          idleExpiresAt: now + 1,
          absoluteExpiresAt: now + 1,
        }),
      )
      await store.refresh.createFamily(family('live', { idleExpiresAt: now + 1, absoluteExpiresAt: now + 1 }))
      expect(await store.maintenance.purge(now)).toBe(2)
      expect(await store.refresh.getFamily('idle')).toBeNull()
      expect(await store.refresh.getFamily('revoked')).toBeNull()
      expect(await store.refresh.getFamily('live')).not.toBeNull()
    })
  })

  describe('approvals', () => {
    it('round-trips a request, by id and by its secret', async () => {
      await store.approvals.create(approval('a1'))
      await store.approvals.create(approval('a2', { userId: null, kind: 'ciba' }))
      expect(await store.approvals.get('a1')).toEqual(approval('a1'))
      expect(await store.approvals.getBySecretHash('secret-a2')).toEqual(
        approval('a2', { userId: null, kind: 'ciba' }),
      )
      expect(await store.approvals.get('nothing')).toBeNull()
    })

    it('lists and counts pending, unexpired requests', async () => {
      await store.approvals.create(approval('a2', { createdAt: T0 + 2 }))
      await store.approvals.create(approval('a1', { createdAt: T0 + 1 }))
      await store.approvals.create(approval('old', { expiresAt: T0 + 5 }))
      await store.approvals.create(approval('nobody', { userId: null }))
      await store.approvals.create(approval('denied', { status: 'denied', decidedAt: T0 }))
      await store.approvals.create(approval('bob', { userId: 'u_bob', requestedFor: 'bob-hash' }))
      expect((await store.approvals.listPending('u_alice', T0 + 10)).map((a) => a.id)).toEqual(['a1', 'a2'])
      expect(await store.approvals.countPending('alice-hash', T0 + 10)).toBe(3)
      expect(await store.approvals.countPending('alice-hash', T0)).toBe(4)
    })

    it('decides a pending, unexpired request once; marks an approved one used once, if recent', async () => {
      await store.approvals.create(approval('a1'))
      await store.approvals.create(approval('late', { expiresAt: T0 + 10 }))
      expect(await store.approvals.decide('late', 'approved', T0 + 10, 'session-a')).toBeNull()
      expect(await store.approvals.markUsed('a1', T0)).toBeNull() // not approved
      expect(await store.approvals.decide('a1', 'approved', T0 + 5, 'session-a')).toEqual(
        approval('a1', { status: 'approved', decidedAt: T0 + 5, decidedBy: 'session-a' }),
      )
      expect(await store.approvals.decide('a1', 'denied', T0 + 6, 'session-a')).toBeNull()
      expect(await store.approvals.markUsed('a1', T0 + 6)).toBeNull() // approved too long ago
      expect((await store.approvals.markUsed('a1', T0 + 5))?.status).toBe('used')
      expect(await store.approvals.markUsed('a1', T0 + 5)).toBeNull()
    })

    it('expires due requests, at most the limit at a time', async () => {
      for (const id of ['e1', 'e2', 'e3']) await store.approvals.create(approval(id, { expiresAt: T0 + 10 }))
      await store.approvals.create(approval('live', { expiresAt: T0 + 1000 }))
      const first = await store.approvals.expireDue(T0 + 10, 2)
      expect(first).toHaveLength(2)
      expect(first.every((a) => a.status === 'expired' && a.decidedAt === T0 + 10)).toBe(true)
      expect((await store.approvals.expireDue(T0 + 10, 10)).map((a) => a.status)).toEqual(['expired'])
      expect(await store.approvals.expireDue(T0 + 10, 10)).toEqual([])
      expect((await store.approvals.get('live'))?.status).toBe('pending')
    })
  })

  describe('event log', () => {
    it('appends with increasing ids and reads by session and after an id', async () => {
      expect(await store.events.latestId()).toBe(0)
      const e1 = await store.events.append(ended('s1', T0 + 1))
      const e2 = await store.transaction((tx) =>
        tx.events.append({
          ...ended('s2', T0 + 2),
          type: 'site_access_ended',
          siteId: 'news',
          reason: 'revoked',
        }),
      )
      const e3 = await store.events.append(ended('s1', T0 + 3))
      expect(e1).toEqual({ id: e1.id, ...ended('s1', T0 + 1) })
      expect(e2.id).toBeGreaterThan(e1.id)
      expect(e3.id).toBeGreaterThan(e2.id)
      expect(await store.events.latestId()).toBe(e3.id)
      expect(await store.events.since('s1', 0, 10)).toEqual([e1, e3])
      expect(await store.events.since('s1', e1.id, 10)).toEqual([e3])
      expect(await store.events.after(0, 10)).toEqual([e1, e2, e3])
      expect(await store.events.after(e1.id, 1)).toEqual([e2])
    })

    it('never reuses the id of an append that was rolled back', async () => {
      const e1 = await store.events.append(ended('s1', T0))
      await expect(
        store.transaction(async (tx) => {
          await tx.events.append(ended('s1', T0 + 1))
          throw new Error('undo')
        }),
      ).rejects.toThrow('undo')
      const e2 = await store.events.append(ended('s1', T0 + 2))
      expect(e2.id).toBeGreaterThan(e1.id)
      expect((await store.events.after(0, 10)).map((e) => e.id)).toEqual([e1.id, e2.id])
    })
  })

  describe('after close', () => {
    it('rejects every operation with StoreUnavailableError (fails closed)', async () => {
      // Warm some prepared statements first: cached statements must fail too.
      await store.users.findById('u_alice')
      await store.tokens.get('j')
      await store.close()
      const operations: [string, () => Promise<unknown>][] = [
        ['users.create', () => store.users.create(user('u_alice'))],
        ['users.findById', () => store.users.findById('u_alice')],
        ['users.findByUsername', () => store.users.findByUsername('alice')],
        ['sites.create', () => store.sites.create(site('news'))],
        ['sites.update', () => store.sites.update(site('news'))],
        ['sites.get', () => store.sites.get('news')],
        ['sites.list', () => store.sites.list()],
        ['sites.remove', () => store.sites.remove('news')],
        ['sessions.get', () => store.sessions.get('s')],
        ['sessions.end', () => store.sessions.end('s', 'revoked', T0)],
        ['sessions.exclusion', () => store.sessions.exclusion('s', 'news')],
        [
          'sessions.exclude',
          () => store.sessions.exclude({ sessionId: 's', siteId: 'n', reason: 'revoked', at: 0 }),
        ],
        ['sessions.clearExclusion', () => store.sessions.clearExclusion('s', 'news')],
        ['codes.create', () => store.codes.create(code('h'))],
        ['codes.consume', () => store.codes.consume('h', T0)],
        ['tokens.create', () => store.tokens.create(token('j'))],
        ['tokens.get', () => store.tokens.get('j')],
        ['tokens.getWithHash', () => store.tokens.getWithHash('j')],
        [
          'tokens.revokeOtherDevices',
          () => store.tokens.revokeOtherDevices('u', 'news', 's', T0, 'replaced'),
        ],
        ['tokens.revokeSession', () => store.tokens.revokeSession('s', T0, 'revoked')],
        ['refresh.get', () => store.refresh.get('r')],
        ['refresh.markRotated', () => store.refresh.markRotated('r', T0, 's', null)],
        ['events.append', () => store.events.append(ended('s', T0))],
        ['events.after', () => store.events.after(0, 10)],
        ['approvals.decide', () => store.approvals.decide('a', 'approved', T0, 's')],
        ['secrets.get', () => store.secrets.get('k')],
        ['secrets.putIfAbsent', () => store.secrets.putIfAbsent('k', 'v')],
        ['maintenance.purge', () => store.maintenance.purge(T0)],
        ['transaction', () => store.transaction((tx) => tx.users.findById('u_alice'))],
      ]
      for (const [name, operation] of operations) {
        const outcome = await operation().then(
          () => 'resolved',
          (err: unknown) => err,
        )
        expect(outcome, name).toBeInstanceOf(StoreUnavailableError)
      }
    })
  })

  describe('maintenance', () => {
    it('purges rows a day past expiry and events a week old, and keeps what can still matter', async () => {
      const now = T0 + 30 * 86_400_000
      await store.tokens.create(token('old', { expiresAt: now - 2 * 86_400_000, jkt: null }))
      await store.tokens.create(token('recent', { expiresAt: now - 3600_000 }))
      await store.tokens.create(token('live', { expiresAt: now + 600_000 }))
      await store.refresh.create(refresh('used-long-ago', { usedAt: now - 2 * 86_400_000 }))
      await store.refresh.create(refresh('live', { idleExpiresAt: now + 1, absoluteExpiresAt: now + 1 }))
      await store.codes.create({ ...code('old'), expiresAt: now - 2 * 86_400_000 })
      await store.approvals.create(approval('old', { expiresAt: now - 2 * 86_400_000 }))
      await store.events.append(ended('s', now - 8 * 86_400_000))
      await store.events.append(ended('s', now - 86_400_000))
      expect(await store.maintenance.purge(now)).toBe(5)
      expect(await store.tokens.get('old')).toBeNull()
      expect(await store.tokens.get('recent')).not.toBeNull()
      expect(await store.tokens.get('live')).not.toBeNull()
      expect(await store.refresh.get('used-long-ago')).toBeNull()
      expect(await store.refresh.get('live')).not.toBeNull()
      expect(await store.approvals.get('old')).toBeNull()
      expect(await store.events.since('s', 0, 10)).toHaveLength(1)
    })
  })

  /**
   * Races between instances: on PostgreSQL every call below runs on its own pooled connection
   * (three stores of four connections each), so the database itself decides who wins.
   */
  describe('under concurrency, across instances', () => {
    /** Spreads `n` calls over this store and two more instances. */
    const spread = async <T>(n: number, call: (s: Store, i: number) => Promise<T>): Promise<T[]> => {
      const stores = [store, await another(), await another()]
      return Promise.all(Array.from({ length: n }, (_, i) => call(stores[i % stores.length] as Store, i)))
    }

    it('20 parallel markRotated of one credential: exactly one wins, and its successor is recorded', async () => {
      await store.refresh.create(refresh('r0'))
      const results = await spread(20, (s, i) =>
        s.refresh.markRotated('r0', T0 + 1, `succ-${i}`, `sealed-${i}`),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
      const winner = results.indexOf(true)
      expect(await store.refresh.get('r0')).toMatchObject({ successorHash: `succ-${winner}`, usedAt: T0 + 1 })
    })

    it('20 parallel read-then-rotate transactions: one rotates, the others see it used (none fails)', async () => {
      await store.refresh.create(refresh('r0'))
      const outcomes = await spread(20, (s, i) =>
        s.transaction(async (tx) => {
          const current = await tx.refresh.get('r0')
          if (current?.usedAt !== null) return 'saw-used'
          await tx.refresh.create(refresh(`r1-${i}`, { generation: 1 }))
          if (!(await tx.refresh.markRotated('r0', T0 + 1, `r1-${i}`, null)))
            throw new Error('not serialisable')
          return 'rotated'
        }),
      )
      expect(outcomes.filter((o) => o === 'rotated')).toHaveLength(1)
      expect(outcomes.filter((o) => o === 'saw-used')).toHaveLength(19)
      // Only the winner's successor was written: the losers' writes went with their attempts.
      expect((await store.refresh.head('family-1'))?.generation).toBe(1)
    })

    it('20 parallel consumers of one code on three instances: exactly one gets it', async () => {
      await store.codes.create(code('h1'))
      const results = await spread(20, (s) => s.codes.consume('h1', T0 + 1))
      expect(results.filter((r) => r !== null)).toHaveLength(1)
    })

    it('20 parallel decisions on one approval: exactly one is taken, and then one use', async () => {
      await store.approvals.create(approval('a1'))
      const decided = await spread(20, (s, i) =>
        s.approvals.decide('a1', i % 2 === 0 ? 'approved' : 'denied', T0 + 1, `session-${i}`),
      )
      const winners = decided.filter((d) => d !== null)
      expect(winners).toHaveLength(1)
      expect(await store.approvals.get('a1')).toEqual(winners[0])
      if (winners[0]?.status === 'approved') {
        const used = await spread(10, (s) => s.approvals.markUsed('a1', T0))
        expect(used.filter((u) => u !== null)).toHaveLength(1)
      }
    })

    it('count-then-insert transactions never exceed the limit (approval requests)', async () => {
      const created = await spread(12, (s, i) =>
        s.transaction(async (tx) => {
          if ((await tx.approvals.countPending('alice-hash', T0)) >= 3) return false
          await tx.approvals.create(approval(`a${i}`))
          return true
        }),
      )
      expect(created.filter(Boolean)).toHaveLength(3)
      expect(await store.approvals.countPending('alice-hash', T0)).toBe(3)
    })

    it('parallel appends that commit slowly: a reader resuming after the last id it saw misses none', async () => {
      // SQLite holds the file's write lock for a whole transaction: writers lingering on several
      // connections would only test its busy timeout. One connection there, three instances here.
      const stores = engineName === 'sqlite' ? [store] : [store, await another(), await another()]
      const reader = await another()
      let writing = true
      const seen: number[] = []
      const read = (async () => {
        let last = 0
        for (;;) {
          const done = !writing // read once more after the last writer finished
          for (const e of await reader.events.after(last, 100)) {
            seen.push(e.id)
            last = e.id
          }
          if (done) return
          await sleep(1)
        }
      })()
      // Each transaction draws its id, then lingers before committing: ids drawn in one order
      // would otherwise commit in another.
      const writers = Promise.all(
        Array.from({ length: 12 }, (_, writer) =>
          (async () => {
            for (let i = 0; i < 10; i++) {
              await (stores[writer % stores.length] as Store).transaction(async (tx) => {
                const e = await tx.events.append(ended(`s${writer}`, T0 + i))
                await sleep(Math.random() * 4)
                return e
              })
            }
          })(),
        ),
      )
      try {
        await writers
      } finally {
        writing = false
        await read
      }
      const all = (await store.events.after(0, 1000)).map((e) => e.id)
      expect(all).toHaveLength(120)
      expect(seen).toEqual(all)
    })
  })
})
