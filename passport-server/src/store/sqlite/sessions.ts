import type { EndReason } from '../../../../passport-frame/src/protocol/codes.ts'
import { sessionRow, toSession } from '../rows.ts'
import type { SessionRepo, SiteExclusion } from '../types.ts'
import type { Sql } from './connection.ts'

export function sqliteSessions({ one, run, all, insert }: Sql): SessionRepo {
  return {
    create: async (s) => {
      insert(sessionRow(s))
    },
    get: async (id) => {
      const r = one('SELECT * FROM sessions WHERE id = ?', id)
      return r && toSession(r)
    },
    end: async (id, reason, at) =>
      run('UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL', [
        at,
        reason,
        id,
      ]).changes > 0,
    exclude: async (x: SiteExclusion) => {
      run(
        `INSERT INTO site_exclusions (session_id, site_id, reason, at) VALUES (?, ?, ?, ?)
         ON CONFLICT (session_id, site_id) DO UPDATE SET reason = excluded.reason, at = excluded.at`,
        [x.sessionId, x.siteId, x.reason, x.at],
      )
    },
    exclusion: async (sessionId, siteId) => {
      const r = one('SELECT * FROM site_exclusions WHERE session_id = ? AND site_id = ?', sessionId, siteId)
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
      run('DELETE FROM site_exclusions WHERE session_id = ? AND site_id = ?', [sessionId, siteId])
    },
    listExpired: async (now, limit, idleBefore = 0) =>
      all(
        `SELECT * FROM sessions WHERE ended_at IS NULL
           AND (expires_at <= ? OR COALESCE(last_seen_at, created_at) <= ?)
         ORDER BY expires_at LIMIT ?`,
        now,
        idleBefore,
        limit,
      ).map(toSession),
    touch: async (id, at) => {
      run('UPDATE sessions SET last_seen_at = ? WHERE id = ? AND ended_at IS NULL', [at, id])
    },
    listByUser: async (userId) =>
      all('SELECT * FROM sessions WHERE user_id = ? ORDER BY created_at DESC', userId).map(toSession),
    lastActivity: async (sessionId) => {
      const r = one('SELECT MAX(issued_at) AS at FROM tokens WHERE session_id = ?', sessionId)
      return r?.at === null || r?.at === undefined ? null : Number(r.at)
    },
    sitesOf: async (sessionId) =>
      all('SELECT DISTINCT site_id FROM tokens WHERE session_id = ? ORDER BY site_id', sessionId).map(
        (r) => r.site_id as string,
      ),
    listLive: async (now, limit) =>
      all(
        `SELECT * FROM sessions WHERE ended_at IS NULL AND expires_at > ?
         ORDER BY created_at DESC, id LIMIT ?`,
        now,
        limit,
      ).map(toSession),
  }
}
