import { insertSql, type Row, type RowWrite } from '../rows.ts'

/**
 * What a repository needs of PostgreSQL: run one statement, on whatever the repository was
 * bound to (a connection inside a transaction, or the pool for a call of its own).
 */
export interface Db {
  query(text: string, values?: readonly unknown[]): Promise<{ rows: Row[]; rowCount: number }>
}

export const rows = async (db: Db, text: string, values: readonly unknown[] = []): Promise<Row[]> =>
  (await db.query(text, values)).rows

export const one = async (db: Db, text: string, values: readonly unknown[] = []): Promise<Row | null> =>
  (await db.query(text, values)).rows[0] ?? null

export const count = async (db: Db, text: string, values: readonly unknown[] = []): Promise<number> =>
  (await db.query(text, values)).rowCount

/** Inserts a record's row (`rows.ts`), with an optional clause after it (`ON CONFLICT …`); the rows written. */
export const insert = (db: Db, row: RowWrite, then = ''): Promise<number> =>
  count(db, `${insertSql(row, (n) => `$${n}`)}${then}`, row.values)

/**
 * Advisory-lock keys of the passport (the two-int form: a namespace, then the lock). The
 * namespace is "pass" in ASCII, so that other software sharing the database is unlikely to
 * collide with it. Advisory locks are per database.
 */
export const LOCK_NAMESPACE = 0x70617373
export const MIGRATION_LOCK = 1
export const EVENT_LOG_LOCK = 2
