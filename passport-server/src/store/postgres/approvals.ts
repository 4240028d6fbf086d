import { approvalRow, toApproval } from '../rows.ts'
import type { ApprovalRepo } from '../types.ts'
import { type Db, insert, one, rows } from './db.ts'

export function createApprovalRepo(db: Db): ApprovalRepo {
  return {
    create: async (a) => {
      await insert(db, approvalRow(a))
    },
    get: async (id) => {
      const r = await one(db, 'SELECT * FROM approvals WHERE id = $1', [id])
      return r && toApproval(r)
    },
    getBySecretHash: async (secretHash) => {
      const r = await one(db, 'SELECT * FROM approvals WHERE secret_hash = $1', [secretHash])
      return r && toApproval(r)
    },
    listPending: async (userId, now) =>
      (
        await rows(
          db,
          `SELECT * FROM approvals WHERE user_id = $1 AND status = 'pending' AND expires_at > $2
           ORDER BY created_at, id`,
          [userId, now],
        )
      ).map(toApproval),
    countPending: async (requestedFor, now) =>
      Number(
        (
          await one(
            db,
            `SELECT COUNT(*) AS n FROM approvals WHERE requested_for = $1 AND status = 'pending' AND expires_at > $2`,
            [requestedFor, now],
          )
        )?.n ?? 0,
      ),
    // Compare-and-swap on status, as codes.consume: exactly one racing decision updates the row.
    decide: async (id, status, at, decidedBy) => {
      const r = await one(
        db,
        `UPDATE approvals SET status = $1, decided_at = $2, decided_by = $3
         WHERE id = $4 AND status = 'pending' AND expires_at > $2 RETURNING *`,
        [status, at, decidedBy, id],
      )
      return r && toApproval(r)
    },
    expireDue: async (now, limit) =>
      (
        await rows(
          db,
          `UPDATE approvals SET status = 'expired', decided_at = expires_at
           WHERE id IN (SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1 LIMIT $2)
             AND status = 'pending'
           RETURNING *`,
          [now, limit],
        )
      ).map(toApproval),
    markUsed: async (id, approvedSince) => {
      const r = await one(
        db,
        `UPDATE approvals SET status = 'used' WHERE id = $1 AND status = 'approved' AND decided_at >= $2 RETURNING *`,
        [id, approvedSince],
      )
      return r && toApproval(r)
    },
  }
}
