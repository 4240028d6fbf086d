import type { DatabaseSync } from 'node:sqlite'
import type { Row } from './connection.ts'
import { addedColumns, droppedIndexes, recreatedTables, SCHEMA_VERSION, schemaSql } from './schema.ts'

/**
 * Creates the schema in a new file and brings a store written by an older server up to date;
 * refuses a store written by a newer one.
 */
export function migrate(db: DatabaseSync): void {
  const version = Number((db.prepare('PRAGMA user_version').get() as Row).user_version)
  if (version > SCHEMA_VERSION)
    throw new Error(`store schema ${version} is newer than this server (${SCHEMA_VERSION})`)
  // A store from an older server is brought up to date, in one transaction. Columns are checked
  // whatever the version says (see `addedColumns`); the write lock is taken only when needed.
  const missingColumns = () =>
    addedColumns.filter(({ table, column }) => {
      const columns = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]
      return columns.length > 0 && !columns.some((c) => c.name === column)
    })
  if (version > 0 && (version < SCHEMA_VERSION || missingColumns().length > 0)) {
    db.exec('BEGIN IMMEDIATE')
    // Checked again under the lock: another process may have added them meanwhile.
    for (const { table, column, definition } of missingColumns()) {
      db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`)
    }
    if (version < SCHEMA_VERSION) for (const index of droppedIndexes) db.exec(`DROP INDEX IF EXISTS ${index}`)
    for (const { table, before } of recreatedTables)
      if (version < before) db.exec(`DROP TABLE IF EXISTS ${table}`)
    db.exec('COMMIT')
  }
  db.exec(schemaSql)
  db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
}
