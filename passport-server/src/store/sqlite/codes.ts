import type { CodeRecord, CodeRepo } from '../types.ts'
import type { Row, Sql } from './connection.ts'

export const toCode = (r: Row): CodeRecord => ({
  hash: r.hash as string,
  siteId: r.site_id as string,
  userId: r.user_id as string,
  sessionId: r.session_id as string,
  redirectUri: r.redirect_uri as string,
  codeChallenge: r.code_challenge as string,
  expiresAt: Number(r.expires_at),
  usedAt: r.used_at === null ? null : Number(r.used_at),
})

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
