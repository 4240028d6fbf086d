import { toEvent } from '../rows.ts'
import type { EventRepo } from '../types.ts'
import type { Row, Sql } from './connection.ts'

export function sqliteEvents({ one, all }: Sql): EventRepo {
  return {
    append: async (e) => {
      const r = one(
        `INSERT INTO session_events (type, user_id, session_id, site_id, reason, at)
         VALUES (?, ?, ?, ?, ?, ?) RETURNING *`,
        e.type,
        e.userId,
        e.sessionId,
        e.siteId,
        e.reason,
        e.at,
      ) as Row
      return toEvent(r)
    },
    since: async (sessionId, afterId, limit) =>
      all(
        'SELECT * FROM session_events WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?',
        sessionId,
        afterId,
        limit,
      ).map(toEvent),
    after: async (afterId, limit) =>
      all('SELECT * FROM session_events WHERE id > ? ORDER BY id LIMIT ?', afterId, limit).map(toEvent),
    latestId: async () => Number((one('SELECT COALESCE(MAX(id), 0) AS id FROM session_events') as Row).id),
  }
}
