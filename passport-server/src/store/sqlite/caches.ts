import type { DatabaseSync } from 'node:sqlite'
import type { SiteRecord, StoredToken } from '../types.ts'
import { createRowCache, watchOtherConnections } from './row-cache.ts'

/**
 * What every request reads and rarely changes, kept decoded and frozen per connection: the
 * site of every frame and site-backend request (authkey, client credentials), and the token
 * rows introspection and validity checks read again and again for the same token. Forgotten
 * on every write that could change them (sites: any site write; tokens: every revocation and
 * the purge; a new token row changes no kept one), on every rollback, and when another
 * connection has committed (see `watchOtherConnections`).
 */
export function createCaches(db: DatabaseSync) {
  const otherConnections = watchOtherConnections(db)
  const sites = createRowCache<SiteRecord>(otherConnections, 1024)
  // Bounded: when full it starts again empty (a kept row is a read saved, never an answer changed).
  const tokens = createRowCache<StoredToken>(otherConnections, 10_000)
  return {
    sites,
    tokens,
    forget: () => {
      sites.forget()
      tokens.forget()
    },
  }
}

export type Caches = ReturnType<typeof createCaches>
