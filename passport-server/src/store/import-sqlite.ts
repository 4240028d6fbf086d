import fs from 'node:fs'
import { DatabaseSync, type SQLOutputValue } from 'node:sqlite'
import pg from 'pg'
import { isSealedSecret, type MasterKey, openSecret } from '../crypto/master-key.ts'
import { PassportError } from '../errors.ts'
import { migrate as migratePostgres } from './postgres/schema.ts'
import { openSqliteStore } from './sqlite.ts'

/**
 * Moves an embedded store (the SQLite file `npm start` writes) into an empty PostgreSQL
 * database, so that a deployment that outgrows one machine keeps its users, sites, sessions,
 * live tokens and refresh families: nobody is signed out by the move, and a site's authkey and
 * client secret keep working.
 *
 * Every table is copied whole, column by column, in one PostgreSQL transaction: the move is
 * complete or it did not happen. Ids are kept (the event log's too: frames resume by event id),
 * and the identity sequences continue after them. Secrets are copied as they are stored, sealed
 * under the master key; the import refuses a file whose secrets the given master key does not
 * open, since PostgreSQL instances started with that key could not use them.
 *
 * Refused, changing nothing: a missing file, a target that already holds users, sites or
 * sessions (the import never merges two passports), a column the target does not have (a file
 * written by a newer server). Run it with every instance stopped, so that the file does not
 * change while it is read; the file itself is read in one snapshot and left as it was, apart
 * from the schema upgrade the current server applies to any file it opens.
 */
export interface ImportReport {
  tables: { table: string; rows: number }[]
}

/** Tables whose rows are a passport's own data: any row in one of them means the target is in use. */
const IN_USE_TABLES = [
  'users',
  'sites',
  'sessions',
  'tokens',
  'refresh_tokens',
  'refresh_families',
  'passkeys',
]

/** Rows per INSERT (PostgreSQL allows 65,535 parameters a statement). */
const MAX_PARAMETERS = 30_000

export async function importSqliteIntoPostgres(input: {
  sqliteFile: string
  databaseUrl: string
  masterKey: MasterKey
}): Promise<ImportReport> {
  if (!fs.existsSync(input.sqliteFile)) {
    throw new PassportError('invalid_request', `no SQLite store at ${input.sqliteFile}`)
  }
  // Brings a file written by an older server up to this server's schema (as starting on it would).
  await openSqliteStore(input.sqliteFile).close()
  const source = new DatabaseSync(input.sqliteFile, { readOnly: true })
  const target = new pg.Client({ connectionString: input.databaseUrl, connectionTimeoutMillis: 5_000 })
  await target.connect()
  try {
    await migratePostgres(target)
    // One snapshot of the file: a read transaction sees one state even if a writer goes on.
    source.exec('BEGIN')
    await target.query('BEGIN ISOLATION LEVEL SERIALIZABLE')
    try {
      const report = await copyTables(source, target, input.masterKey)
      await target.query('COMMIT')
      return report
    } catch (error) {
      await target.query('ROLLBACK').catch(() => undefined)
      throw error
    } finally {
      source.exec('ROLLBACK')
    }
  } finally {
    source.close()
    await target.end().catch(() => undefined)
  }
}

interface TargetColumn {
  name: string
  type: string
  generatedAlways: boolean
}

async function copyTables(
  source: DatabaseSync,
  target: pg.Client,
  masterKey: MasterKey,
): Promise<ImportReport> {
  const targetTables = await readTargetColumns(target)
  const sourceTables = (
    source
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )
      .all() as { name: string }[]
  ).map((row) => row.name)

  for (const table of IN_USE_TABLES) {
    const { rows } = await target.query(`SELECT 1 FROM ${table} LIMIT 1`)
    if (rows.length > 0) {
      throw new PassportError(
        'invalid_request',
        `the PostgreSQL database already holds ${table}: the import only fills an empty passport database`,
      )
    }
  }
  checkSecretsOpen(source, masterKey)

  const report: ImportReport = { tables: [] }
  for (const table of sourceTables) {
    const columns = targetTables.get(table)
    if (!columns) {
      throw new PassportError(
        'invalid_request',
        `the PostgreSQL schema has no table ${table}: is the file from a newer server?`,
      )
    }
    const sourceColumns = (source.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map(
      (c) => c.name,
    )
    const missing = sourceColumns.filter((name) => !columns.some((c) => c.name === name))
    if (missing.length > 0) {
      throw new PassportError(
        'invalid_request',
        `the PostgreSQL table ${table} has no column ${missing.join(', ')}: is the file from a newer server?`,
      )
    }
    const copied = columns.filter((c) => sourceColumns.includes(c.name))
    // What the opening of this target wrote before the import (fresh signing keys, a secret
    // or two) gives way to the file's: tokens in use were signed with the file's keys.
    await target.query(`DELETE FROM ${table}`)
    const rows = source.prepare(`SELECT ${copied.map((c) => c.name).join(', ')} FROM ${table}`).all()
    await insertRows(target, table, copied, rows)
    await continueIdentity(target, table, columns)
    report.tables.push({ table, rows: rows.length })
  }
  return report
}

async function readTargetColumns(target: pg.Client): Promise<Map<string, TargetColumn[]>> {
  const { rows } = await target.query<{
    table_name: string
    column_name: string
    data_type: string
    is_identity: string
    column_default: string | null
  }>(
    `SELECT table_name, column_name, data_type, is_identity, column_default
       FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name <> 'schema_migrations'
      ORDER BY table_name, ordinal_position`,
  )
  const tables = new Map<string, TargetColumn[]>()
  for (const row of rows) {
    const list = tables.get(row.table_name) ?? []
    list.push({ name: row.column_name, type: row.data_type, generatedAlways: row.is_identity === 'YES' })
    tables.set(row.table_name, list)
  }
  return tables
}

/** A stored secret the master key does not open would stop every PostgreSQL instance: refuse it now. */
function checkSecretsOpen(source: DatabaseSync, masterKey: MasterKey): void {
  const secrets = source.prepare('SELECT name, value FROM secrets').all() as { name: string; value: string }[]
  for (const { name, value } of secrets) {
    if (isSealedSecret(value) && openSecret(masterKey, name, value) === null) {
      throw new PassportError(
        'invalid_request',
        `the master key does not open the file's secret "${name}": run the import with the master key the passport used`,
      )
    }
  }
}

/** SQLite keeps booleans as 0/1 integers; PostgreSQL columns say what each value is. */
function toTarget(value: SQLOutputValue, column: TargetColumn): unknown {
  if (value === null) return null
  if (column.type === 'boolean') return Number(value) !== 0
  if (typeof value === 'bigint') return value.toString()
  return value
}

async function insertRows(
  target: pg.Client,
  table: string,
  columns: TargetColumn[],
  rows: Record<string, SQLOutputValue>[],
): Promise<void> {
  const perStatement = Math.max(1, Math.floor(MAX_PARAMETERS / columns.length))
  const override = columns.some((c) => c.generatedAlways) ? ' OVERRIDING SYSTEM VALUE' : ''
  for (let start = 0; start < rows.length; start += perStatement) {
    const batch = rows.slice(start, start + perStatement)
    const values: unknown[] = []
    const tuples = batch.map((row) => {
      const placeholders = columns.map((column) => {
        values.push(toTarget(row[column.name] ?? null, column))
        return `$${values.length}`
      })
      return `(${placeholders.join(', ')})`
    })
    await target.query(
      `INSERT INTO ${table} (${columns.map((c) => c.name).join(', ')})${override} VALUES ${tuples.join(', ')}`,
      values,
    )
  }
}

/** The event log and the audit log number their rows: new rows continue after the copied ones. */
async function continueIdentity(target: pg.Client, table: string, columns: TargetColumn[]): Promise<void> {
  for (const column of columns) {
    const { rows } = await target.query<{ sequence: string | null }>(
      'SELECT pg_get_serial_sequence($1, $2) AS sequence',
      [table, column.name],
    )
    const sequence = rows[0]?.sequence
    if (!sequence) continue
    await target.query(
      `SELECT setval($1, COALESCE((SELECT MAX(${column.name}) FROM ${table}), 0) + 1, false)`,
      [sequence],
    )
  }
}
