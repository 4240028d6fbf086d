import { type Row, toEvent } from '../rows.ts'
import type { EventRepo } from '../types.ts'
import { type Db, EVENT_LOG_LOCK, LOCK_NAMESPACE, one, rows } from './db.ts'

/**
 * The durable event log, read by id ("everything after N").
 *
 * A PostgreSQL sequence hands out ids in call order but transactions commit in any order: if
 * the transaction holding id 8 commits before the one holding id 7, a reader that saw 8 and
 * resumes "after 8" never sees 7. So appends are made to commit in id order: each takes a
 * transaction-scoped advisory lock (one fixed key) before it draws its id, and holds it until
 * its transaction ends (PostgreSQL releases locks only after the commit is visible). The next
 * append waits for that, so a smaller id is always visible before a larger one: what a reader
 * sees is always a prefix of the log (with gaps only where a transaction rolled back, whose
 * ids nobody will ever commit). The cost is that appends are serialised from the append to
 * the commit; they come at the end of sign-out-like transactions, which are rare and short.
 *
 * One statement, so that the lock and the insert share a transaction outside one too.
 */
const APPEND = `
  WITH ordered AS (SELECT pg_advisory_xact_lock(${LOCK_NAMESPACE}, ${EVENT_LOG_LOCK}))
  INSERT INTO session_events (type, user_id, session_id, site_id, reason, at)
  SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint FROM ordered
  RETURNING *`

export function createEventRepo(db: Db): EventRepo {
  return {
    append: async (e) =>
      toEvent((await one(db, APPEND, [e.type, e.userId, e.sessionId, e.siteId, e.reason, e.at])) as Row),
    since: async (sessionId, afterId, limit) =>
      (
        await rows(
          db,
          'SELECT * FROM session_events WHERE session_id = $1 AND id > $2 ORDER BY id LIMIT $3',
          [sessionId, afterId, limit],
        )
      ).map(toEvent),
    after: async (afterId, limit) =>
      (
        await rows(db, 'SELECT * FROM session_events WHERE id > $1 ORDER BY id LIMIT $2', [afterId, limit])
      ).map(toEvent),
    latestId: async () =>
      Number((await one(db, 'SELECT COALESCE(MAX(id), 0) AS id FROM session_events'))?.id ?? 0),
  }
}
