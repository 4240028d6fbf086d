import type { SQLInputValue } from 'node:sqlite'
import { toAudit } from '../rows.ts'
import type { AuditRepo } from '../types.ts'
import type { Row, Sql } from './connection.ts'

/** The audit log: append-only rows, read newest first with optional filters, purged by age. */
export function sqliteAudit({ one, run, all }: Sql): AuditRepo {
  return {
    append: async (e) =>
      Number(
        (
          one(
            `INSERT INTO audit_events (type, actor, user_id, site_id, session_id, detail, at)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
            e.type,
            e.actor,
            e.userId,
            e.siteId,
            e.sessionId,
            e.detail,
            e.at,
          ) as Row
        ).id,
      ),
    list: async (q) => {
      const where: string[] = []
      const params: SQLInputValue[] = []
      const add = (clause: string, value: SQLInputValue | undefined) => {
        if (value === undefined) return
        where.push(clause)
        params.push(value)
      }
      add('user_id = ?', q.userId)
      add('site_id = ?', q.siteId)
      add('type = ?', q.type)
      add('at >= ?', q.since)
      add('at < ?', q.until)
      add('id < ?', q.beforeId)
      const sql = `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY id DESC LIMIT ?`
      return all(sql, ...params, q.limit).map(toAudit)
    },
    purge: async (before) => Number(run('DELETE FROM audit_events WHERE at < ?', [before]).changes),
  }
}
