import type pg from 'pg'
import { LOCK_NAMESPACE, MIGRATION_LOCK } from './db.ts'

/**
 * The PostgreSQL schema as numbered steps. Each runs once, in its own transaction with its
 * row in `schema_migrations`, so a store is always at a step boundary. Never edit a step that
 * has shipped: add the next one (new columns nullable or with a default, so that an instance
 * still running the previous version keeps working beside the new one during a rolling update).
 *
 * Times are BIGINT milliseconds since the epoch, as everywhere in the store; lists are JSON text.
 */
export const migrations: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'initial schema (as SQLite schema 8)',
    sql: `
CREATE TABLE users (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE sites (
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
  one_device_per_site BOOLEAN NOT NULL,
  dpop_bound_tokens BOOLEAN NOT NULL DEFAULT FALSE,
  authkey_version INTEGER NOT NULL,
  client_secret_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE retired_sites (
  id TEXT PRIMARY KEY,
  authkey_version INTEGER NOT NULL
);
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  ended_at BIGINT,
  end_reason TEXT,
  user_agent TEXT NOT NULL,
  last_seen_at BIGINT,
  method TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_live_by_expiry ON sessions (expires_at) WHERE ended_at IS NULL;
CREATE INDEX sessions_live_by_activity ON sessions ((COALESCE(last_seen_at, created_at))) WHERE ended_at IS NULL;
CREATE TABLE site_exclusions (
  session_id TEXT NOT NULL,
  site_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY (session_id, site_id)
);
CREATE TABLE codes (
  hash TEXT PRIMARY KEY,
  site_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  code_challenge TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT
);
CREATE INDEX codes_by_expiry ON codes (expires_at);
CREATE TABLE tokens (
  jti TEXT PRIMARY KEY,
  site_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  issued_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT,
  revoke_reason TEXT,
  token_hash TEXT,
  jkt TEXT
);
CREATE INDEX tokens_live_by_user_site_expiry ON tokens (user_id, site_id, expires_at) WHERE revoked_at IS NULL;
CREATE INDEX tokens_by_expiry ON tokens (expires_at);
CREATE INDEX tokens_by_session_site ON tokens (session_id, site_id);
CREATE INDEX tokens_live_by_session ON tokens (session_id) WHERE revoked_at IS NULL;
CREATE INDEX tokens_live_by_site ON tokens (site_id) WHERE revoked_at IS NULL;
CREATE TABLE refresh_tokens (
  hash TEXT PRIMARY KEY,
  family_id TEXT NOT NULL,
  generation INTEGER NOT NULL,
  site_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  issued_at BIGINT NOT NULL,
  idle_expires_at BIGINT NOT NULL,
  absolute_expires_at BIGINT NOT NULL,
  used_at BIGINT,
  successor_hash TEXT,
  successor_sealed TEXT,
  revoked_at BIGINT,
  revoke_reason TEXT,
  jkt TEXT
);
CREATE INDEX refresh_by_family ON refresh_tokens (family_id, generation);
CREATE INDEX refresh_live_by_session ON refresh_tokens (session_id, site_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_unused_by_user_site ON refresh_tokens (user_id, site_id) WHERE revoked_at IS NULL AND used_at IS NULL;
CREATE INDEX refresh_live_by_site ON refresh_tokens (site_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_by_absolute_expiry ON refresh_tokens (absolute_expires_at);
CREATE TABLE session_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  site_id TEXT,
  reason TEXT NOT NULL,
  at BIGINT NOT NULL
);
CREATE INDEX session_events_by_session ON session_events (session_id, id);
CREATE INDEX session_events_by_time ON session_events (at);
CREATE TABLE approvals (
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
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  status TEXT NOT NULL,
  decided_at BIGINT,
  decided_by TEXT
);
CREATE INDEX approvals_pending_by_user ON approvals (user_id, expires_at) WHERE status = 'pending';
CREATE INDEX approvals_pending_by_name ON approvals (requested_for, expires_at) WHERE status = 'pending';
CREATE INDEX approvals_by_expiry ON approvals (expires_at);
CREATE TABLE secrets (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'passkeys',
    sql: `
CREATE TABLE passkeys (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  user_handle TEXT NOT NULL,
  public_key TEXT NOT NULL,
  counter BIGINT NOT NULL,
  transports TEXT NOT NULL,
  device_type TEXT NOT NULL,
  backed_up INTEGER NOT NULL,
  aaguid TEXT NOT NULL,
  name TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT,
  removed_at BIGINT
);
CREATE INDEX passkeys_by_user ON passkeys (user_id);
CREATE TABLE passkey_challenges (
  id TEXT PRIMARY KEY,
  challenge TEXT NOT NULL,
  binding_hash TEXT NOT NULL,
  purpose TEXT NOT NULL,
  user_id TEXT,
  session_id TEXT,
  user_handle TEXT,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT
);
CREATE INDEX passkey_challenges_by_expiry ON passkey_challenges (expires_at);
`,
  },
  {
    version: 3,
    name: 'one-time ids',
    sql: `
CREATE TABLE one_time_ids (
  id TEXT PRIMARY KEY,
  expires_at BIGINT NOT NULL
);
CREATE INDEX one_time_ids_by_expiry ON one_time_ids (expires_at);
`,
  },
  {
    version: 4,
    name: 'operator console: admins, disabled users, session addresses, audit log',
    sql: `
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN address TEXT;
CREATE TABLE audit_events (
  id BIGSERIAL PRIMARY KEY,
  type TEXT NOT NULL,
  actor TEXT,
  user_id TEXT,
  site_id TEXT,
  session_id TEXT,
  detail TEXT NOT NULL,
  at BIGINT NOT NULL
);
CREATE INDEX audit_by_time ON audit_events (at);
CREATE INDEX audit_by_user ON audit_events (user_id, id);
CREATE INDEX audit_by_site ON audit_events (site_id, id);
`,
  },
  {
    version: 5,
    name: 'FedCM: opt-in per site, and the links its dialog shows',
    sql: `
ALTER TABLE sites ADD COLUMN fedcm BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE sites ADD COLUMN privacy_policy_url TEXT;
ALTER TABLE sites ADD COLUMN terms_of_service_url TEXT;
`,
  },
  {
    version: 6,
    name: 'refresh families rotated in place, their credentials derived',
    sql: `
CREATE TABLE refresh_families (
  family_id TEXT PRIMARY KEY,
  site_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  jkt TEXT,
  generation INTEGER NOT NULL,
  issued_at BIGINT NOT NULL,
  idle_expires_at BIGINT NOT NULL,
  absolute_expires_at BIGINT NOT NULL,
  token_jti TEXT NOT NULL,
  token_expires_at BIGINT NOT NULL,
  revoked_at BIGINT,
  revoke_reason TEXT
) WITH (fillfactor = 50);
CREATE INDEX families_live_by_session ON refresh_families (session_id, site_id) WHERE revoked_at IS NULL;
CREATE INDEX families_live_by_user_site ON refresh_families (user_id, site_id) WHERE revoked_at IS NULL;
CREATE INDEX families_live_by_site ON refresh_families (site_id) WHERE revoked_at IS NULL;
CREATE INDEX families_by_absolute_expiry ON refresh_families (absolute_expires_at);
`,
  },
]

export const SCHEMA_VERSION = Math.max(...migrations.map((m) => m.version))

/**
 * Brings the database up to `SCHEMA_VERSION` on start. Safe when several instances start at
 * once: each takes the same session-level advisory lock first, so one migrates while the others
 * wait, then finds nothing left to do. A database migrated by a newer server is refused (its
 * schema may mean things this server does not know), as the SQLite store does.
 */
export async function migrate(client: pg.Client): Promise<void> {
  await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, MIGRATION_LOCK])
  try {
    await client.query(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version INTEGER PRIMARY KEY,
         name TEXT NOT NULL,
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
       )`,
    )
    const applied = new Set(
      (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) =>
        Number(r.version),
      ),
    )
    const newest = Math.max(0, ...applied)
    if (newest > SCHEMA_VERSION) {
      throw new Error(`store schema ${newest} is newer than this server (${SCHEMA_VERSION})`)
    }
    for (const step of migrations) {
      if (applied.has(step.version)) continue
      await client.query('BEGIN')
      try {
        await client.query(step.sql)
        await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
          step.version,
          step.name,
        ])
        await client.query('COMMIT')
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined)
        throw error
      }
    }
  } finally {
    await client
      .query('SELECT pg_advisory_unlock($1, $2)', [LOCK_NAMESPACE, MIGRATION_LOCK])
      .catch(() => undefined)
  }
}
