import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite'
import { StoreUnavailableError } from '../../errors.ts'
import { insertSql, type RowWrite } from '../rows.ts'

export type Row = Record<string, SQLInputValue>

/** The three ways a repository talks to its connection, with statements prepared once each. */
export interface Sql {
  /** The first row, or null. */
  one(sql: string, ...params: SQLInputValue[]): Row | null
  run(sql: string, params?: Row | SQLInputValue[]): { changes: number | bigint }
  all(sql: string, ...params: SQLInputValue[]): Row[]
  /** Inserts a record's row (`rows.ts`), with an optional clause after it (`ON CONFLICT …`). */
  insert(row: RowWrite, then?: string): { changes: number | bigint }
}

export function createSql(db: DatabaseSync): Sql {
  // Prepared once per distinct statement: preparing costs more than most of these queries.
  const statements = new Map<string, StatementSync>()
  const stmt = (sql: string): StatementSync => {
    let s = statements.get(sql)
    if (!s) {
      s = db.prepare(sql)
      statements.set(sql, s)
    }
    return s
  }
  return {
    one: (sql, ...params) => (stmt(sql).get(...params) as Row | undefined) ?? null,
    run: (sql, params = []) => (Array.isArray(params) ? stmt(sql).run(...params) : stmt(sql).run(params)),
    all: (sql, ...params) => stmt(sql).all(...params) as Row[],
    insert: (row, then = '') => stmt(`${insertSql(row, () => '?')}${then}`).run(...row.values),
  }
}

// SQLite primary result codes that mean "cannot reach the data" rather than "bad query".
const UNAVAILABLE_CODES = new Set([5, 6, 8, 10, 11, 13, 14, 26]) // BUSY LOCKED READONLY IOERR CORRUPT FULL CANTOPEN NOTADB

/** SQLite's failures to reach the data become `StoreUnavailableError` (the app fails closed); others pass. */
export function translateError(err: unknown): unknown {
  const e = err as { code?: string; errcode?: number }
  if (e?.code === 'ERR_INVALID_STATE') return new StoreUnavailableError(err)
  if (e?.code === 'ERR_SQLITE_ERROR' && UNAVAILABLE_CODES.has((e.errcode ?? 0) & 0xff)) {
    return new StoreUnavailableError(err)
  }
  return err
}
