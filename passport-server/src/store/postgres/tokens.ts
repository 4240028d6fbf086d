import { frozenToken, type Row, tokenRow, toToken } from '../rows.ts'
import type { TokenRepo } from '../types.ts'
import { type Db, insert, one, rows } from './db.ts'

export function createTokenRepo(db: Db): TokenRepo {
  const revoked = async (text: string, values: unknown[]) => (await rows(db, text, values)).map(toToken)
  return {
    listLive: async (now, sessionId) =>
      (sessionId === undefined
        ? await rows(
            db,
            'SELECT * FROM tokens WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY issued_at',
            [now],
          )
        : await rows(
            db,
            'SELECT * FROM tokens WHERE session_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY issued_at',
            [sessionId, now],
          )
      ).map(toToken),
    create: async (t, tokenHash = null) => {
      await insert(db, tokenRow(t, tokenHash))
    },
    get: async (jti) => {
      const r = await one(db, 'SELECT * FROM tokens WHERE jti = $1', [jti])
      return r && toToken(r)
    },
    // Read afresh every time: another instance may revoke the token at any moment.
    getWithHash: async (jti) => {
      const r: Row | null = await one(
        db,
        `SELECT tokens.*, users.username AS holder_username, users.name AS holder_name
         FROM tokens LEFT JOIN users ON users.id = tokens.user_id WHERE tokens.jti = $1`,
        [jti],
      )
      if (!r) return null
      const holder =
        r.holder_username === null
          ? null
          : { id: r.user_id as string, username: r.holder_username as string, name: r.holder_name as string }
      return frozenToken({ record: toToken(r), tokenHash: (r.token_hash as string | null) ?? null, holder })
    },
    revokeOtherDevices: (userId, siteId, keepSessionId, at, reason) =>
      revoked(
        `UPDATE tokens SET revoked_at = $1, revoke_reason = $2
         WHERE user_id = $3 AND site_id = $4 AND expires_at > $1 AND session_id <> $5 AND revoked_at IS NULL
         RETURNING *`,
        [at, reason, userId, siteId, keepSessionId],
      ),
    revokeSession: (sessionId, at, reason) =>
      revoked(
        `UPDATE tokens SET revoked_at = $1, revoke_reason = $2
         WHERE session_id = $3 AND revoked_at IS NULL RETURNING *`,
        [at, reason, sessionId],
      ),
    revokeSessionSite: (sessionId, siteId, at, reason) =>
      revoked(
        `UPDATE tokens SET revoked_at = $1, revoke_reason = $2
         WHERE session_id = $3 AND site_id = $4 AND revoked_at IS NULL RETURNING *`,
        [at, reason, sessionId, siteId],
      ),
    revokeSite: (siteId, at, reason) =>
      revoked(
        `UPDATE tokens SET revoked_at = $1, revoke_reason = $2
         WHERE site_id = $3 AND revoked_at IS NULL AND expires_at > $1 RETURNING *`,
        [at, reason, siteId],
      ),
  }
}
