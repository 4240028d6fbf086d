import type { OneTimeIdRepo } from '../types.ts'
import { count, type Db } from './db.ts'

/** One-time ids (sealed-payload keys, sign-in tickets): the primary key makes a second claim a no-op. */
export function createOneTimeIdRepo(db: Db): OneTimeIdRepo {
  return {
    claim: async (id, expiresAt) =>
      (await count(
        db,
        'INSERT INTO one_time_ids (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING',
        [id, expiresAt],
      )) === 1,
    purgeExpired: async (now) => count(db, 'DELETE FROM one_time_ids WHERE expires_at < $1', [now]),
  }
}
