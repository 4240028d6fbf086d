import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest'
import { openPostgresStore, type PostgresStoreOptions } from './postgres/index.ts'
import { openSqliteStore } from './sqlite.ts'
import type { Store } from './types.ts'

/**
 * Test-only: the store engines the contract tests run against, each on a real database of its
 * own (no mocks): SQLite in a file of a temporary directory, PostgreSQL in a database created
 * with a unique name on the shared server and dropped afterwards.
 */
export type EngineName = 'sqlite' | 'postgres'
export const ENGINES: EngineName[] = ['sqlite', 'postgres']

/** The shared PostgreSQL of the test machines (trust authentication); `test` is only used to create and drop. */
export const TEST_POSTGRES_ADMIN_URL = 'postgres://root@127.0.0.1:5432/test'

export interface TestEngine {
  name: EngineName
  /** A new store on the engine's database (a new connection or pool), unsealed. */
  open(options?: PostgresStoreOptions): Promise<Store>
  /** Runs SQL on a connection of its own: another server, or the CLI, changing the data. */
  exec(sql: string): Promise<void>
  /** Deletes every row (the schema stays; ids go on from where they were), so that the next test starts empty. */
  reset(): Promise<void>
  /** Removes the database (and its directory). Stores opened on it must be closed first. */
  dispose(): Promise<void>
}

export function createEngine(name: EngineName): Promise<TestEngine> {
  return name === 'sqlite' ? createSqliteEngine() : createPostgresEngine()
}

export async function createSqliteEngine(): Promise<TestEngine> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-store-'))
  const file = path.join(dir, 'passport.sqlite')
  await openSqliteStore(file).close() // creates the schema
  const onOther = <T>(fn: (db: DatabaseSync) => T): T => {
    const db = new DatabaseSync(file)
    try {
      db.exec('PRAGMA busy_timeout = 2000')
      return fn(db)
    } finally {
      db.close()
    }
  }
  return {
    name: 'sqlite',
    open: async () => openSqliteStore(file),
    exec: async (sql) => onOther((db) => db.exec(sql)),
    reset: async () =>
      onOther((db) => {
        const tables = db
          .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
          .all() as { name: string }[]
        db.exec('BEGIN')
        for (const { name } of tables) db.exec(`DELETE FROM ${name}`)
        db.exec('DELETE FROM sqlite_sequence WHERE name IN (SELECT name FROM sqlite_master)')
        db.exec('COMMIT')
      }),
    dispose: async () => fs.rmSync(dir, { recursive: true, force: true }),
  }
}

/** Runs one statement on the admin database (CREATE / DROP DATABASE cannot run in a transaction). */
async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_ADMIN_URL, connectionTimeoutMillis: 5000 })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

/** A fresh, uniquely named database on the shared server; `drop` removes it (and any connection left). */
export async function createTestDatabase(): Promise<{
  name: string
  url: string
  drop: () => Promise<void>
}> {
  const name = `passport_test_${randomBytes(6).toString('hex')}`
  await admin(`CREATE DATABASE ${name}`)
  const url = new URL(TEST_POSTGRES_ADMIN_URL)
  url.pathname = `/${name}`
  return { name, url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}

export async function createPostgresEngine(): Promise<TestEngine> {
  const database = await createTestDatabase()
  const run = async (sql: string) => {
    const client = new pg.Client({ connectionString: database.url })
    await client.connect()
    try {
      await client.query(sql)
    } finally {
      await client.end()
    }
  }
  // Small pools: the shared server allows 100 connections for every session's tests.
  const first = await openPostgresStore(database.url, { poolSize: 2 })
  await first.close()
  return {
    name: 'postgres',
    open: (options) => openPostgresStore(database.url, { poolSize: 4, ...options }),
    exec: run,
    reset: () =>
      run(`DO $$ DECLARE t text; BEGIN
             FOR t IN SELECT tablename FROM pg_tables
               WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'
             LOOP EXECUTE format('DELETE FROM %I', t); END LOOP;
           END $$`),
    dispose: database.drop,
  }
}

/**
 * One store per test on a fresh (emptied) database of `engineName`, for a `describe.each(ENGINES)`
 * block: `store()` is the current test's store, `open()` another instance on the same database.
 */
export function useEngine(engineName: EngineName): { store(): Store; open(): Promise<Store> } {
  let engine: TestEngine
  let current: Store
  const opened: Store[] = []
  beforeAll(async () => {
    engine = await createEngine(engineName)
  })
  afterAll(async () => {
    await engine?.dispose()
  })
  beforeEach(async () => {
    await engine.reset()
    current = await engine.open()
  })
  afterEach(async () => {
    for (const s of [current, ...opened.splice(0)]) await s.close().catch(() => undefined)
  })
  return {
    store: () => current,
    open: async () => {
      const other = await engine.open()
      opened.push(other)
      return other
    },
  }
}
