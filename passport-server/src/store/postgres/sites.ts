import type { SiteRepo } from '../types.ts'
import { type Db, one, rows } from './db.ts'
import { siteColumns, siteValues, toSite } from './rows.ts'

const placeholders = siteColumns.map((_, i) => `$${i + 1}`).join(', ')
const assignments = siteColumns
  .slice(1)
  .map((column, i) => `${column} = $${i + 2}`)
  .join(', ')

/**
 * Sites are read on every frame and site-backend request. Unlike the SQLite store this one
 * keeps no copy: another instance may change a site at any moment, and the change must hold
 * on the next request everywhere (a primary-key read is one short round trip).
 */
export function createSiteRepo(db: Db): SiteRepo {
  return {
    create: async (s) => {
      await db.query(`INSERT INTO sites (${siteColumns.join(', ')}) VALUES (${placeholders})`, siteValues(s))
    },
    update: async (s) => {
      await db.query(`UPDATE sites SET ${assignments} WHERE id = $1`, siteValues(s))
    },
    get: async (id) => {
      const r = await one(db, 'SELECT * FROM sites WHERE id = $1', [id])
      return r && toSite(r)
    },
    list: async () => (await rows(db, 'SELECT * FROM sites ORDER BY id')).map(toSite),
    remove: async (id) => {
      // One statement, so that it is atomic outside a transaction too: the version is retired
      // and the site removed together, or neither.
      const r = await one(
        db,
        `WITH retired AS (
           INSERT INTO retired_sites (id, authkey_version)
           SELECT id, authkey_version FROM sites WHERE id = $1
           ON CONFLICT (id) DO UPDATE
             SET authkey_version = GREATEST(retired_sites.authkey_version, excluded.authkey_version)
         ), removed AS (DELETE FROM sites WHERE id = $1 RETURNING id)
         SELECT COUNT(*) AS n FROM removed`,
        [id],
      )
      return Number(r?.n ?? 0) > 0
    },
    retiredVersion: async (id) =>
      Number(
        (await one(db, 'SELECT authkey_version FROM retired_sites WHERE id = $1', [id]))?.authkey_version ??
          0,
      ),
  }
}
