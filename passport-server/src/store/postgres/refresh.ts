import type { EndReason } from '../../../../passport-frame/src/protocol/codes.ts'
import { familyRow, refreshRow, toFamily, toRefresh } from '../rows.ts'
import type { RefreshRepo } from '../types.ts'
import { count, type Db, insert, one, rows } from './db.ts'

export function createRefreshRepo(db: Db): RefreshRepo {
  /**
   * Revokes the live credentials matching `where`, in both kinds of family (a revoked row of an
   * older server's family keeps no sealed answer).
   */
  const revoke = async (where: string, values: unknown[], at: number, reason: EndReason): Promise<number> =>
    (await count(
      db,
      `UPDATE refresh_tokens SET revoked_at = $1, revoke_reason = $2, successor_sealed = NULL
       WHERE ${where} AND revoked_at IS NULL`,
      [at, reason, ...values],
    )) +
    (await count(
      db,
      `UPDATE refresh_families SET revoked_at = $1, revoke_reason = $2 WHERE ${where} AND revoked_at IS NULL`,
      [at, reason, ...values],
    ))
  return {
    create: async (t) => {
      await insert(db, refreshRow(t))
    },
    createFamily: async (f) => {
      await insert(db, familyRow(f))
    },
    getFamily: async (familyId) => {
      const r = await one(db, 'SELECT * FROM refresh_families WHERE family_id = $1', [familyId])
      return r && toFamily(r)
    },
    // Compare-and-swap on the generation: of racing rotations one updates the row; the others,
    // having waited for its row lock, fail with 40001 and run again, when they find it moved on.
    // "Unrevoked" is written as COALESCE(revoked_at, 0) = 0 (revoked_at is never 0), not as
    // `revoked_at IS NULL`: that would let the planner pick a partial index of live families and
    // read every live family through it (on a small or new table it did), and under SERIALIZABLE
    // reading every row locks them all, so every refresh conflicted with every other one (two
    // refreshes of two families: the second failed to serialise). By the primary key, a refresh
    // locks its own family's row only.
    advanceFamily: async (familyId, from, next) =>
      (await count(
        db,
        `UPDATE refresh_families SET generation = $1, issued_at = $2, idle_expires_at = $3, token_jti = $4,
           token_expires_at = $5
         WHERE family_id = $6 AND generation = $7 AND COALESCE(revoked_at, 0) = 0`,
        [
          next.generation,
          next.issuedAt,
          next.idleExpiresAt,
          next.tokenJti,
          next.tokenExpiresAt,
          familyId,
          from,
        ],
      )) > 0,
    get: async (hash) => {
      const r = await one(db, 'SELECT * FROM refresh_tokens WHERE hash = $1', [hash])
      return r && toRefresh(r)
    },
    head: async (familyId) => {
      const r = await one(
        db,
        'SELECT * FROM refresh_tokens WHERE family_id = $1 ORDER BY generation DESC LIMIT 1',
        [familyId],
      )
      return r && r.used_at === null && r.revoked_at === null ? toRefresh(r) : null
    },
    // Compare-and-swap. Of racing rotations one updates the row; under SERIALIZABLE the others,
    // having waited for its row lock, fail with 40001 and run again, when they find it used.
    markRotated: async (hash, at, successorHash, sealed) =>
      (await count(
        db,
        `UPDATE refresh_tokens SET used_at = $1, successor_hash = $2, successor_sealed = $3
         WHERE hash = $4 AND used_at IS NULL AND revoked_at IS NULL`,
        [at, successorHash, sealed, hash],
      )) > 0,
    revokeFamily: (familyId, at, reason) => revoke('family_id = $3', [familyId], at, reason),
    revokeSession: (sessionId, at, reason) => revoke('session_id = $3', [sessionId], at, reason),
    revokeSessionSite: (sessionId, siteId, at, reason) =>
      revoke('session_id = $3 AND site_id = $4', [sessionId, siteId], at, reason),
    revokeSite: async (siteId, at, reason) =>
      [
        ...(await rows(
          db,
          `UPDATE refresh_tokens SET revoked_at = $1, revoke_reason = $2, successor_sealed = NULL
           WHERE site_id = $3 AND revoked_at IS NULL RETURNING session_id, user_id`,
          [at, reason, siteId],
        )),
        ...(await rows(
          db,
          `UPDATE refresh_families SET revoked_at = $1, revoke_reason = $2
           WHERE site_id = $3 AND revoked_at IS NULL RETURNING session_id, user_id`,
          [at, reason, siteId],
        )),
      ].map((r) => ({ sessionId: r.session_id as string, userId: r.user_id as string })),
    revokeOtherDevices: async (userId, siteId, keepSessionId, at, reason) => [
      ...new Set(
        [
          ...(await rows(
            db,
            `UPDATE refresh_tokens SET revoked_at = $1, revoke_reason = $2, successor_sealed = NULL
             WHERE user_id = $3 AND site_id = $4 AND session_id <> $5 AND revoked_at IS NULL AND used_at IS NULL
             RETURNING session_id`,
            [at, reason, userId, siteId, keepSessionId],
          )),
          ...(await rows(
            db,
            `UPDATE refresh_families SET revoked_at = $1, revoke_reason = $2
             WHERE user_id = $3 AND site_id = $4 AND session_id <> $5 AND revoked_at IS NULL
             RETURNING session_id`,
            [at, reason, userId, siteId, keepSessionId],
          )),
        ].map((r) => r.session_id as string),
      ),
    ],
  }
}
