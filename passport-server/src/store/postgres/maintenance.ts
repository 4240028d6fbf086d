import type { MaintenanceRepo } from '../types.ts'
import { count, type Db } from './db.ts'

/** Rows deleted per statement: each stays short, so it never holds locks or hits the statement timeout. */
const BATCH = 5000

const DAY = 86_400_000

/** What can no longer matter, per table: its key, and a condition on `$1`, that long before now. */
const purged: { table: string; key: string; where: string; age: number }[] = [
  { table: 'tokens', key: 'jti', where: 'expires_at < $1', age: DAY },
  {
    table: 'refresh_tokens',
    key: 'hash',
    where: 'absolute_expires_at < $1 OR idle_expires_at < $1 OR used_at < $1 OR revoked_at < $1',
    age: DAY,
  },
  {
    table: 'refresh_families',
    key: 'family_id',
    where: 'absolute_expires_at < $1 OR idle_expires_at < $1 OR revoked_at < $1',
    age: DAY,
  },
  { table: 'codes', key: 'hash', where: 'expires_at < $1', age: DAY },
  { table: 'approvals', key: 'id', where: 'expires_at < $1', age: DAY },
  { table: 'session_events', key: 'id', where: 'at < $1', age: 7 * DAY },
  { table: 'passkey_challenges', key: 'id', where: 'expires_at < $1', age: DAY },
  // Expired ids guard nothing: the ticket or key they name is refused for its age anyway.
  { table: 'one_time_ids', key: 'id', where: 'expires_at < $1', age: 0 },
]

export function createMaintenanceRepo(db: Db): MaintenanceRepo {
  return {
    purge: async (now) => {
      let removed = 0
      for (const { table, key, where, age } of purged) {
        for (;;) {
          const n = await count(
            db,
            `DELETE FROM ${table} WHERE ${key} IN (SELECT ${key} FROM ${table} WHERE ${where} LIMIT ${BATCH})`,
            [now - age],
          )
          removed += n
          if (n < BATCH) break
        }
      }
      return removed
    },
  }
}
