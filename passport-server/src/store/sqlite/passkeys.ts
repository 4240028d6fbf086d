import { challengeRow, passkeyRow, toPasskey, toPasskeyChallenge } from '../rows.ts'
import type { PasskeyRepo } from '../types.ts'
import type { Sql } from './connection.ts'

/**
 * Passkeys (WebAuthn credentials) and the challenges handed out for them: two new tables, made
 * by `schemaSql` (which includes this) on every open, so an older store gains them with no
 * version step and an older server never reads them. Plain SQL that PostgreSQL accepts too
 * (BIGINT for times, INTEGER 0/1 for flags).
 */
export const passkeysSchemaSql = `
CREATE TABLE IF NOT EXISTS passkeys (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  user_handle TEXT NOT NULL,
  public_key TEXT NOT NULL,
  counter BIGINT NOT NULL,
  transports TEXT NOT NULL,
  device_type TEXT NOT NULL,
  backed_up INTEGER NOT NULL,
  aaguid TEXT NOT NULL,
  name TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT,
  removed_at BIGINT
);
CREATE INDEX IF NOT EXISTS passkeys_by_user ON passkeys (user_id);
CREATE TABLE IF NOT EXISTS passkey_challenges (
  id TEXT PRIMARY KEY,
  challenge TEXT NOT NULL,
  binding_hash TEXT NOT NULL,
  purpose TEXT NOT NULL,
  user_id TEXT,
  session_id TEXT,
  user_handle TEXT,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT
);
CREATE INDEX IF NOT EXISTS passkey_challenges_by_expiry ON passkey_challenges (expires_at);
`

/** What the maintenance purge deletes: challenges a day past expiry (used or not). */
export const passkeysPurgeSql = 'DELETE FROM passkey_challenges WHERE expires_at < ?'

export function sqlitePasskeys({ one, all, run, insert }: Sql): PasskeyRepo {
  return {
    create: async (p) => Number(insert(passkeyRow(p), ' ON CONFLICT (id) DO NOTHING').changes) === 1,
    get: async (id) => {
      const r = one('SELECT * FROM passkeys WHERE id = ?', id)
      return r ? toPasskey(r) : null
    },
    listByUser: async (userId) =>
      all(
        'SELECT * FROM passkeys WHERE user_id = ? AND removed_at IS NULL ORDER BY created_at, id',
        userId,
      ).map(toPasskey),
    userHandleOf: async (userId) => {
      const r = one('SELECT user_handle FROM passkeys WHERE user_id = ? LIMIT 1', userId)
      return r ? (r.user_handle as string) : null
    },
    recordUse: async (id, expectedCounter, use) =>
      Number(
        run(
          `UPDATE passkeys SET counter = ?, backed_up = ?, last_used_at = ?
           WHERE id = ? AND counter = ? AND removed_at IS NULL`,
          [use.counter, use.backedUp ? 1 : 0, use.at, id, expectedCounter],
        ).changes,
      ) === 1,
    remove: async (userId, id, at) =>
      Number(
        run('UPDATE passkeys SET removed_at = ? WHERE id = ? AND user_id = ? AND removed_at IS NULL', [
          at,
          id,
          userId,
        ]).changes,
      ) === 1,
    createChallenge: async (c) => {
      insert(challengeRow(c))
    },
    useChallenge: async (id, at) => {
      // One connection, statements run synchronously: nothing runs between the read and the
      // write, so of two uses exactly one sees the challenge unused.
      const before = one('SELECT * FROM passkey_challenges WHERE id = ?', id)
      if (!before) return null
      if (before.used_at === null) run('UPDATE passkey_challenges SET used_at = ? WHERE id = ?', [at, id])
      return toPasskeyChallenge(before)
    },
  }
}
