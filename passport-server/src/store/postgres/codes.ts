import { toCode } from '../rows.ts'
import type { CodeRepo } from '../types.ts'
import { type Db, one } from './db.ts'

export function createCodeRepo(db: Db): CodeRepo {
  return {
    create: async (c) => {
      await db.query(
        `INSERT INTO codes (hash, site_id, user_id, session_id, redirect_uri, code_challenge, expires_at, used_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [c.hash, c.siteId, c.userId, c.sessionId, c.redirectUri, c.codeChallenge, c.expiresAt, c.usedAt],
      )
    },
    // Compare-and-swap on used_at: of racing consumers one updates the row; the others wait for
    // its lock and then fail to serialise (retried: they find it used) or find it used.
    consume: async (hash, at) => {
      const r = await one(
        db,
        'UPDATE codes SET used_at = $1 WHERE hash = $2 AND used_at IS NULL RETURNING *',
        [at, hash],
      )
      return r && toCode(r)
    },
  }
}
