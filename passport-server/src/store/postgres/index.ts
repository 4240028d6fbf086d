import pg from 'pg'
import { errorFields, type Logger, StoreUnavailableError } from '../../errors.ts'
import type { Store, StoreTx } from '../types.ts'
import { createApprovalRepo } from './approvals.ts'
import { createAuditRepo } from './audit.ts'
import { createCodeRepo } from './codes.ts'
import type { Db } from './db.ts'
import { isRetryable, isUnavailable, translateError } from './errors.ts'
import { createEventRepo } from './events.ts'
import { createMaintenanceRepo } from './maintenance.ts'
import { createOneTimeIdRepo } from './one-time-ids.ts'
import { createPasskeyRepo } from './passkeys.ts'
import { createRefreshRepo } from './refresh.ts'
import { migrate } from './schema.ts'
import { createSecretRepo } from './secrets.ts'
import { createSessionRepo } from './sessions.ts'
import { createSiteRepo } from './sites.ts'
import { createTokenRepo } from './tokens.ts'
import { createUserRepo } from './users.ts'

export interface PostgresStoreOptions {
  /** Most connections this instance holds. Default 10. */
  poolSize?: number
  /**
   * How long a request waits for a connection (a new one, or a free one of the pool) before it
   * fails with 503. Default 1000 ms.
   */
  connectTimeoutMs?: number
  /**
   * Longest a statement may run, lock waits included (the server's `statement_timeout`), before
   * it fails with 503; the client itself gives up 500 ms later (a server that stopped answering).
   * Default 1000 ms: with the connect timeout, a database that is down answers within 2 s.
   */
  queryTimeoutMs?: number
  /** How often a transaction that keeps meeting serialisation conflicts is run before 503. Default 10. */
  maxAttempts?: number
  /** Where pool errors are reported (a connection dropped while idle). */
  log?: Logger
}

/**
 * Repositories bound to one connection or to the pool. One function per repository file;
 * a repository added to `StoreTx` is added here.
 */
function createRepos(db: Db): StoreTx {
  return {
    users: createUserRepo(db),
    sites: createSiteRepo(db),
    sessions: createSessionRepo(db),
    codes: createCodeRepo(db),
    tokens: createTokenRepo(db),
    refresh: createRefreshRepo(db),
    events: createEventRepo(db),
    maintenance: createMaintenanceRepo(db),
    secrets: createSecretRepo(db),
    approvals: createApprovalRepo(db),
    passkeys: createPasskeyRepo(db),
    oneTimeIds: createOneTimeIdRepo(db),
    audit: createAuditRepo(db),
  }
}

/** Waits a little, more each attempt, with jitter so that the racers do not meet again. */
const backoff = (attempt: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)))

/**
 * The scale-out store: every instance opens the same PostgreSQL database.
 *
 * Concurrency: every transaction, and every call made outside one, runs at SERIALIZABLE, and
 * a transaction that fails to serialise (40001) or deadlocks (40P01) is run again from the
 * start, a bounded number of times (then 503). Why not row locks (`SELECT ... FOR UPDATE`)?
 * The store's promise is that any `transaction` is serialisable, and the services rely on more
 * than single rows: newest-wins revokes "every other live token of this user on this site"
 * and then inserts one, which no row lock covers (the racing sign-in's row does not exist yet);
 * a mint reads the session and must not commit beside a sign-out that revokes "every token of
 * the session"; an approval counts pending requests, then inserts. Row locks would have to be
 * chosen call by call, in every present and future service, and one forgotten is a silent
 * race; PostgreSQL's serialisable snapshot isolation detects exactly these read/write
 * conflicts. The price is an occasional re-run under contention (the transaction functions
 * have no effect outside `tx` before they return, so a re-run is invisible), and a conflict
 * is detected only at the first write or the commit, never answered wrong.
 *
 * Failure: a connection or timeout failure is `StoreUnavailableError` (503); the pool drops the
 * broken connection and opens new ones when asked, so the store recovers by itself.
 */
export async function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<Store> {
  const connectTimeoutMs = opts.connectTimeoutMs ?? 1000
  const queryTimeoutMs = opts.queryTimeoutMs ?? 1000
  const maxAttempts = opts.maxAttempts ?? 10
  const log = opts.log ?? (() => undefined)

  // Migrations first, on a connection of their own without the statement timeout (building an
  // index on a large table may take minutes).
  const migrator = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: Math.max(connectTimeoutMs, 5000),
    application_name: 'passport-migrate',
  })
  migrator.on('error', () => undefined) // a failure also fails the query in flight, which throws
  try {
    await migrator.connect()
    await migrate(migrator)
  } catch (error) {
    throw translateError(error)
  } finally {
    await migrator.end().catch(() => undefined)
  }

  const pool = new pg.Pool({
    connectionString: url,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: queryTimeoutMs,
    query_timeout: queryTimeoutMs + 500,
    // A transaction left open (an instance frozen mid-request) holds its locks at most this long.
    idle_in_transaction_session_timeout: 10_000,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'passport',
  })
  // An idle connection that breaks (the server restarted) is dropped by the pool; say so, never crash.
  pool.on('error', (error) => log('store_connection_lost', errorFields(error)))
  // Every statement is SERIALIZABLE, also those outside a transaction (one statement each), so
  // that serialisable transactions see them in the conflict checks. Queued before any other.
  pool.on('connect', (client) => {
    client.query('SET default_transaction_isolation = serializable').catch(() => undefined)
  })

  /** A pooled connection, and whether it broke (then it is destroyed, not reused). */
  const acquire = async () => {
    let client: pg.PoolClient
    try {
      client = await pool.connect()
    } catch (error) {
      throw new StoreUnavailableError(error)
    }
    let broken: unknown = null
    const onError = (error: unknown) => {
      broken ??= error
    }
    client.on('error', onError)
    return {
      client,
      breaks: (error: unknown) => {
        if (isUnavailable(error)) broken ??= error
      },
      get broken() {
        return broken !== null
      },
      release: () => {
        client.removeListener('error', onError)
        client.release(broken === null ? undefined : (broken as Error))
      },
    }
  }

  /** One statement outside any transaction (autocommit), run again on a serialisation conflict. */
  const poolDb: Db = {
    query: async (text, values) => {
      for (let attempt = 1; ; attempt++) {
        const conn = await acquire()
        try {
          const result = await conn.client.query(text, values as unknown[])
          return { rows: result.rows, rowCount: result.rowCount ?? 0 }
        } catch (error) {
          conn.breaks(error)
          if (!isRetryable(error)) throw translateError(error)
          if (attempt >= maxAttempts) throw new StoreUnavailableError(error)
        } finally {
          conn.release()
        }
        await backoff(attempt)
      }
    },
  }

  const transaction = async <T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      const conn = await acquire()
      // A conflict the function caught and hid still means the transaction must run again.
      let conflict: unknown = null
      const txDb: Db = {
        query: async (text, values) => {
          try {
            const result = await conn.client.query(text, values as unknown[])
            return { rows: result.rows, rowCount: result.rowCount ?? 0 }
          } catch (error) {
            conn.breaks(error)
            if (isRetryable(error)) conflict ??= error
            throw error
          }
        },
      }
      try {
        await txDb.query('BEGIN ISOLATION LEVEL SERIALIZABLE')
        const value = await fn(createRepos(txDb))
        if (conflict !== null) throw conflict
        await txDb.query('COMMIT')
        conn.release()
        return value
      } catch (error) {
        if (!conn.broken) await conn.client.query('ROLLBACK').catch((e: unknown) => conn.breaks(e))
        conn.release()
        const retry = conflict ?? (isRetryable(error) ? error : null)
        if (retry === null) throw translateError(error)
        if (attempt >= maxAttempts) throw new StoreUnavailableError(retry)
      }
      await backoff(attempt)
    }
  }

  let closing: Promise<void> | null = null
  return {
    ...createRepos(poolDb),
    transaction,
    close: () => {
      closing ??= pool.end().catch(() => undefined)
      return closing
    },
  }
}
