import { toSite } from '../rows.ts'
import type { SiteRecord, SiteRepo } from '../types.ts'
import { type Db, one, rows } from './db.ts'

/** The columns of `sites` in order, and their values for a record. */
const siteColumns = [
  'id',
  'name',
  'origins',
  'redirect_uris',
  'login_modes',
  'token_ttl_seconds',
  'refresh_idle_seconds',
  'refresh_absolute_seconds',
  'refresh_before_seconds',
  'backchannel_logout_uri',
  'one_device_per_site',
  'dpop_bound_tokens',
  'authkey_version',
  'client_secret_hash',
  'created_at',
  'fedcm',
  'privacy_policy_url',
  'terms_of_service_url',
] as const
const siteValues = (s: SiteRecord): unknown[] => [
  s.id,
  s.name,
  JSON.stringify(s.origins),
  JSON.stringify(s.redirectUris),
  JSON.stringify(s.loginModes),
  s.tokenTtlSeconds,
  s.refreshIdleSeconds,
  s.refreshAbsoluteSeconds,
  s.refreshBeforeSeconds,
  s.backchannelLogoutUri,
  s.oneDevicePerSite,
  s.dpopBoundTokens,
  s.authkeyVersion,
  s.clientSecretHash,
  s.createdAt,
  s.fedcm === true,
  s.privacyPolicyUrl ?? null,
  s.termsOfServiceUrl ?? null,
]

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
