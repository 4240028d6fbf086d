import { challengeRow, passkeyRow, toPasskey, toPasskeyChallenge } from '../rows.ts'
import type { PasskeyRepo } from '../types.ts'
import { count, type Db, insert, one, rows } from './db.ts'

export function createPasskeyRepo(db: Db): PasskeyRepo {
  return {
    create: async (p) => (await insert(db, passkeyRow(p), ' ON CONFLICT (id) DO NOTHING')) === 1,
    get: async (id) => {
      const r = await one(db, 'SELECT * FROM passkeys WHERE id = $1', [id])
      return r ? toPasskey(r) : null
    },
    listByUser: async (userId) =>
      (
        await rows(
          db,
          'SELECT * FROM passkeys WHERE user_id = $1 AND removed_at IS NULL ORDER BY created_at, id',
          [userId],
        )
      ).map(toPasskey),
    userHandleOf: async (userId) => {
      const r = await one(db, 'SELECT user_handle FROM passkeys WHERE user_id = $1 LIMIT 1', [userId])
      return r ? (r.user_handle as string) : null
    },
    // Compare-and-swap on the counter: of two racing uses of one reading, one records.
    recordUse: async (id, expectedCounter, use) =>
      (await count(
        db,
        `UPDATE passkeys SET counter = $1, backed_up = $2, last_used_at = $3
         WHERE id = $4 AND counter = $5 AND removed_at IS NULL`,
        [use.counter, use.backedUp ? 1 : 0, use.at, id, expectedCounter],
      )) === 1,
    remove: async (userId, id, at) =>
      (await count(
        db,
        'UPDATE passkeys SET removed_at = $1 WHERE id = $2 AND user_id = $3 AND removed_at IS NULL',
        [at, id, userId],
      )) === 1,
    createChallenge: async (c) => {
      await insert(db, challengeRow(c))
    },
    // The row as it was, locked, then marked used if it was not: a racing use waits on the lock
    // and (serialisable) is run again, when it sees the first one's time.
    useChallenge: async (id, at) => {
      const r = await one(
        db,
        `WITH before AS (SELECT * FROM passkey_challenges WHERE id = $1 FOR UPDATE),
              marked AS (UPDATE passkey_challenges SET used_at = $2 WHERE id = $1 AND used_at IS NULL)
         SELECT * FROM before`,
        [id, at],
      )
      return r ? toPasskeyChallenge(r) : null
    },
  }
}
