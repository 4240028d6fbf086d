import type { ResolvedConfig } from '../config.ts'
import type { Logger } from '../errors.ts'
import { openPostgresStore } from './postgres/index.ts'
import { openSqliteStore } from './sqlite.ts'
import type { Store } from './types.ts'

/**
 * Opens the configured store: PostgreSQL when a database URL is set (`PASSPORT_DATABASE_URL`),
 * else the embedded SQLite file. Unsealed: the caller wraps it with `withSealedSecrets`.
 */
export async function openStore(
  config: Pick<ResolvedConfig, 'databaseUrl' | 'databasePoolSize'>,
  sqliteFile: string,
  log: Logger,
): Promise<Store> {
  if (config.databaseUrl !== '') {
    return openPostgresStore(config.databaseUrl, { poolSize: config.databasePoolSize, log })
  }
  return openSqliteStore(sqliteFile)
}
