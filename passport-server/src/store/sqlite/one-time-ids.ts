import type { OneTimeIdRepo } from '../types.ts'
import type { Sql } from './connection.ts'

/**
 * One-time ids (issue 16): wrapped keys of sealed payloads and sign-in tickets, one row each
 * until it expires (table `one_time_ids`, schema.ts). The primary key makes a second claim of
 * the same id a no-op, so "was it new" is one statement, atomic across instances.
 */
export function sqliteOneTimeIds({ run }: Sql): OneTimeIdRepo {
  return {
    claim: async (id, expiresAt) =>
      Number(
        run('INSERT INTO one_time_ids (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING', [
          id,
          expiresAt,
        ]).changes,
      ) === 1,
    purgeExpired: async (now) => Number(run('DELETE FROM one_time_ids WHERE expires_at < ?', [now]).changes),
  }
}
