import fs from 'node:fs'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import type { Store, StoreTx } from '../types.ts'
import { sqliteApprovals } from './approvals.ts'
import { type Caches, createCaches } from './caches.ts'
import { sqliteCodes } from './codes.ts'
import { createSql, type Sql, translateError } from './connection.ts'
import { sqliteEvents } from './events.ts'
import { sqliteMaintenance } from './maintenance.ts'
import { migrate } from './migrate.ts'
import { createSqliteQueue } from './queue.ts'
import { sqliteRefresh } from './refresh.ts'
import { sqliteSecrets } from './secrets.ts'
import { sqliteSessions } from './sessions.ts'
import { sqliteSites } from './sites.ts'
import { sqliteTokens } from './tokens.ts'
import { sqliteUsers } from './users.ts'

/** Repositories bound to one connection; every method runs synchronously under the hood. */
function createRepos(sql: Sql, caches: Caches): StoreTx {
  return {
    users: sqliteUsers(sql),
    sites: sqliteSites(sql, caches),
    sessions: sqliteSessions(sql),
    events: sqliteEvents(sql),
    approvals: sqliteApprovals(sql),
    codes: sqliteCodes(sql),
    tokens: sqliteTokens(sql, caches),
    refresh: sqliteRefresh(sql),
    maintenance: sqliteMaintenance(sql, caches),
    secrets: sqliteSecrets(sql),
  }
}

/** Wraps every async method of every repo so it runs through `guard`. */
function wrapRepos(repos: StoreTx, guard: <T>(fn: () => Promise<T>) => Promise<T>): StoreTx {
  const wrapped: Record<string, Record<string, unknown>> = {}
  for (const [repoName, repo] of Object.entries(repos)) {
    const methods: Record<string, unknown> = {}
    for (const [name, fn] of Object.entries(repo as Record<string, (...a: unknown[]) => Promise<unknown>>)) {
      methods[name] = (...args: unknown[]) => guard(() => fn(...args))
    }
    wrapped[repoName] = methods
  }
  return wrapped as unknown as StoreTx
}

/**
 * The embedded store: one SQLite file (created on first use), or `:memory:` for tests.
 *
 * One connection serves the process, so work is serialised through a queue that also commits
 * concurrent transactions together (see `createSqliteQueue`): a statement issued by another
 * request while a transaction awaits would otherwise run inside it.
 */
export function openSqliteStore(file: string): Store {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true })
  const db = new DatabaseSync(file)
  db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 2000; PRAGMA synchronous = NORMAL;')
  // Checkpoint the WAL every 10,000 pages (~40 MiB) instead of SQLite's 1,000. A refresh commits
  // ~19 pages, mostly the same tail pages of tables and indexes again and again: a checkpoint
  // copies each page once however often it was committed, and syncs the WAL and the file once.
  // Measured on the refresh path: ~10 % less CPU and ~20 % more refreshes per second. With
  // synchronous = NORMAL only a checkpoint syncs the WAL; what a power loss can take is bounded
  // as before by the OS writing it back (about 30 s with Linux defaults, whatever the setting).
  // Only under heavy traffic, where checkpoints come often, does the unsynced stretch grow,
  // from tens to hundreds of milliseconds of commits; each checkpoint pauses longer, less often.
  db.exec('PRAGMA wal_autocheckpoint = 10000')
  migrate(db)

  const caches = createCaches(db)
  const raw = createRepos(createSql(db), caches)
  // A rolled-back piece may have read rows it had itself written, now undone.
  const queue = createSqliteQueue(db, { translateError, onRollback: caches.forget })
  return {
    ...wrapRepos(raw, queue.call),
    transaction: (fn) => queue.transaction(() => fn(raw)),
    close: async () => {
      await queue.idle()
      db.close()
    },
  }
}
