import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../errors.ts'
import { T0 } from '../test-support.ts'
import { SCHEMA_VERSION } from './sqlite/schema.ts'
import { openSqliteStore } from './sqlite.ts'
import type { CodeRecord, SessionRecord, SiteRecord, Store, TokenRecord, UserRecord } from './types.ts'

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

describe('sqlite store', () => {
  let store: Store
  const dirs: string[] = []
  const tempDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-store-'))
    dirs.push(dir)
    return dir
  }

  beforeEach(() => {
    store = openSqliteStore(':memory:')
  })
  afterEach(async () => {
    await store.close().catch(() => undefined)
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
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

    it('runs calls made outside a transaction after it, so they never see or join its writes', async () => {
      let release = () => {}
      const gate = new Promise<void>((resolve) => {
        release = resolve
      })
      const tx = store.transaction(async (t) => {
        await t.users.create(user('u_alice'))
        await gate
        throw new Error('abort')
      })
      let readSettled = false
      const read = store.users.findById('u_alice').finally(() => {
        readSettled = true
      })
      // An outside write issued meanwhile must not be rolled back with the transaction.
      const write = store.users.create(user('u_bob'))
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(readSettled).toBe(false)
      release()
      await expect(tx).rejects.toThrow('abort')
      expect(await read).toBeNull()
      await write
      expect(await store.users.findById('u_bob')).not.toBeNull()
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
  })

  describe('kept token rows (introspection reads the same token again and again)', () => {
    const revokedAfter = async (revoke: () => Promise<unknown>) => {
      await store.tokens.create(token('kept', { sessionId: 'session-a' }), 'hash-of-kept')
      expect((await store.tokens.getWithHash('kept'))?.record.revokedAt).toBeNull() // now kept
      await revoke()
      return (await store.tokens.getWithHash('kept'))?.record.revokeReason
    }

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

    it('J4, B12: sees a token revoked by another connection (another server on the same file) on the next request', async () => {
      const file = path.join(tempDir(), 'passport.sqlite')
      const server = openSqliteStore(file)
      await server.tokens.create(token('kept'), 'hash-of-kept')
      expect((await server.tokens.getWithHash('kept'))?.record.revokedAt).toBeNull()
      const other = new DatabaseSync(file)
      other.exec(`UPDATE tokens SET revoked_at = ${T0 + 1}, revoke_reason = 'signed_out' WHERE jti = 'kept'`)
      other.close()
      await new Promise((resolve) => setTimeout(resolve, 5))
      expect((await server.tokens.getWithHash('kept'))?.record.revokeReason).toBe('signed_out')
      await server.close()
    })
  })

  describe('records', () => {
    it('round-trips sites, including arrays and booleans, lists them by id and removes them', async () => {
      await store.sites.create(
        site('shop', { oneDevicePerSite: false, origins: ['http://a:1', 'http://b:2'] }),
      )
      await store.sites.create(site('news'))
      expect(await store.sites.get('shop')).toEqual(
        site('shop', { oneDevicePerSite: false, origins: ['http://a:1', 'http://b:2'] }),
      )
      expect((await store.sites.list()).map((s) => s.id)).toEqual(['news', 'shop'])
      await store.sites.update(site('news', { authkeyVersion: 2, tokenTtlSeconds: 60 }))
      expect(await store.sites.get('news')).toMatchObject({ authkeyVersion: 2, tokenTtlSeconds: 60 })
      expect(await store.sites.remove('news')).toBe(true)
      expect(await store.sites.remove('news')).toBe(false)
      expect(await store.sites.get('news')).toBeNull()
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

    it('refuses a second user with the same username', async () => {
      await store.users.create(user('u_1', 'alice'))
      await expect(store.users.create(user('u_2', 'alice'))).rejects.toThrow()
      expect(await store.users.findByUsername('alice')).toMatchObject({ id: 'u_1' })
    })

    it('ends a session once, keeping the first reason', async () => {
      await store.sessions.create({
        id: 's1',
        userId: 'u_alice',
        createdAt: T0,
        expiresAt: T0 + 1000,
        endedAt: null,
        endReason: null,
        userAgent: 'test',
      })
      expect(await store.sessions.end('s1', 'signed_out', T0 + 1)).toBe(true)
      expect(await store.sessions.end('s1', 'revoked', T0 + 2)).toBe(false)
      expect(await store.sessions.get('s1')).toMatchObject({ endedAt: T0 + 1, endReason: 'signed_out' })
      expect(await store.sessions.end('unknown', 'revoked', T0)).toBe(false)
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

    it('keeps the first value of a secret', async () => {
      expect(await store.secrets.get('k')).toBeNull()
      expect(await store.secrets.putIfAbsent('k', 'first')).toBe('first')
      expect(await store.secrets.putIfAbsent('k', 'second')).toBe('first')
      expect(await store.secrets.get('k')).toBe('first')
    })
  })

  describe('file store', () => {
    it('J1: creates the directory, the file and the schema on first open, and keeps data across opens', async () => {
      const file = path.join(tempDir(), 'nested', 'deeper', 'passport.sqlite')
      const first = openSqliteStore(file)
      expect(fs.existsSync(file)).toBe(true)
      await first.users.create(user('u_alice'))
      await first.close()

      const db = new DatabaseSync(file, { readOnly: true })
      expect((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(
        SCHEMA_VERSION,
      )
      const tables = (
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
      )
        .map((t) => t.name)
        .sort()
      expect(tables).toEqual([
        'approvals',
        'codes',
        'refresh_tokens',
        'retired_sites',
        'secrets',
        'session_events',
        'sessions',
        'site_exclusions',
        'sites',
        'sqlite_sequence',
        'tokens',
        'users',
      ])
      db.close()

      const second = openSqliteStore(file)
      expect(await second.users.findById('u_alice')).toEqual(user('u_alice'))
      await second.close()
    })

    it('migrates a store of schema 1: sites gain the default refresh lifetimes, refresh table added', async () => {
      const file = path.join(tempDir(), 'passport.sqlite')
      const db = new DatabaseSync(file)
      db.exec(`CREATE TABLE sites (id TEXT PRIMARY KEY, name TEXT NOT NULL, origins TEXT NOT NULL,
        redirect_uris TEXT NOT NULL, login_modes TEXT NOT NULL, token_ttl_seconds INTEGER NOT NULL,
        one_device_per_site INTEGER NOT NULL, authkey_version INTEGER NOT NULL,
        client_secret_hash TEXT NOT NULL, created_at INTEGER NOT NULL);
        INSERT INTO sites VALUES ('news', 'News', '["http://news.localhost:8081"]', '["http://news.localhost:8081/"]',
          '["password"]', 900, 1, 1, 'hash', 0);
        PRAGMA user_version = 1;`)
      db.close()
      const migrated = openSqliteStore(file)
      expect(await migrated.sites.get('news')).toMatchObject({
        refreshIdleSeconds: 86_400,
        refreshAbsoluteSeconds: 30 * 86_400,
        refreshBeforeSeconds: 300,
      })
      expect(await migrated.refresh.get('nothing')).toBeNull()
      await migrated.close()
    })

    it('migrates a store of schema 6: sessions gain the sign-in method, old ones read as having none', async () => {
      const file = path.join(tempDir(), 'passport.sqlite')
      const db = new DatabaseSync(file)
      db.exec(`CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL, ended_at INTEGER, end_reason TEXT, user_agent TEXT NOT NULL, last_seen_at INTEGER);
        INSERT INTO sessions VALUES ('old', 'u_alice', 0, 1, NULL, NULL, 'Firefox', NULL);
        PRAGMA user_version = 6;`)
      db.close()
      const migrated = openSqliteStore(file)
      const old = await migrated.sessions.get('old')
      expect(old?.userAgent).toBe('Firefox')
      expect(old && 'method' in old).toBe(false)
      await migrated.sessions.create({ ...(old as SessionRecord), id: 'new', method: 'device_approval' })
      expect((await migrated.sessions.get('new'))?.method).toBe('device_approval')
      expect(await migrated.approvals.get('nothing')).toBeNull()
      await migrated.close()
    })

    it('migrates a store of schema 7: approvals lose the picking columns (open requests are dropped)', async () => {
      const file = path.join(tempDir(), 'passport.sqlite')
      const db = new DatabaseSync(file)
      db.exec(`CREATE TABLE approvals (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
        user_id TEXT, requested_for TEXT NOT NULL, site_id TEXT NOT NULL, code TEXT NOT NULL, choices TEXT NOT NULL,
        wrong_picks INTEGER NOT NULL DEFAULT 0, user_agent TEXT NOT NULL, address TEXT NOT NULL, context TEXT NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, status TEXT NOT NULL, decided_at INTEGER, decided_by TEXT);
        INSERT INTO approvals VALUES ('old', 'h', 'browser', 'u_alice', 'r', 'news', '42', '["42","17","88"]', 0,
          'Firefox', '10.0.0.1', '{}', 0, 120000, 'pending', NULL, NULL);
        PRAGMA user_version = 7;`)
      db.close()
      const migrated = openSqliteStore(file)
      expect(await migrated.approvals.get('old')).toBeNull()
      const fresh = {
        id: 'new',
        secretHash: 'h2',
        kind: 'browser' as const,
        userId: 'u_alice',
        requestedFor: 'r',
        siteId: 'news',
        code: '07',
        userAgent: 'Firefox',
        address: '10.0.0.1',
        context: '{}',
        createdAt: 0,
        expiresAt: 120_000,
        status: 'pending' as const,
        decidedAt: null,
        decidedBy: null,
      }
      await migrated.approvals.create(fresh)
      expect(await migrated.approvals.get('new')).toEqual(fresh)
      await migrated.close()
    })

    it('adds tokens.token_hash to a store of the same version without it, and keeps its rows and version', async () => {
      // A store written by the server before the column (same SCHEMA_VERSION, which it did not bump).
      const file = path.join(tempDir(), 'passport.sqlite')
      const first = openSqliteStore(file)
      await first.close()
      const db = new DatabaseSync(file)
      db.exec('ALTER TABLE tokens DROP COLUMN token_hash')
      db.exec(`INSERT INTO tokens (jti, site_id, user_id, session_id, issued_at, expires_at)
        VALUES ('old', 'news', 'u_alice', 'session-a', ${T0}, ${T0 + 900_000})`)
      db.close()

      const reopened = openSqliteStore(file)
      expect(await reopened.tokens.getWithHash('old')).toEqual({
        record: token('old', { jkt: null }),
        tokenHash: null,
        holder: null,
      })
      await reopened.tokens.create(token('new'), 'hash-of-new')
      expect(await reopened.tokens.getWithHash('new')).toEqual({
        record: token('new'),
        tokenHash: 'hash-of-new',
        holder: null,
      })
      expect(await reopened.tokens.get('new')).toEqual(token('new'))
      await reopened.close()

      const check = new DatabaseSync(file, { readOnly: true })
      expect((check.prepare('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(
        SCHEMA_VERSION,
      )
      // What a server that does not know the column writes still works, and reads back without a hash.
      check.close()
      const older = new DatabaseSync(file)
      older.exec(`INSERT INTO tokens (jti, site_id, user_id, session_id, issued_at, expires_at, revoked_at, revoke_reason)
        VALUES ('older', 'news', 'u_alice', 'session-a', ${T0}, ${T0 + 900_000}, NULL, NULL)`)
      older.close()
      const again = openSqliteStore(file)
      expect((await again.tokens.getWithHash('older'))?.tokenHash).toBeNull()
      await again.close()
    })

    it('sees a site changed or removed by another connection (the CLI, another server) on the next request', async () => {
      const file = path.join(tempDir(), 'passport.sqlite')
      const server = openSqliteStore(file)
      await server.sites.create(site('news'))
      await server.sites.create(site('shop'))
      expect((await server.sites.get('news'))?.authkeyVersion).toBe(1)
      expect(await server.sites.get('blog')).toBeNull()

      const cli = new DatabaseSync(file)
      cli.exec("UPDATE sites SET authkey_version = 2, client_secret_hash = 'rotated' WHERE id = 'news'")
      cli.exec("DELETE FROM sites WHERE id = 'shop'")
      cli.exec(`INSERT INTO sites (id, name, origins, redirect_uris, login_modes, token_ttl_seconds,
        refresh_idle_seconds, refresh_absolute_seconds, refresh_before_seconds, backchannel_logout_uri,
        one_device_per_site, dpop_bound_tokens, authkey_version, client_secret_hash, created_at)
        SELECT 'blog', name, origins, redirect_uris, login_modes, token_ttl_seconds,
        refresh_idle_seconds, refresh_absolute_seconds, refresh_before_seconds, backchannel_logout_uri,
        one_device_per_site, dpop_bound_tokens, authkey_version, client_secret_hash, created_at
        FROM sites WHERE id = 'news'`)
      cli.close()
      // The store asks SQLite whether another connection committed at most once a millisecond.
      await new Promise((resolve) => setTimeout(resolve, 5))
      expect(await server.sites.get('news')).toMatchObject({ authkeyVersion: 2, clientSecretHash: 'rotated' })
      expect(await server.sites.get('shop')).toBeNull()
      expect((await server.sites.get('blog'))?.id).toBe('blog')
      await server.close()
    })

    it('refuses to open a store written by a newer schema', () => {
      const file = path.join(tempDir(), 'passport.sqlite')
      const db = new DatabaseSync(file)
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 1}`)
      db.close()
      expect(() => openSqliteStore(file)).toThrow(/newer/)
    })

    it('fails a write transaction with StoreUnavailableError, in bounded time, while another connection holds the lock', async () => {
      const file = path.join(tempDir(), 'passport.sqlite')
      const fileStore = openSqliteStore(file)
      const locker = new DatabaseSync(file)
      locker.exec('BEGIN EXCLUSIVE')
      try {
        // Each blocked call waits out the 2 s busy timeout, so only the transaction path is timed.
        const started = performance.now()
        await expect(fileStore.transaction((tx) => tx.users.create(user('u_alice')))).rejects.toBeInstanceOf(
          StoreUnavailableError,
        )
        expect(performance.now() - started).toBeLessThan(3000)
      } finally {
        locker.exec('ROLLBACK')
        locker.close()
      }
      // Recovers without a restart once the lock is gone.
      await fileStore.users.create(user('u_alice'))
      expect(await fileStore.users.findById('u_alice')).not.toBeNull()
      await fileStore.close()
    }, 10_000)
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
        [
          'tokens.revokeOtherDevices',
          () => store.tokens.revokeOtherDevices('u', 'news', 's', T0, 'replaced'),
        ],
        ['tokens.revokeSession', () => store.tokens.revokeSession('s', T0, 'revoked')],
        ['secrets.get', () => store.secrets.get('k')],
        ['secrets.putIfAbsent', () => store.secrets.putIfAbsent('k', 'v')],
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
      const store = openSqliteStore(':memory:')
      const now = T0 + 30 * 86_400_000
      const token = (jti: string, expiresAt: number): TokenRecord => ({
        jti,
        siteId: 'news',
        userId: 'u_alice',
        sessionId: 's',
        issuedAt: expiresAt - 900_000,
        expiresAt,
        revokedAt: null,
        revokeReason: null,
        jkt: null,
      })
      await store.tokens.create(token('old', now - 2 * 86_400_000))
      await store.tokens.create(token('recent', now - 3600_000))
      await store.tokens.create(token('live', now + 600_000))
      const event = {
        type: 'session_ended' as const,
        userId: 'u',
        sessionId: 's',
        siteId: null,
        reason: 'expired' as const,
      }
      await store.events.append({ ...event, at: now - 8 * 86_400_000 })
      await store.events.append({ ...event, at: now - 86_400_000 })
      expect(await store.maintenance.purge(now)).toBe(2)
      expect(await store.tokens.get('old')).toBeNull()
      expect(await store.tokens.get('recent')).not.toBeNull()
      expect(await store.tokens.get('live')).not.toBeNull()
      expect(await store.events.since('s', 0, 10)).toHaveLength(1)
      await store.close()
    })
  })
})
