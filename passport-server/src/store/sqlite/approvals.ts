import { approvalRow, toApproval } from '../rows.ts'
import type { ApprovalRepo } from '../types.ts'
import type { Row, Sql } from './connection.ts'

export function sqliteApprovals({ one, all, insert }: Sql): ApprovalRepo {
  return {
    create: async (a) => {
      insert(approvalRow(a))
    },
    get: async (id) => {
      const r = one('SELECT * FROM approvals WHERE id = ?', id)
      return r && toApproval(r)
    },
    getBySecretHash: async (secretHash) => {
      const r = one('SELECT * FROM approvals WHERE secret_hash = ?', secretHash)
      return r && toApproval(r)
    },
    listPending: async (userId, now) =>
      all(
        `SELECT * FROM approvals WHERE user_id = ? AND status = 'pending' AND expires_at > ?
         ORDER BY created_at, id`,
        userId,
        now,
      ).map(toApproval),
    countPending: async (requestedFor, now) =>
      Number(
        (
          one(
            `SELECT COUNT(*) AS n FROM approvals WHERE requested_for = ? AND status = 'pending' AND expires_at > ?`,
            requestedFor,
            now,
          ) as Row
        ).n,
      ),
    decide: async (id, status, at, decidedBy) => {
      const r = one(
        `UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?
         WHERE id = ? AND status = 'pending' AND expires_at > ? RETURNING *`,
        status,
        at,
        decidedBy,
        id,
        at,
      )
      return r && toApproval(r)
    },
    expireDue: async (now, limit) =>
      all(
        `UPDATE approvals SET status = 'expired', decided_at = expires_at
         WHERE id IN (SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= ? LIMIT ?)
         RETURNING *`,
        now,
        limit,
      ).map(toApproval),
    markUsed: async (id, approvedSince) => {
      const r = one(
        `UPDATE approvals SET status = 'used' WHERE id = ? AND status = 'approved' AND decided_at >= ? RETURNING *`,
        id,
        approvedSince,
      )
      return r && toApproval(r)
    },
  }
}
