import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../../errors.ts'
import { freePort, T0 } from '../../test-support.ts'
import { createTestDatabase } from '../test-engines.ts'
import type { Store } from '../types.ts'
import { isRetryable, isUnavailable } from './errors.ts'
import { openPostgresStore } from './index.ts'
import { migrations, SCHEMA_VERSION } from './schema.ts'

/** What only the PostgreSQL store does; the contract for both engines is in ../contract.test.ts. */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const user = (id: string) => ({ id, username: id, name: id, passwordHash: 'h', createdAt: T0 })

describe('postgres store', () => {
  const databases: Awaited<ReturnType<typeof createTestDatabase>>[] = []
  const stores: Store[] = []
  const clients: pg.Client[] = []
  const database = async () => {
    const db = await createTestDatabase()
    databases.push(db)
    return db
  }
  const open = async (url: string, options = {}) => {
    const store = await openPostgresStore(url, { poolSize: 4, ...options })
    stores.push(store)
    return store
  }
  const client = async (url: string) => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    clients.push(c)
    return c
  }
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.end().catch(() => undefined)
    for (const s of stores.splice(0)) await s.close()
    for (const db of databases.splice(0)) await db.drop()
  })

  describe('migrations', () => {
    it('lets several instances start at once on an empty database: each step runs once', async () => {
      const { url } = await database()
      const started = await Promise.all(Array.from({ length: 4 }, () => open(url, { poolSize: 1 })))
      await started[0]?.users.create(user('u_alice'))
      for (const s of started) expect(await s.users.findById('u_alice')).not.toBeNull()
      const c = await client(url)
      const applied = (await c.query('SELECT version FROM schema_migrations ORDER BY version')).rows
      expect(applied.map((r) => r.version)).toEqual(migrations.map((m) => m.version))
    })

    it('opens a migrated database again without changing it', async () => {
      const { url } = await database()
      const first = await open(url)
      await first.users.create(user('u_alice'))
      await first.close()
      const second = await open(url)
      expect(await second.users.findById('u_alice')).not.toBeNull()
    })

    it('refuses a database migrated by a newer server', async () => {
      const { url } = await database()
      await (await open(url)).close()
      const c = await client(url)
      await c.query("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')", [
        SCHEMA_VERSION + 1,
      ])
      await expect(openPostgresStore(url)).rejects.toThrow(/newer/)
    })
  })

  describe('failures', () => {
    it('fails to open with StoreUnavailableError, at once, when nothing listens', async () => {
      const port = await freePort()
      const started = performance.now()
      await expect(openPostgresStore(`postgres://root@127.0.0.1:${port}/passport`)).rejects.toBeInstanceOf(
        StoreUnavailableError,
      )
      expect(performance.now() - started).toBeLessThan(2000)
    })

    it('answers StoreUnavailableError within the statement timeout while a lock is held, then recovers', async () => {
      const { url } = await database()
      const store = await open(url, { queryTimeoutMs: 300 })
      await store.users.create(user('u_alice'))
      const locker = await client(url)
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE')
      const started = performance.now()
      await expect(store.users.findById('u_alice')).rejects.toBeInstanceOf(StoreUnavailableError)
      await expect(store.transaction((tx) => tx.users.create(user('u_bob')))).rejects.toBeInstanceOf(
        StoreUnavailableError,
      )
      expect(performance.now() - started).toBeLessThan(2000)
      await locker.query('ROLLBACK')
      expect(await store.users.findById('u_alice')).not.toBeNull()
      expect(await store.users.findById('u_bob')).toBeNull()
    })

    it('gives up on a transaction that keeps failing to serialise, with StoreUnavailableError', async () => {
      const { url } = await database()
      const store = await open(url, { maxAttempts: 1 })
      const other = await open(url)
      await store.users.create(user('u_alice'))
      const outcome = store.transaction(async (tx) => {
        await tx.users.findById('u_alice') // the snapshot is taken here
        await other.users.setPasswordHash('u_alice', 'changed elsewhere')
        await tx.users.setPasswordHash('u_alice', 'changed here')
      })
      await expect(outcome).rejects.toBeInstanceOf(StoreUnavailableError)
      expect((await store.users.findById('u_alice'))?.passwordHash).toBe('changed elsewhere')
    })

    it('runs a transaction again when it met a conflict, even one the function caught', async () => {
      const { url } = await database()
      const store = await open(url)
      const other = await open(url)
      await store.users.create(user('u_alice'))
      let runs = 0
      const outcome = await store.transaction(async (tx) => {
        runs++
        await tx.users.findById('u_alice')
        if (runs === 1) await other.users.setPasswordHash('u_alice', 'changed elsewhere')
        try {
          await tx.users.setPasswordHash('u_alice', `changed on run ${runs}`)
        } catch {
          return 'swallowed'
        }
        return 'written'
      })
      expect({ outcome, runs }).toEqual({ outcome: 'written', runs: 2 })
      expect((await store.users.findById('u_alice'))?.passwordHash).toBe('changed on run 2')
    })

    it('drops a connection the server ended and serves the next call on a new one', async () => {
      const { url, name } = await database()
      const store = await open(url, { poolSize: 1 })
      await store.users.create(user('u_alice'))
      const admin = await client(url)
      await admin.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [name],
      )
      await sleep(50)
      // The idle connection's end was noticed (or is found on use): never an answer from it.
      const first = await store.users.findById('u_alice').then(
        (u) => u?.id,
        (e: unknown) => e,
      )
      if (first !== 'u_alice') expect(first).toBeInstanceOf(StoreUnavailableError)
      expect((await store.users.findById('u_alice'))?.id).toBe('u_alice')
    })
  })

  describe('serialisable without needless conflicts', () => {
    it('two refreshes of two families, overlapping, both commit at the first attempt', async () => {
      const { url } = await database()
      const store = await open(url, { maxAttempts: 1 })
      const family = (familyId: string) => ({
        familyId,
        siteId: 'news',
        userId: 'u_alice',
        sessionId: 'session-a',
        jkt: 'k',
        generation: 0,
        issuedAt: T0,
        idleExpiresAt: T0 + 86_400_000,
        absoluteExpiresAt: T0 + 30 * 86_400_000,
        tokenJti: `jti-${familyId}`,
        tokenExpiresAt: T0 + 900_000,
        revokedAt: null,
        revokeReason: null,
      })
      // A small, new table: where the planner would read every live family for one of them.
      for (let i = 0; i < 20; i++) await store.refresh.createFamily(family(`f${i}`))
      let bothRead: () => void = () => undefined
      const read = new Promise<void>((resolve) => {
        let n = 0
        bothRead = () => {
          if (++n === 2) resolve()
        }
      })
      const rotate = (familyId: string) =>
        store.transaction(async (tx) => {
          const f = await tx.refresh.getFamily(familyId)
          bothRead()
          await read // each has read its family before either writes
          return tx.refresh.advanceFamily(familyId, f?.generation ?? -1, {
            generation: 1,
            issuedAt: T0 + 1,
            idleExpiresAt: T0 + 86_400_000,
            tokenJti: `jti-${familyId}-1`,
            tokenExpiresAt: T0 + 900_000,
          })
        })
      expect(await Promise.all([rotate('f3'), rotate('f11')])).toEqual([true, true])
    })
  })

  describe('error classification', () => {
    const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code })

    it('calls unreachable what cannot reach the data, and nothing else', () => {
      for (const error of [
        withCode('ECONNREFUSED'),
        withCode('ECONNRESET'),
        withCode('57P01'), // admin_shutdown
        withCode('57P03'), // cannot_connect_now
        withCode('57014'), // query_canceled (statement_timeout)
        withCode('08006'), // connection_failure
        withCode('53300'), // too_many_connections
        withCode('25006'), // read_only_sql_transaction (a standby)
        new Error('Connection terminated unexpectedly'),
        new Error('Query read timeout'),
        new Error('timeout exceeded when trying to connect'),
        new AggregateError([withCode('ECONNREFUSED')]),
      ]) {
        expect(isUnavailable(error), String((error as { code?: string }).code ?? error.message)).toBe(true)
      }
      for (const error of [
        withCode('23505'),
        withCode('42P01'),
        withCode('40001'),
        new TypeError('x is undefined'),
        null,
      ]) {
        expect(isUnavailable(error)).toBe(false)
      }
    })

    it('runs again only on serialisation failures and deadlocks', () => {
      expect(isRetryable(withCode('40001'))).toBe(true)
      expect(isRetryable(withCode('40P01'))).toBe(true)
      expect(isRetryable(withCode('23505'))).toBe(false)
      expect(isRetryable(withCode('ECONNRESET'))).toBe(false)
    })
  })
})
