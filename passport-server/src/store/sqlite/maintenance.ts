import type { MaintenanceRepo } from '../types.ts'
import type { Caches } from './caches.ts'
import type { Sql } from './connection.ts'
import { passkeysPurgeSql } from './passkeys.ts'

export function sqliteMaintenance({ run }: Sql, caches: Caches): MaintenanceRepo {
  return {
    purge: async (now) => {
      caches.tokens.forget()
      const dayAgo = now - 86_400_000
      const weekAgo = now - 7 * 86_400_000
      let removed = 0
      for (const [sql, params] of [
        ['DELETE FROM tokens WHERE expires_at < ?', [dayAgo]],
        [
          `DELETE FROM refresh_tokens WHERE absolute_expires_at < ? OR idle_expires_at < ?
             OR used_at < ? OR revoked_at < ?`,
          [dayAgo, dayAgo, dayAgo, dayAgo],
        ],
        [
          `DELETE FROM refresh_families WHERE absolute_expires_at < ? OR idle_expires_at < ?
             OR revoked_at < ?`,
          [dayAgo, dayAgo, dayAgo],
        ],
        ['DELETE FROM codes WHERE expires_at < ?', [dayAgo]],
        ['DELETE FROM approvals WHERE expires_at < ?', [dayAgo]],
        [passkeysPurgeSql, [dayAgo]],
        ['DELETE FROM session_events WHERE at < ?', [weekAgo]],
        ['DELETE FROM one_time_ids WHERE expires_at < ?', [now]],
      ] as const) {
        removed += Number(run(sql, [...params]).changes)
      }
      return removed
    },
  }
}
