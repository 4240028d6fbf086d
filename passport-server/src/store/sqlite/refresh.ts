import type { SQLInputValue } from 'node:sqlite'
import type { EndReason } from '../../../../passport-frame/src/protocol/codes.ts'
import { familyRow, refreshRow, toFamily, toRefresh } from '../rows.ts'
import type { RefreshRepo } from '../types.ts'
import type { Sql } from './connection.ts'

export function sqliteRefresh({ one, run, all, insert }: Sql): RefreshRepo {
  /**
   * Revokes the live refresh credentials matching `where`, in both kinds of family (a revoked
   * row of an older server's family keeps no sealed answer).
   */
  const revokeRefresh = (where: string, params: SQLInputValue[], at: number, reason: EndReason): number =>
    Number(
      run(
        `UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ?, successor_sealed = NULL
         WHERE ${where} AND revoked_at IS NULL`,
        [at, reason, ...params],
      ).changes,
    ) +
    Number(
      run(
        `UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? WHERE ${where} AND revoked_at IS NULL`,
        [at, reason, ...params],
      ).changes,
    )
  return {
    createFamily: async (f) => {
      insert(familyRow(f))
    },
    getFamily: async (familyId) => {
      const r = one('SELECT * FROM refresh_families WHERE family_id = ?', familyId)
      return r && toFamily(r)
    },
    advanceFamily: async (familyId, from, next) =>
      run(
        `UPDATE refresh_families SET generation = ?, issued_at = ?, idle_expires_at = ?, token_jti = ?,
           token_expires_at = ?
         WHERE family_id = ? AND generation = ? AND revoked_at IS NULL`,
        [
          next.generation,
          next.issuedAt,
          next.idleExpiresAt,
          next.tokenJti,
          next.tokenExpiresAt,
          familyId,
          from,
        ],
      ).changes > 0,
    create: async (t) => {
      insert(refreshRow(t))
    },
    get: async (hash) => {
      const r = one('SELECT * FROM refresh_tokens WHERE hash = ?', hash)
      return r && toRefresh(r)
    },
    head: async (familyId) => {
      const r = one(
        'SELECT * FROM refresh_tokens WHERE family_id = ? ORDER BY generation DESC LIMIT 1',
        familyId,
      )
      return r && r.used_at === null && r.revoked_at === null ? toRefresh(r) : null
    },
    markRotated: async (hash, at, successorHash, sealed) =>
      run(
        `UPDATE refresh_tokens SET used_at = ?, successor_hash = ?, successor_sealed = ?
         WHERE hash = ? AND used_at IS NULL AND revoked_at IS NULL`,
        [at, successorHash, sealed, hash],
      ).changes > 0,
    revokeFamily: async (familyId, at, reason) => revokeRefresh('family_id = ?', [familyId], at, reason),
    revokeSession: async (sessionId, at, reason) => revokeRefresh('session_id = ?', [sessionId], at, reason),
    revokeSessionSite: async (sessionId, siteId, at, reason) =>
      revokeRefresh('session_id = ? AND site_id = ?', [sessionId, siteId], at, reason),
    revokeSite: async (siteId, at, reason) =>
      [
        ...all(
          `UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ?, successor_sealed = NULL
           WHERE site_id = ? AND revoked_at IS NULL RETURNING session_id, user_id`,
          at,
          reason,
          siteId,
        ),
        ...all(
          `UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
           WHERE site_id = ? AND revoked_at IS NULL RETURNING session_id, user_id`,
          at,
          reason,
          siteId,
        ),
      ].map((r) => ({ sessionId: r.session_id as string, userId: r.user_id as string })),
    revokeOtherDevices: async (userId, siteId, keepSessionId, at, reason) => [
      ...new Set(
        [
          ...all(
            `UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ?, successor_sealed = NULL
             WHERE user_id = ? AND site_id = ? AND session_id <> ? AND revoked_at IS NULL AND used_at IS NULL
             RETURNING session_id`,
            at,
            reason,
            userId,
            siteId,
            keepSessionId,
          ),
          ...all(
            `UPDATE refresh_families SET revoked_at = ?, revoke_reason = ?
             WHERE user_id = ? AND site_id = ? AND session_id <> ? AND revoked_at IS NULL
             RETURNING session_id`,
            at,
            reason,
            userId,
            siteId,
            keepSessionId,
          ),
        ].map((r) => r.session_id as string),
      ),
    ],
  }
}
