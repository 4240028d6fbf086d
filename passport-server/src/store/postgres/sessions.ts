import type { EndReason } from '../../../../passport-frame/src/protocol/codes.ts'
import { sessionRow, toSession } from '../rows.ts'
import type { SessionRepo } from '../types.ts'
import { count, type Db, insert, one, rows } from './db.ts'

export function createSessionRepo(db: Db): SessionRepo {
  return {
    listLive: async (now, limit) =>
      (
        await rows(
          db,
          'SELECT * FROM sessions WHERE ended_at IS NULL AND expires_at > $1 ORDER BY created_at DESC, id LIMIT $2',
          [now, limit],
        )
      ).map(toSession),
    create: async (s) => {
      await insert(db, sessionRow(s))
    },
    get: async (id) => {
      const r = await one(db, 'SELECT * FROM sessions WHERE id = $1', [id])
      return r && toSession(r)
    },
    end: async (id, reason, at) =>
      (await count(
        db,
        'UPDATE sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL',
        [at, reason, id],
      )) > 0,
    exclude: async (x) => {
      await db.query(
        `INSERT INTO site_exclusions (session_id, site_id, reason, at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (session_id, site_id) DO UPDATE SET reason = excluded.reason, at = excluded.at`,
        [x.sessionId, x.siteId, x.reason, x.at],
      )
    },
    exclusion: async (sessionId, siteId) => {
      const r = await one(db, 'SELECT * FROM site_exclusions WHERE session_id = $1 AND site_id = $2', [
        sessionId,
        siteId,
      ])
      return (
        r && {
          sessionId: r.session_id as string,
          siteId: r.site_id as string,
          reason: r.reason as EndReason,
          at: Number(r.at),
        }
      )
    },
    clearExclusion: async (sessionId, siteId) => {
      await db.query('DELETE FROM site_exclusions WHERE session_id = $1 AND site_id = $2', [
        sessionId,
        siteId,
      ])
    },
    listExpired: async (now, limit, idleBefore = 0) =>
      (
        await rows(
          db,
          `SELECT * FROM sessions WHERE ended_at IS NULL
             AND (expires_at <= $1 OR COALESCE(last_seen_at, created_at) <= $2)
           ORDER BY expires_at LIMIT $3`,
          [now, idleBefore, limit],
        )
      ).map(toSession),
    touch: async (id, at) => {
      await db.query('UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND ended_at IS NULL', [at, id])
    },
    listByUser: async (userId) =>
      (await rows(db, 'SELECT * FROM sessions WHERE user_id = $1 ORDER BY created_at DESC', [userId])).map(
        toSession,
      ),
    sitesOf: async (sessionId) =>
      (
        await rows(db, 'SELECT DISTINCT site_id FROM tokens WHERE session_id = $1 ORDER BY site_id', [
          sessionId,
        ])
      ).map((r) => r.site_id as string),
    lastActivity: async (sessionId) => {
      const r = await one(db, 'SELECT MAX(issued_at) AS at FROM tokens WHERE session_id = $1', [sessionId])
      return r?.at === null || r?.at === undefined ? null : Number(r.at)
    },
  }
}
