import { toAudit } from '../rows.ts'
import type { AuditRepo } from '../types.ts'
import { count, type Db, one, rows } from './db.ts'

/** The audit log: append-only rows, read newest first with optional filters, purged by age. */
export function createAuditRepo(db: Db): AuditRepo {
  return {
    append: async (e) =>
      Number(
        (
          await one(
            db,
            `INSERT INTO audit_events (type, actor, user_id, site_id, session_id, detail, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
            [e.type, e.actor, e.userId, e.siteId, e.sessionId, e.detail, e.at],
          )
        )?.id,
      ),
    list: async (q) => {
      const where: string[] = []
      const params: unknown[] = []
      const add = (column: string, op: string, value: string | number | undefined) => {
        if (value === undefined) return
        params.push(value)
        where.push(`${column} ${op} $${params.length}`)
      }
      add('user_id', '=', q.userId)
      add('site_id', '=', q.siteId)
      add('type', '=', q.type)
      add('at', '>=', q.since)
      add('at', '<', q.until)
      add('id', '<', q.beforeId)
      params.push(q.limit)
      const text = `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY id DESC LIMIT $${params.length}`
      return (await rows(db, text, params)).map(toAudit)
    },
    purge: async (before) => count(db, 'DELETE FROM audit_events WHERE at < $1', [before]),
  }
}
