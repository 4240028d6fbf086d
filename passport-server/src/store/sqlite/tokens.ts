import type { SQLInputValue } from 'node:sqlite'
import { frozenToken, tokenRow, toToken } from '../rows.ts'
import type { TokenRepo } from '../types.ts'
import type { Caches } from './caches.ts'
import type { Row, Sql } from './connection.ts'

export function sqliteTokens({ one, all, insert }: Sql, caches: Caches): TokenRepo {
  /** Every statement that revokes tokens goes through here: kept token rows are then stale. */
  const revokeTokens = (sql: string, ...params: SQLInputValue[]): Row[] => {
    caches.tokens.forget()
    return all(sql, ...params)
  }
  return {
    listLive: async (now, sessionId) =>
      (sessionId === undefined
        ? all('SELECT * FROM tokens WHERE revoked_at IS NULL AND expires_at > ? ORDER BY issued_at', now)
        : all(
            `SELECT * FROM tokens WHERE session_id = ? AND revoked_at IS NULL AND expires_at > ?
             ORDER BY issued_at`,
            sessionId,
            now,
          )
      ).map(toToken),
    create: async (t, tokenHash = null) => {
      insert(tokenRow(t, tokenHash))
    },
    get: async (jti) => {
      const r = one('SELECT * FROM tokens WHERE jti = ?', jti)
      return r && toToken(r)
    },
    getWithHash: async (jti) =>
      caches.tokens.get(jti, () => {
        // One statement for the token and its holder: introspection needs both on every call.
        const r = one(
          `SELECT tokens.*, users.username AS holder_username, users.name AS holder_name
           FROM tokens LEFT JOIN users ON users.id = tokens.user_id WHERE tokens.jti = ?`,
          jti,
        )
        if (!r) return null
        const holder =
          r.holder_username === null
            ? null
            : {
                id: r.user_id as string,
                username: r.holder_username as string,
                name: r.holder_name as string,
              }
        return frozenToken({
          record: toToken(r),
          tokenHash: (r.token_hash as string | null) ?? null,
          holder,
        })
      }),
    revokeOtherDevices: async (userId, siteId, keepSessionId, at, reason) =>
      revokeTokens(
        `UPDATE tokens SET revoked_at = ?, revoke_reason = ?
         WHERE user_id = ? AND site_id = ? AND expires_at > ? AND session_id <> ? AND revoked_at IS NULL
         RETURNING *`,
        at,
        reason,
        userId,
        siteId,
        at,
        keepSessionId,
      ).map(toToken),
    revokeSession: async (sessionId, at, reason) =>
      revokeTokens(
        `UPDATE tokens SET revoked_at = ?, revoke_reason = ?
         WHERE session_id = ? AND revoked_at IS NULL RETURNING *`,
        at,
        reason,
        sessionId,
      ).map(toToken),
    revokeSessionSite: async (sessionId, siteId, at, reason) =>
      revokeTokens(
        `UPDATE tokens SET revoked_at = ?, revoke_reason = ?
         WHERE session_id = ? AND site_id = ? AND revoked_at IS NULL RETURNING *`,
        at,
        reason,
        sessionId,
        siteId,
      ).map(toToken),
    revokeSite: async (siteId, at, reason) =>
      revokeTokens(
        `UPDATE tokens SET revoked_at = ?, revoke_reason = ?
         WHERE site_id = ? AND revoked_at IS NULL AND expires_at > ? RETURNING *`,
        at,
        reason,
        siteId,
        at,
      ).map(toToken),
  }
}
