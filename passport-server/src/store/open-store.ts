import type { Logger } from '../errors.ts'
import { openPostgresStore } from './postgres/index.ts'
import { openSqliteStore } from './sqlite.ts'
import type { Store } from './types.ts'

/**
 * Opens the configured store: PostgreSQL when a database URL is set (`PASSPORT_DATABASE_URL`),
 * else the embedded SQLite file. Unsealed: the caller wraps it with `withSealedSecrets`.
 */
export async function openStore(
  target: { databaseUrl: string; sqliteFile: string },
  log: Logger,
): Promise<Store> {
  if (target.databaseUrl !== '') return openPostgresStore(target.databaseUrl, { log })
  return openSqliteStore(target.sqliteFile)
}
