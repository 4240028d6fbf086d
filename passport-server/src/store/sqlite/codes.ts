import { toCode } from '../rows.ts'
import type { CodeRepo } from '../types.ts'
import type { Sql } from './connection.ts'

export function sqliteCodes({ one, run }: Sql): CodeRepo {
  return {
    create: async (c) => {
      run(
        `INSERT INTO codes (hash, site_id, user_id, session_id, redirect_uri, code_challenge, expires_at, used_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        [c.hash, c.siteId, c.userId, c.sessionId, c.redirectUri, c.codeChallenge, c.expiresAt, c.usedAt],
      )
    },
    consume: async (hash, at) => {
      const r = one('UPDATE codes SET used_at = ? WHERE hash = ? AND used_at IS NULL RETURNING *', at, hash)
      return r && toCode(r)
    },
  }
}
