import { passkeysSchemaSql } from './passkeys.ts'

/** Schema of the embedded store. `PRAGMA user_version` numbers it for later migrations. */
export const SCHEMA_VERSION = 8

export const schemaSql = `
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  is_admin INTEGER NOT NULL DEFAULT 0,
  disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sites (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  origins TEXT NOT NULL,
  redirect_uris TEXT NOT NULL,
  login_modes TEXT NOT NULL,
  token_ttl_seconds INTEGER NOT NULL,
  refresh_idle_seconds INTEGER NOT NULL DEFAULT 86400,
  refresh_absolute_seconds INTEGER NOT NULL DEFAULT 2592000,
  refresh_before_seconds INTEGER NOT NULL DEFAULT 300,
  backchannel_logout_uri TEXT,
  one_device_per_site INTEGER NOT NULL,
  dpop_bound_tokens INTEGER NOT NULL DEFAULT 0,
  fedcm INTEGER NOT NULL DEFAULT 0,
  privacy_policy_url TEXT,
  terms_of_service_url TEXT,
  authkey_version INTEGER NOT NULL,
  client_secret_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  ended_at INTEGER,
  end_reason TEXT,
  user_agent TEXT NOT NULL,
  last_seen_at INTEGER,
  method TEXT,
  address TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id);
CREATE TABLE IF NOT EXISTS site_exclusions (
  session_id TEXT NOT NULL,
  site_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (session_id, site_id)
);
CREATE TABLE IF NOT EXISTS codes (
  hash TEXT PRIMARY KEY,
  site_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  code_challenge TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
);
CREATE TABLE IF NOT EXISTS tokens (
  jti TEXT PRIMARY KEY,
  site_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER,
  revoke_reason TEXT,
  token_hash TEXT,
  jkt TEXT
);
CREATE INDEX IF NOT EXISTS tokens_live_by_user_site_expiry ON tokens (user_id, site_id, expires_at) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at);
CREATE INDEX IF NOT EXISTS tokens_by_session_site ON tokens (session_id, site_id);
CREATE INDEX IF NOT EXISTS tokens_live_by_session ON tokens (session_id) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS refresh_tokens (
  hash TEXT PRIMARY KEY,
  family_id TEXT NOT NULL,
  generation INTEGER NOT NULL,
  site_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  idle_expires_at INTEGER NOT NULL,
  absolute_expires_at INTEGER NOT NULL,
  used_at INTEGER,
  successor_hash TEXT,
  successor_sealed TEXT,
  revoked_at INTEGER,
  revoke_reason TEXT,
  jkt TEXT
);
CREATE INDEX IF NOT EXISTS refresh_by_family ON refresh_tokens (family_id);
CREATE INDEX IF NOT EXISTS refresh_live_by_session ON refresh_tokens (session_id, site_id) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS refresh_unused_by_user_site ON refresh_tokens (user_id, site_id) WHERE revoked_at IS NULL AND used_at IS NULL;
CREATE INDEX IF NOT EXISTS refresh_by_absolute_expiry ON refresh_tokens (absolute_expires_at);
-- Refresh families rotated in place (issue 15): one row per family, its credentials derived.
-- A new table only: older servers never read it, so no version bump.
CREATE TABLE IF NOT EXISTS refresh_families (
  family_id TEXT PRIMARY KEY,
  site_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  jkt TEXT,
  generation INTEGER NOT NULL,
  issued_at INTEGER NOT NULL,
  idle_expires_at INTEGER NOT NULL,
  absolute_expires_at INTEGER NOT NULL,
  token_jti TEXT NOT NULL,
  token_expires_at INTEGER NOT NULL,
  revoked_at INTEGER,
  revoke_reason TEXT
);
CREATE INDEX IF NOT EXISTS families_live_by_session ON refresh_families (session_id, site_id) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS families_live_by_user_site ON refresh_families (user_id, site_id) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS families_live_by_site ON refresh_families (site_id) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS families_by_absolute_expiry ON refresh_families (absolute_expires_at);
CREATE TABLE IF NOT EXISTS session_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  type TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  site_id TEXT,
  reason TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS session_events_by_session ON session_events (session_id, id);
CREATE INDEX IF NOT EXISTS sessions_live_by_expiry ON sessions (expires_at) WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS sessions_live_by_activity ON sessions (COALESCE(last_seen_at, created_at)) WHERE ended_at IS NULL;
CREATE TABLE IF NOT EXISTS approvals (
  id TEXT PRIMARY KEY,
  secret_hash TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  user_id TEXT,
  requested_for TEXT NOT NULL,
  site_id TEXT NOT NULL,
  code TEXT NOT NULL,
  user_agent TEXT NOT NULL,
  address TEXT NOT NULL,
  context TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  status TEXT NOT NULL,
  decided_at INTEGER,
  decided_by TEXT
);
CREATE INDEX IF NOT EXISTS approvals_pending_by_user ON approvals (user_id, expires_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS approvals_pending_by_name ON approvals (requested_for, expires_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS retired_sites (
  id TEXT PRIMARY KEY,
  authkey_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  type TEXT NOT NULL,
  actor TEXT,
  user_id TEXT,
  site_id TEXT,
  session_id TEXT,
  detail TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_events (at);
CREATE INDEX IF NOT EXISTS audit_by_user ON audit_events (user_id, id);
CREATE INDEX IF NOT EXISTS audit_by_site ON audit_events (site_id, id);
-- Live-channel tickets of older versions: the frame now proves its key on the socket itself.
DROP TABLE IF EXISTS live_tickets;
-- One-time ids (issue 16: sealed-payload keys, SCRAM sign-in tickets), kept until they expire.
-- A new table only: older servers never read it, so no version bump (they still open the store).
CREATE TABLE IF NOT EXISTS one_time_ids (
  id TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS one_time_ids_by_expiry ON one_time_ids (expires_at);
${passkeysSchemaSql}`

/**
 * What later versions added to tables that already existed, so that a store created by an
 * older server is brought up to date: each column is added if its table lacks it (idempotent,
 * whatever version the store says: it is checked on every open). New tables and indexes come
 * from `schemaSql` itself.
 *
 * A column that every server may leave NULL (`tokens.token_hash`) needs no new version: a
 * server that does not know it still opens the store and writes rows without it, and this
 * server treats such rows as it did before the column existed.
 */
export const addedColumns: { table: string; column: string; definition: string }[] = [
  { table: 'sites', column: 'refresh_idle_seconds', definition: 'INTEGER NOT NULL DEFAULT 86400' },
  { table: 'sites', column: 'refresh_absolute_seconds', definition: 'INTEGER NOT NULL DEFAULT 2592000' },
  { table: 'sites', column: 'refresh_before_seconds', definition: 'INTEGER NOT NULL DEFAULT 300' },
  { table: 'sites', column: 'backchannel_logout_uri', definition: 'TEXT' },
  { table: 'sessions', column: 'last_seen_at', definition: 'INTEGER' },
  { table: 'sessions', column: 'method', definition: 'TEXT' },
  // SHA-256 of the exact token minted for the row: checking a token then needs no signature check.
  { table: 'tokens', column: 'token_hash', definition: 'TEXT' },
  // The frame key (DPoP thumbprint) a token and a refresh family are bound to. Rows without one
  // (minted before frame keys) open nothing at the frame's API: their devices sign in again.
  { table: 'tokens', column: 'jkt', definition: 'TEXT' },
  { table: 'refresh_tokens', column: 'jkt', definition: 'TEXT' },
  { table: 'sites', column: 'dpop_bound_tokens', definition: 'INTEGER NOT NULL DEFAULT 0' },
  // The operator console: who may use it, who may not sign in at all, where a session signed in.
  { table: 'users', column: 'is_admin', definition: 'INTEGER NOT NULL DEFAULT 0' },
  { table: 'users', column: 'disabled', definition: 'INTEGER NOT NULL DEFAULT 0' },
  { table: 'sessions', column: 'address', definition: 'TEXT' },
  // FedCM (docs/fedcm.md): opt-in per site, and the links its dialog shows.
  { table: 'sites', column: 'fedcm', definition: 'INTEGER NOT NULL DEFAULT 0' },
  { table: 'sites', column: 'privacy_policy_url', definition: 'TEXT' },
  { table: 'sites', column: 'terms_of_service_url', definition: 'TEXT' },
]

/**
 * Tables dropped when a store older than `before` is opened, then made anew by `schemaSql`.
 * Only for short-lived rows: approvals live two minutes, and schema 8 dropped the columns of
 * picking from three numbers (`choices`, `wrong_picks`, NOT NULL without a default, so a
 * newer server could not insert beside them). A request open during the upgrade is gone: its
 * new browser is told so and asks again.
 */
export const recreatedTables = [{ table: 'approvals', before: 8 }]

/** Indexes of older versions that newer queries no longer use. */
export const droppedIndexes = ['tokens_live_by_user_site', 'refresh_live_by_user_site']
