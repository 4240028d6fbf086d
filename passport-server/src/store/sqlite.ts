import fs from 'node:fs'
import path from 'node:path'
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import type { EndReason } from '../../../passport-frame/src/protocol/codes.ts'
import { StoreUnavailableError } from '../errors.ts'
import { createRowCache, watchOtherConnections } from './row-cache.ts'
import { createSqliteQueue } from './sqlite-queue.ts'
import { addedColumns, droppedIndexes, recreatedTables, SCHEMA_VERSION, schemaSql } from './sqlite-schema.ts'
import type {
  ApprovalRecord,
  CodeRecord,
  RefreshRecord,
  SessionEventRecord,
  SessionRecord,
  SignInMethod,
  SiteExclusion,
  SiteRecord,
  Store,
  StoredToken,
  StoreTx,
  TokenRecord,
  UserRecord,
} from './types.ts'

type Row = Record<string, SQLInputValue>

// SQLite primary result codes that mean "cannot reach the data" rather than "bad query".
const UNAVAILABLE_CODES = new Set([5, 6, 8, 10, 11, 13, 14, 26]) // BUSY LOCKED READONLY IOERR CORRUPT FULL CANTOPEN NOTADB

function translateError(err: unknown): unknown {
  const e = err as { code?: string; errcode?: number }
  if (e?.code === 'ERR_INVALID_STATE') return new StoreUnavailableError(err)
  if (e?.code === 'ERR_SQLITE_ERROR' && UNAVAILABLE_CODES.has((e.errcode ?? 0) & 0xff)) {
    return new StoreUnavailableError(err)
  }
  return err
}

const toSite = (r: Row): SiteRecord => ({
  id: r.id as string,
  name: r.name as string,
  origins: JSON.parse(r.origins as string),
  redirectUris: JSON.parse(r.redirect_uris as string),
  loginModes: JSON.parse(r.login_modes as string),
  tokenTtlSeconds: Number(r.token_ttl_seconds),
  refreshIdleSeconds: Number(r.refresh_idle_seconds),
  refreshAbsoluteSeconds: Number(r.refresh_absolute_seconds),
  refreshBeforeSeconds: Number(r.refresh_before_seconds),
  backchannelLogoutUri: (r.backchannel_logout_uri as string | null) ?? null,
  oneDevicePerSite: r.one_device_per_site === 1,
  dpopBoundTokens: r.dpop_bound_tokens === 1,
  // The FedCM fields only where set: a record of a site without them reads as before.
  ...(r.fedcm === 1 ? { fedcm: true } : {}),
  ...(r.privacy_policy_url ? { privacyPolicyUrl: r.privacy_policy_url as string } : {}),
  ...(r.terms_of_service_url ? { termsOfServiceUrl: r.terms_of_service_url as string } : {}),
  authkeyVersion: Number(r.authkey_version),
  clientSecretHash: r.client_secret_hash as string,
  createdAt: Number(r.created_at),
})
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
const toUser = (r: Row): UserRecord => ({
  id: r.id as string,
  username: r.username as string,
  name: r.name as string,
  passwordHash: r.password_hash as string,
  createdAt: Number(r.created_at),
})
const toSession = (r: Row): SessionRecord => ({
  id: r.id as string,
  userId: r.user_id as string,
  createdAt: Number(r.created_at),
  expiresAt: Number(r.expires_at),
  endedAt: r.ended_at === null ? null : Number(r.ended_at),
  endReason: (r.end_reason as EndReason | null) ?? null,
  userAgent: r.user_agent as string,
  ...(r.last_seen_at === null || r.last_seen_at === undefined ? {} : { lastSeenAt: Number(r.last_seen_at) }),
  ...(r.method ? { method: r.method as SignInMethod } : {}),
})
const toApproval = (r: Row): ApprovalRecord => ({
  id: r.id as string,
  secretHash: r.secret_hash as string,
  kind: r.kind as ApprovalRecord['kind'],
  userId: (r.user_id as string | null) ?? null,
  requestedFor: r.requested_for as string,
  siteId: r.site_id as string,
  code: r.code as string,
  userAgent: r.user_agent as string,
  address: r.address as string,
  context: r.context as string,
  createdAt: Number(r.created_at),
  expiresAt: Number(r.expires_at),
  status: r.status as ApprovalRecord['status'],
  decidedAt: r.decided_at === null ? null : Number(r.decided_at),
  decidedBy: (r.decided_by as string | null) ?? null,
})
const toCode = (r: Row): CodeRecord => ({
  hash: r.hash as string,
  siteId: r.site_id as string,
  userId: r.user_id as string,
  sessionId: r.session_id as string,
  redirectUri: r.redirect_uri as string,
  codeChallenge: r.code_challenge as string,
  expiresAt: Number(r.expires_at),
  usedAt: r.used_at === null ? null : Number(r.used_at),
})
const toRefresh = (r: Row): RefreshRecord => ({
  hash: r.hash as string,
  familyId: r.family_id as string,
  generation: Number(r.generation),
  siteId: r.site_id as string,
  userId: r.user_id as string,
  sessionId: r.session_id as string,
  issuedAt: Number(r.issued_at),
  idleExpiresAt: Number(r.idle_expires_at),
  absoluteExpiresAt: Number(r.absolute_expires_at),
  usedAt: r.used_at === null ? null : Number(r.used_at),
  successorHash: (r.successor_hash as string | null) ?? null,
  successorSealed: (r.successor_sealed as string | null) ?? null,
  revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  revokeReason: (r.revoke_reason as EndReason | null) ?? null,
  jkt: (r.jkt as string | null) ?? null,
})
const toEvent = (r: Row): SessionEventRecord => ({
  id: Number(r.id),
  type: r.type as SessionEventRecord['type'],
  userId: r.user_id as string,
  sessionId: r.session_id as string,
  siteId: (r.site_id as string | null) ?? null,
  reason: r.reason as EndReason,
  at: Number(r.at),
})
const toToken = (r: Row): TokenRecord => ({
  jti: r.jti as string,
  siteId: r.site_id as string,
  userId: r.user_id as string,
  sessionId: r.session_id as string,
  issuedAt: Number(r.issued_at),
  expiresAt: Number(r.expires_at),
  revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  revokeReason: (r.revoke_reason as EndReason | null) ?? null,
  jkt: (r.jkt as string | null) ?? null,
})

/**
 * What every request reads and rarely changes, kept decoded and frozen per connection: the
 * site of every frame and site-backend request (authkey, client credentials), and the token
 * rows introspection and validity checks read again and again for the same token. Forgotten
 * on every write that could change them (sites: any site write; tokens: every revocation and
 * the purge; a new token row changes no kept one), on every rollback, and when another
 * connection has committed (see `watchOtherConnections`).
 */
function createCaches(db: DatabaseSync) {
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

type Caches = ReturnType<typeof createCaches>

/** Shared between requests, so nobody may change it. */
const frozenSite = (s: SiteRecord): SiteRecord => {
  for (const list of [s.origins, s.redirectUris, s.loginModes]) Object.freeze(list)
  return Object.freeze(s)
}
const frozenToken = (t: StoredToken): StoredToken => {
  Object.freeze(t.record)
  if (t.holder) Object.freeze(t.holder)
  return Object.freeze(t)
}

/** Repositories bound to one connection; every method runs synchronously under the hood. */
function createRepos(db: DatabaseSync, caches: Caches): StoreTx {
  // Prepared once per distinct statement: preparing costs more than most of these queries.
  const statements = new Map<string, StatementSync>()
  const stmt = (sql: string): StatementSync => {
    let s = statements.get(sql)
    if (!s) {
      s = db.prepare(sql)
      statements.set(sql, s)
    }
    return s
  }
  const one = (sql: string, ...params: SQLInputValue[]): Row | null =>
    (stmt(sql).get(...params) as Row | undefined) ?? null
  const run = (sql: string, params: Row | SQLInputValue[] = []) =>
    Array.isArray(params) ? stmt(sql).run(...params) : stmt(sql).run(params)
  const all = (sql: string, ...params: SQLInputValue[]): Row[] => stmt(sql).all(...params) as Row[]
  /** Every statement that revokes tokens goes through here: kept token rows are then stale. */
  const revokeTokens = (sql: string, ...params: SQLInputValue[]): Row[] => {
    caches.tokens.forget()
    return all(sql, ...params)
  }
  /** Revokes the live refresh credentials matching `where`; a revoked one keeps no sealed answer. */
  const revokeRefresh = (where: string, params: SQLInputValue[], at: number, reason: EndReason): number =>
    Number(
      run(
        `UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ?, successor_sealed = NULL
         WHERE ${where} AND revoked_at IS NULL`,
        [at, reason, ...params],
      ).changes,
    )

  return {
    users: {
      setPasswordHash: async (id, passwordHash) => {
        run('UPDATE users SET password_hash = ? WHERE id = ?', [passwordHash, id])
      },
      create: async (u) => {
        run('INSERT INTO users (id, username, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)', [
          u.id,
          u.username,
          u.name,
          u.passwordHash,
          u.createdAt,
        ])
      },
      findById: async (id) => {
        const r = one('SELECT * FROM users WHERE id = ?', id)
        return r && toUser(r)
      },
      findByUsername: async (username) => {
        const r = one('SELECT * FROM users WHERE username = ?', username)
        return r && toUser(r)
      },
    },
    sites: {
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
          return r && frozenSite(toSite(r))
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
    },
    sessions: {
      create: async (s) => {
        run(
          `INSERT INTO sessions (id, user_id, created_at, expires_at, ended_at, end_reason, user_agent, method)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          [s.id, s.userId, s.createdAt, s.expiresAt, s.endedAt, s.endReason, s.userAgent, s.method ?? null],
        )
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
    },
    events: {
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
    },
    approvals: {
      create: async (a) => {
        run(
          `INSERT INTO approvals (id, secret_hash, kind, user_id, requested_for, site_id, code, user_agent, address, context, created_at, expires_at, status, decided_at, decided_by)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            a.id,
            a.secretHash,
            a.kind,
            a.userId,
            a.requestedFor,
            a.siteId,
            a.code,
            a.userAgent,
            a.address,
            a.context,
            a.createdAt,
            a.expiresAt,
            a.status,
            a.decidedAt,
            a.decidedBy,
          ],
        )
      },
      get: async (id) => {
        const r = one('SELECT * FROM approvals WHERE id = ?', id)
        return r && toApproval(r)
      },
      getBySecretHash: async (secretHash) => {
        const r = one('SELECT * FROM approvals WHERE secret_hash = ?', secretHash)
        return r && toApproval(r)
      },
      listPending: async (userId, now) =>
        all(
          `SELECT * FROM approvals WHERE user_id = ? AND status = 'pending' AND expires_at > ?
           ORDER BY created_at, id`,
          userId,
          now,
        ).map(toApproval),
      countPending: async (requestedFor, now) =>
        Number(
          (
            one(
              `SELECT COUNT(*) AS n FROM approvals WHERE requested_for = ? AND status = 'pending' AND expires_at > ?`,
              requestedFor,
              now,
            ) as Row
          ).n,
        ),
      decide: async (id, status, at, decidedBy) => {
        const r = one(
          `UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?
           WHERE id = ? AND status = 'pending' AND expires_at > ? RETURNING *`,
          status,
          at,
          decidedBy,
          id,
          at,
        )
        return r && toApproval(r)
      },
      expireDue: async (now, limit) =>
        all(
          `UPDATE approvals SET status = 'expired', decided_at = expires_at
           WHERE id IN (SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= ? LIMIT ?)
           RETURNING *`,
          now,
          limit,
        ).map(toApproval),
      markUsed: async (id, approvedSince) => {
        const r = one(
          `UPDATE approvals SET status = 'used' WHERE id = ? AND status = 'approved' AND decided_at >= ? RETURNING *`,
          id,
          approvedSince,
        )
        return r && toApproval(r)
      },
    },
    codes: {
      create: async (c) => {
        run(
          `INSERT INTO codes (hash, site_id, user_id, session_id, redirect_uri, code_challenge, expires_at, used_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          [c.hash, c.siteId, c.userId, c.sessionId, c.redirectUri, c.codeChallenge, c.expiresAt, c.usedAt],
        )
      },
      consume: async (hash, at) => {
        const r = one('UPDATE codes SET used_at = ? WHERE hash = ? AND used_at IS NULL RETURNING *', at, hash)
        return r && toCode(r)
      },
    },
    tokens: {
      create: async (t, tokenHash = null) => {
        run(
          `INSERT INTO tokens (jti, site_id, user_id, session_id, issued_at, expires_at, revoked_at, revoke_reason,
             token_hash, jkt)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            t.jti,
            t.siteId,
            t.userId,
            t.sessionId,
            t.issuedAt,
            t.expiresAt,
            t.revokedAt,
            t.revokeReason,
            tokenHash,
            t.jkt,
          ],
        )
      },
      get: async (jti) => {
        const r = one('SELECT * FROM tokens WHERE jti = ?', jti)
        return r && toToken(r)
      },
      getWithHash: async (jti) =>
        caches.tokens.get(jti, () => {
          // One statement for the token and its holder: introspection needs both on every call.
          const r = one(
            `SELECT tokens.*, users.username AS holder_username, users.name AS holder_name
             FROM tokens LEFT JOIN users ON users.id = tokens.user_id WHERE tokens.jti = ?`,
            jti,
          )
          if (!r) return null
          const holder =
            r.holder_username === null
              ? null
              : {
                  id: r.user_id as string,
                  username: r.holder_username as string,
                  name: r.holder_name as string,
                }
          return frozenToken({
            record: toToken(r),
            tokenHash: (r.token_hash as string | null) ?? null,
            holder,
          })
        }),
      revokeOtherDevices: async (userId, siteId, keepSessionId, at, reason) =>
        revokeTokens(
          `UPDATE tokens SET revoked_at = ?, revoke_reason = ?
           WHERE user_id = ? AND site_id = ? AND expires_at > ? AND session_id <> ? AND revoked_at IS NULL
           RETURNING *`,
          at,
          reason,
          userId,
          siteId,
          at,
          keepSessionId,
        ).map(toToken),
      revokeSession: async (sessionId, at, reason) =>
        revokeTokens(
          `UPDATE tokens SET revoked_at = ?, revoke_reason = ?
           WHERE session_id = ? AND revoked_at IS NULL RETURNING *`,
          at,
          reason,
          sessionId,
        ).map(toToken),
      revokeSessionSite: async (sessionId, siteId, at, reason) =>
        revokeTokens(
          `UPDATE tokens SET revoked_at = ?, revoke_reason = ?
           WHERE session_id = ? AND site_id = ? AND revoked_at IS NULL RETURNING *`,
          at,
          reason,
          sessionId,
          siteId,
        ).map(toToken),
      revokeSite: async (siteId, at, reason) =>
        revokeTokens(
          `UPDATE tokens SET revoked_at = ?, revoke_reason = ?
           WHERE site_id = ? AND revoked_at IS NULL AND expires_at > ? RETURNING *`,
          at,
          reason,
          siteId,
          at,
        ).map(toToken),
    },
    refresh: {
      create: async (t) => {
        run(
          `INSERT INTO refresh_tokens (hash, family_id, generation, site_id, user_id, session_id, issued_at,
             idle_expires_at, absolute_expires_at, used_at, successor_hash, successor_sealed, revoked_at, revoke_reason,
             jkt)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            t.hash,
            t.familyId,
            t.generation,
            t.siteId,
            t.userId,
            t.sessionId,
            t.issuedAt,
            t.idleExpiresAt,
            t.absoluteExpiresAt,
            t.usedAt,
            t.successorHash,
            t.successorSealed,
            t.revokedAt,
            t.revokeReason,
            t.jkt,
          ],
        )
      },
      get: async (hash) => {
        const r = one('SELECT * FROM refresh_tokens WHERE hash = ?', hash)
        return r && toRefresh(r)
      },
      head: async (familyId) => {
        const r = one(
          'SELECT * FROM refresh_tokens WHERE family_id = ? ORDER BY generation DESC LIMIT 1',
          familyId,
        )
        return r && r.used_at === null && r.revoked_at === null ? toRefresh(r) : null
      },
      markRotated: async (hash, at, successorHash, sealed) =>
        run(
          `UPDATE refresh_tokens SET used_at = ?, successor_hash = ?, successor_sealed = ?
           WHERE hash = ? AND used_at IS NULL AND revoked_at IS NULL`,
          [at, successorHash, sealed, hash],
        ).changes > 0,
      revokeFamily: async (familyId, at, reason) => revokeRefresh('family_id = ?', [familyId], at, reason),
      revokeSession: async (sessionId, at, reason) =>
        revokeRefresh('session_id = ?', [sessionId], at, reason),
      revokeSessionSite: async (sessionId, siteId, at, reason) =>
        revokeRefresh('session_id = ? AND site_id = ?', [sessionId, siteId], at, reason),
      revokeSite: async (siteId, at, reason) =>
        all(
          `UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ?, successor_sealed = NULL
           WHERE site_id = ? AND revoked_at IS NULL RETURNING session_id, user_id`,
          at,
          reason,
          siteId,
        ).map((r) => ({ sessionId: r.session_id as string, userId: r.user_id as string })),
      revokeOtherDevices: async (userId, siteId, keepSessionId, at, reason) => [
        ...new Set(
          all(
            `UPDATE refresh_tokens SET revoked_at = ?, revoke_reason = ?, successor_sealed = NULL
             WHERE user_id = ? AND site_id = ? AND session_id <> ? AND revoked_at IS NULL AND used_at IS NULL
             RETURNING session_id`,
            at,
            reason,
            userId,
            siteId,
            keepSessionId,
          ).map((r) => r.session_id as string),
        ),
      ],
    },
    maintenance: {
      purge: async (now) => {
        caches.tokens.forget()
        const dayAgo = now - 86_400_000
        const weekAgo = now - 7 * 86_400_000
        let removed = 0
        for (const [sql, params] of [
          ['DELETE FROM tokens WHERE expires_at < ?', [dayAgo]],
          [
            `DELETE FROM refresh_tokens WHERE absolute_expires_at < ? OR idle_expires_at < ?
               OR used_at < ? OR revoked_at < ?`,
            [dayAgo, dayAgo, dayAgo, dayAgo],
          ],
          ['DELETE FROM codes WHERE expires_at < ?', [dayAgo]],
          ['DELETE FROM approvals WHERE expires_at < ?', [dayAgo]],
          ['DELETE FROM session_events WHERE at < ?', [weekAgo]],
        ] as const) {
          removed += Number(run(sql, [...params]).changes)
        }
        return removed
      },
    },
    secrets: {
      get: async (name) => {
        const r = one('SELECT value FROM secrets WHERE name = ?', name)
        return r ? (r.value as string) : null
      },
      putIfAbsent: async (name, value) => {
        run('INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING', [name, value])
        return (one('SELECT value FROM secrets WHERE name = ?', name) as Row).value as string
      },
      put: async (name, value) => {
        run(
          'INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
          [name, value],
        )
      },
    },
  }
}

/** Wraps every async method of every repo so it runs through `guard`. */
function wrapRepos(repos: StoreTx, guard: <T>(fn: () => Promise<T>) => Promise<T>): StoreTx {
  const wrapped: Record<string, Record<string, unknown>> = {}
  for (const [repoName, repo] of Object.entries(repos)) {
    const methods: Record<string, unknown> = {}
    for (const [name, fn] of Object.entries(repo as Record<string, (...a: unknown[]) => Promise<unknown>>)) {
      methods[name] = (...args: unknown[]) => guard(() => fn(...args))
    }
    wrapped[repoName] = methods
  }
  return wrapped as unknown as StoreTx
}

/**
 * The embedded store: one SQLite file (created on first use), or `:memory:` for tests.
 *
 * One connection serves the process, so work is serialised through a queue that also commits
 * concurrent transactions together (see `createSqliteQueue`): a statement issued by another
 * request while a transaction awaits would otherwise run inside it.
 */
export function openSqliteStore(file: string): Store {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true })
  const db = new DatabaseSync(file)
  db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 2000; PRAGMA synchronous = NORMAL;')
  // Checkpoint the WAL every 10,000 pages (~40 MiB) instead of SQLite's 1,000. A refresh commits
  // ~19 pages, mostly the same tail pages of tables and indexes again and again: a checkpoint
  // copies each page once however often it was committed, and syncs the WAL and the file once.
  // Measured on the refresh path: ~10 % less CPU and ~20 % more refreshes per second. With
  // synchronous = NORMAL only a checkpoint syncs the WAL; what a power loss can take is bounded
  // as before by the OS writing it back (about 30 s with Linux defaults, whatever the setting).
  // Only under heavy traffic, where checkpoints come often, does the unsynced stretch grow,
  // from tens to hundreds of milliseconds of commits; each checkpoint pauses longer, less often.
  db.exec('PRAGMA wal_autocheckpoint = 10000')
  const version = Number((db.prepare('PRAGMA user_version').get() as Row).user_version)
  if (version > SCHEMA_VERSION)
    throw new Error(`store schema ${version} is newer than this server (${SCHEMA_VERSION})`)
  // A store from an older server is brought up to date, in one transaction. Columns are checked
  // whatever the version says (see `addedColumns`); the write lock is taken only when needed.
  const missingColumns = () =>
    addedColumns.filter(({ table, column }) => {
      const columns = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]
      return columns.length > 0 && !columns.some((c) => c.name === column)
    })
  if (version > 0 && (version < SCHEMA_VERSION || missingColumns().length > 0)) {
    db.exec('BEGIN IMMEDIATE')
    // Checked again under the lock: another process may have added them meanwhile.
    for (const { table, column, definition } of missingColumns()) {
      db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`)
    }
    if (version < SCHEMA_VERSION) for (const index of droppedIndexes) db.exec(`DROP INDEX IF EXISTS ${index}`)
    for (const { table, before } of recreatedTables)
      if (version < before) db.exec(`DROP TABLE IF EXISTS ${table}`)
    db.exec('COMMIT')
  }
  db.exec(schemaSql)
  db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)

  const caches = createCaches(db)
  const raw = createRepos(db, caches)
  // A rolled-back piece may have read rows it had itself written, now undone.
  const queue = createSqliteQueue(db, { translateError, onRollback: caches.forget })
  return {
    ...wrapRepos(raw, queue.call),
    transaction: (fn) => queue.transaction(() => fn(raw)),
    close: async () => {
      await queue.idle()
      db.close()
    },
  }
}
