import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../errors.ts'
import { T0 } from '../test-support.ts'
import { SCHEMA_VERSION } from './sqlite/schema.ts'
import { openSqliteStore } from './sqlite.ts'
import type { SessionRecord, Store, TokenRecord, UserRecord } from './types.ts'

const user = (id: string, username = id): UserRecord => ({
  id,
  username,
  name: username,
  passwordHash: 'scrypt$1024$8$1$salt$hash',
  createdAt: T0,
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

/** What only the SQLite store does; the store contract for both engines is in contract.test.ts. */
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
        'audit_events',
        'codes',
        'one_time_ids',
        'passkey_challenges',
        'passkeys',
        'refresh_families',
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

    it('migrates a store of schema 8 without refresh families: the table is added, its old rows still read', async () => {
      const file = path.join(tempDir(), 'passport.sqlite')
      const first = openSqliteStore(file)
      await first.refresh.create({
        hash: 'old-row',
        familyId: 'old-family',
        generation: 2,
        siteId: 'news',
        userId: 'u_alice',
        sessionId: 's',
        issuedAt: 0,
        idleExpiresAt: 10,
        absoluteExpiresAt: 20,
        usedAt: null,
        successorHash: null,
        successorSealed: null,
        revokedAt: null,
        revokeReason: null,
        jkt: 'k',
      })
      await first.close()
      const db = new DatabaseSync(file)
      db.exec('DROP TABLE refresh_families') // as a server before families rotated in place left it
      db.close()
      const migrated = openSqliteStore(file)
      expect(await migrated.refresh.get('old-row')).toMatchObject({ familyId: 'old-family', generation: 2 })
      expect(await migrated.refresh.getFamily('nothing')).toBeNull()
      // Revoking the session reaches the old row (and the new table, empty).
      expect(await migrated.refresh.revokeSession('s', 5, 'signed_out')).toBe(1)
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
})
