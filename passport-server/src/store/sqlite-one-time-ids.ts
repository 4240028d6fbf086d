import type { SQLInputValue } from 'node:sqlite'
import type { OneTimeIdRepo } from './types.ts'

/**
 * One-time ids (sealed-payload keys, sign-in tickets): a row per id until it expires. Plain SQL
 * that PostgreSQL accepts as it is.
 */
export const oneTimeIdsSql = `
CREATE TABLE IF NOT EXISTS one_time_ids (
  id TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS one_time_ids_by_expiry ON one_time_ids (expires_at);
`

export function createOneTimeIdRepo(
  run: (sql: string, params: SQLInputValue[]) => { changes: number | bigint },
): OneTimeIdRepo {
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
