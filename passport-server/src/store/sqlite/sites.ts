import { toSite } from '../rows.ts'
import type { SiteRecord, SiteRepo } from '../types.ts'
import type { Caches } from './caches.ts'
import type { Row, Sql } from './connection.ts'

const siteParams = (s: SiteRecord): Row => ({
  $id: s.id,
  $name: s.name,
  $origins: JSON.stringify(s.origins),
  $redirect_uris: JSON.stringify(s.redirectUris),
  $login_modes: JSON.stringify(s.loginModes),
  $token_ttl_seconds: s.tokenTtlSeconds,
  $refresh_idle_seconds: s.refreshIdleSeconds,
  $refresh_absolute_seconds: s.refreshAbsoluteSeconds,
  $refresh_before_seconds: s.refreshBeforeSeconds,
  $backchannel_logout_uri: s.backchannelLogoutUri,
  $one_device_per_site: s.oneDevicePerSite ? 1 : 0,
  $dpop_bound_tokens: s.dpopBoundTokens ? 1 : 0,
  $fedcm: s.fedcm ? 1 : 0,
  $privacy_policy_url: s.privacyPolicyUrl ?? null,
  $terms_of_service_url: s.termsOfServiceUrl ?? null,
  $authkey_version: s.authkeyVersion,
  $client_secret_hash: s.clientSecretHash,
  $created_at: s.createdAt,
})

export function sqliteSites({ one, run, all }: Sql, caches: Caches): SiteRepo {
  return {
    create: async (s) => {
      caches.sites.forget()
      run(
        `INSERT INTO sites (id, name, origins, redirect_uris, login_modes, token_ttl_seconds,
           refresh_idle_seconds, refresh_absolute_seconds, refresh_before_seconds, backchannel_logout_uri,
           one_device_per_site, dpop_bound_tokens, fedcm, privacy_policy_url, terms_of_service_url,
           authkey_version, client_secret_hash, created_at)
         VALUES ($id, $name, $origins, $redirect_uris, $login_modes, $token_ttl_seconds,
           $refresh_idle_seconds, $refresh_absolute_seconds, $refresh_before_seconds, $backchannel_logout_uri,
           $one_device_per_site, $dpop_bound_tokens, $fedcm, $privacy_policy_url, $terms_of_service_url,
           $authkey_version, $client_secret_hash, $created_at)`,
        siteParams(s),
      )
    },
    update: async (s) => {
      caches.sites.forget()
      run(
        `UPDATE sites SET name = $name, origins = $origins, redirect_uris = $redirect_uris,
           login_modes = $login_modes, token_ttl_seconds = $token_ttl_seconds,
           refresh_idle_seconds = $refresh_idle_seconds, refresh_absolute_seconds = $refresh_absolute_seconds,
           refresh_before_seconds = $refresh_before_seconds, backchannel_logout_uri = $backchannel_logout_uri,
           one_device_per_site = $one_device_per_site, dpop_bound_tokens = $dpop_bound_tokens,
           fedcm = $fedcm, privacy_policy_url = $privacy_policy_url,
           terms_of_service_url = $terms_of_service_url, authkey_version = $authkey_version,
           client_secret_hash = $client_secret_hash, created_at = $created_at
         WHERE id = $id`,
        siteParams(s),
      )
    },
    get: async (id) =>
      caches.sites.get(id, () => {
        const r = one('SELECT * FROM sites WHERE id = ?', id)
        return r && toSite(r)
      }),
    list: async () => all('SELECT * FROM sites ORDER BY id').map(toSite),
    remove: async (id) => {
      caches.sites.forget()
      run(
        `INSERT INTO retired_sites (id, authkey_version) SELECT id, authkey_version FROM sites WHERE id = ?
         ON CONFLICT (id) DO UPDATE SET authkey_version = MAX(authkey_version, excluded.authkey_version)`,
        [id],
      )
      return run('DELETE FROM sites WHERE id = ?', [id]).changes > 0
    },
    retiredVersion: async (id) =>
      Number(one('SELECT authkey_version FROM retired_sites WHERE id = ?', id)?.authkey_version ?? 0),
  }
}
