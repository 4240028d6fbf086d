import type { EndReason } from '../../../passport-frame/src/protocol/codes.ts'
import type {
  ApprovalRecord,
  AuditRecord,
  CodeRecord,
  PasskeyChallengeRecord,
  PasskeyRecord,
  RefreshFamilyRecord,
  RefreshRecord,
  SessionEventRecord,
  SessionRecord,
  SignInMethod,
  SiteRecord,
  StoredToken,
  TokenRecord,
  UserRecord,
} from './types.ts'

/**
 * Rows as both engines hand them out, mapped to the store's records: one mapper per table, so
 * SQLite and PostgreSQL cannot drift apart in what a column means. Times are INTEGER in SQLite
 * and BIGINT in PostgreSQL, which `pg` returns as strings (they may exceed 2^53 in general; ours
 * are milliseconds since the epoch, far below): every mapper converts. Flags are 0/1 in SQLite,
 * BOOLEAN (or 0/1 in older columns) in PostgreSQL: `flag` reads either.
 */
export type Row = Record<string, unknown>

const num = (v: unknown): number => Number(v)
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v))
const strOrNull = <T extends string = string>(v: unknown): T | null => (v ?? null) as T | null
const flag = (v: unknown): boolean => v === true || Number(v) === 1

/** Shared between requests (both stores keep rows), so nobody may change them. */
const frozenSite = (s: SiteRecord): SiteRecord => {
  for (const list of [s.origins, s.redirectUris, s.loginModes]) Object.freeze(list)
  return Object.freeze(s)
}

export const toSite = (r: Row): SiteRecord =>
  frozenSite({
    id: r.id as string,
    name: r.name as string,
    origins: JSON.parse(r.origins as string),
    redirectUris: JSON.parse(r.redirect_uris as string),
    loginModes: JSON.parse(r.login_modes as string),
    tokenTtlSeconds: num(r.token_ttl_seconds),
    refreshIdleSeconds: num(r.refresh_idle_seconds),
    refreshAbsoluteSeconds: num(r.refresh_absolute_seconds),
    refreshBeforeSeconds: num(r.refresh_before_seconds),
    backchannelLogoutUri: strOrNull(r.backchannel_logout_uri),
    oneDevicePerSite: flag(r.one_device_per_site),
    dpopBoundTokens: flag(r.dpop_bound_tokens),
    // The FedCM fields only where set: a record of a site without them reads as before.
    ...(flag(r.fedcm) ? { fedcm: true } : {}),
    ...(r.privacy_policy_url ? { privacyPolicyUrl: r.privacy_policy_url as string } : {}),
    ...(r.terms_of_service_url ? { termsOfServiceUrl: r.terms_of_service_url as string } : {}),
    authkeyVersion: num(r.authkey_version),
    clientSecretHash: r.client_secret_hash as string,
    createdAt: num(r.created_at),
  })

export const toUser = (r: Row): UserRecord => ({
  id: r.id as string,
  username: r.username as string,
  name: r.name as string,
  passwordHash: r.password_hash as string,
  createdAt: num(r.created_at),
  ...(flag(r.is_admin) ? { isAdmin: true } : {}),
  ...(flag(r.disabled) ? { disabled: true } : {}),
})

export const toSession = (r: Row): SessionRecord => ({
  id: r.id as string,
  userId: r.user_id as string,
  createdAt: num(r.created_at),
  expiresAt: num(r.expires_at),
  endedAt: numOrNull(r.ended_at),
  endReason: strOrNull<EndReason>(r.end_reason),
  userAgent: r.user_agent as string,
  ...(r.last_seen_at === null || r.last_seen_at === undefined ? {} : { lastSeenAt: num(r.last_seen_at) }),
  ...(r.method ? { method: r.method as SignInMethod } : {}),
  ...(r.address ? { address: r.address as string } : {}),
})

export const toApproval = (r: Row): ApprovalRecord => ({
  id: r.id as string,
  secretHash: r.secret_hash as string,
  kind: r.kind as ApprovalRecord['kind'],
  userId: strOrNull(r.user_id),
  requestedFor: r.requested_for as string,
  siteId: r.site_id as string,
  code: r.code as string,
  userAgent: r.user_agent as string,
  address: r.address as string,
  context: r.context as string,
  createdAt: num(r.created_at),
  expiresAt: num(r.expires_at),
  status: r.status as ApprovalRecord['status'],
  decidedAt: numOrNull(r.decided_at),
  decidedBy: strOrNull(r.decided_by),
})

export const toCode = (r: Row): CodeRecord => ({
  hash: r.hash as string,
  siteId: r.site_id as string,
  userId: r.user_id as string,
  sessionId: r.session_id as string,
  redirectUri: r.redirect_uri as string,
  codeChallenge: r.code_challenge as string,
  expiresAt: num(r.expires_at),
  usedAt: numOrNull(r.used_at),
})

export const toRefresh = (r: Row): RefreshRecord => ({
  hash: r.hash as string,
  familyId: r.family_id as string,
  generation: num(r.generation),
  siteId: r.site_id as string,
  userId: r.user_id as string,
  sessionId: r.session_id as string,
  issuedAt: num(r.issued_at),
  idleExpiresAt: num(r.idle_expires_at),
  absoluteExpiresAt: num(r.absolute_expires_at),
  usedAt: numOrNull(r.used_at),
  successorHash: strOrNull(r.successor_hash),
  successorSealed: strOrNull(r.successor_sealed),
  revokedAt: numOrNull(r.revoked_at),
  revokeReason: strOrNull<EndReason>(r.revoke_reason),
  jkt: strOrNull(r.jkt),
})

export const toFamily = (r: Row): RefreshFamilyRecord => ({
  familyId: r.family_id as string,
  siteId: r.site_id as string,
  userId: r.user_id as string,
  sessionId: r.session_id as string,
  jkt: strOrNull(r.jkt),
  generation: num(r.generation),
  issuedAt: num(r.issued_at),
  idleExpiresAt: num(r.idle_expires_at),
  absoluteExpiresAt: num(r.absolute_expires_at),
  tokenJti: r.token_jti as string,
  tokenExpiresAt: num(r.token_expires_at),
  revokedAt: numOrNull(r.revoked_at),
  revokeReason: strOrNull<EndReason>(r.revoke_reason),
})

export const toEvent = (r: Row): SessionEventRecord => ({
  id: num(r.id),
  type: r.type as SessionEventRecord['type'],
  userId: r.user_id as string,
  sessionId: r.session_id as string,
  siteId: strOrNull(r.site_id),
  reason: r.reason as EndReason,
  at: num(r.at),
})

export const toToken = (r: Row): TokenRecord => ({
  jti: r.jti as string,
  siteId: r.site_id as string,
  userId: r.user_id as string,
  sessionId: r.session_id as string,
  issuedAt: num(r.issued_at),
  expiresAt: num(r.expires_at),
  revokedAt: numOrNull(r.revoked_at),
  revokeReason: strOrNull<EndReason>(r.revoke_reason),
  jkt: strOrNull(r.jkt),
})

/** Shared between requests, so nobody may change it. */
export const frozenToken = (t: StoredToken): StoredToken => {
  Object.freeze(t.record)
  if (t.holder) Object.freeze(t.holder)
  return Object.freeze(t)
}

export const toAudit = (r: Row): AuditRecord => ({
  id: num(r.id),
  type: r.type as string,
  actor: strOrNull(r.actor),
  userId: strOrNull(r.user_id),
  siteId: strOrNull(r.site_id),
  sessionId: strOrNull(r.session_id),
  detail: r.detail as string,
  at: num(r.at),
})

export const toPasskey = (r: Row): PasskeyRecord => ({
  id: r.id as string,
  userId: r.user_id as string,
  userHandle: r.user_handle as string,
  publicKey: r.public_key as string,
  counter: Number(r.counter),
  transports: JSON.parse(r.transports as string),
  deviceType: r.device_type as PasskeyRecord['deviceType'],
  backedUp: flag(r.backed_up),
  aaguid: r.aaguid as string,
  name: r.name as string,
  createdAt: Number(r.created_at),
  lastUsedAt: numOrNull(r.last_used_at),
  removedAt: numOrNull(r.removed_at),
})

export const toPasskeyChallenge = (r: Row): PasskeyChallengeRecord => ({
  id: r.id as string,
  challenge: r.challenge as string,
  bindingHash: r.binding_hash as string,
  purpose: r.purpose as PasskeyChallengeRecord['purpose'],
  userId: strOrNull(r.user_id),
  sessionId: strOrNull(r.session_id),
  userHandle: strOrNull(r.user_handle),
  createdAt: Number(r.created_at),
  expiresAt: Number(r.expires_at),
  usedAt: numOrNull(r.used_at),
})

// ---------------------------------------------------------------------------------------------
// Records as the rows an INSERT writes: the same columns and values on both engines.

/** A record as the row an INSERT writes: its table, columns, and their values in that order. */
export interface RowWrite {
  table: string
  columns: readonly string[]
  values: (string | number | null)[]
}

const rowOf = (table: string, row: Record<string, string | number | null>): RowWrite => ({
  table,
  columns: Object.keys(row),
  values: Object.values(row),
})

const insertTexts = new Map<string, string>()
/**
 * `INSERT INTO <table> (<columns>) VALUES (<placeholders>)`, each placeholder as the engine
 * writes it (`?`, or `$1`, `$2`, …). Made once per table and engine: a table's columns never
 * change at run time.
 */
export function insertSql(row: RowWrite, placeholder: (n: number) => string): string {
  const key = `${row.table} ${placeholder(1)}`
  let text = insertTexts.get(key)
  if (text === undefined) {
    const marks = row.columns.map((_, i) => placeholder(i + 1)).join(', ')
    text = `INSERT INTO ${row.table} (${row.columns.join(', ')}) VALUES (${marks})`
    insertTexts.set(key, text)
  }
  return text
}

export const userRow = (u: UserRecord): RowWrite =>
  rowOf('users', {
    id: u.id,
    username: u.username,
    name: u.name,
    password_hash: u.passwordHash,
    created_at: u.createdAt,
    is_admin: u.isAdmin ? 1 : 0,
    disabled: u.disabled ? 1 : 0,
  })

export const sessionRow = (s: SessionRecord): RowWrite =>
  rowOf('sessions', {
    id: s.id,
    user_id: s.userId,
    created_at: s.createdAt,
    expires_at: s.expiresAt,
    ended_at: s.endedAt,
    end_reason: s.endReason,
    user_agent: s.userAgent,
    method: s.method ?? null,
    address: s.address ?? null,
  })

export const tokenRow = (t: TokenRecord, tokenHash: string | null): RowWrite =>
  rowOf('tokens', {
    jti: t.jti,
    site_id: t.siteId,
    user_id: t.userId,
    session_id: t.sessionId,
    issued_at: t.issuedAt,
    expires_at: t.expiresAt,
    revoked_at: t.revokedAt,
    revoke_reason: t.revokeReason,
    token_hash: tokenHash,
    jkt: t.jkt,
  })

export const codeRow = (c: CodeRecord): RowWrite =>
  rowOf('codes', {
    hash: c.hash,
    site_id: c.siteId,
    user_id: c.userId,
    session_id: c.sessionId,
    redirect_uri: c.redirectUri,
    code_challenge: c.codeChallenge,
    expires_at: c.expiresAt,
    used_at: c.usedAt,
  })

export const refreshRow = (t: RefreshRecord): RowWrite =>
  rowOf('refresh_tokens', {
    hash: t.hash,
    family_id: t.familyId,
    generation: t.generation,
    site_id: t.siteId,
    user_id: t.userId,
    session_id: t.sessionId,
    issued_at: t.issuedAt,
    idle_expires_at: t.idleExpiresAt,
    absolute_expires_at: t.absoluteExpiresAt,
    used_at: t.usedAt,
    successor_hash: t.successorHash,
    successor_sealed: t.successorSealed,
    revoked_at: t.revokedAt,
    revoke_reason: t.revokeReason,
    jkt: t.jkt,
  })

export const familyRow = (f: RefreshFamilyRecord): RowWrite =>
  rowOf('refresh_families', {
    family_id: f.familyId,
    site_id: f.siteId,
    user_id: f.userId,
    session_id: f.sessionId,
    jkt: f.jkt,
    generation: f.generation,
    issued_at: f.issuedAt,
    idle_expires_at: f.idleExpiresAt,
    absolute_expires_at: f.absoluteExpiresAt,
    token_jti: f.tokenJti,
    token_expires_at: f.tokenExpiresAt,
    revoked_at: f.revokedAt,
    revoke_reason: f.revokeReason,
  })

export const approvalRow = (a: ApprovalRecord): RowWrite =>
  rowOf('approvals', {
    id: a.id,
    secret_hash: a.secretHash,
    kind: a.kind,
    user_id: a.userId,
    requested_for: a.requestedFor,
    site_id: a.siteId,
    code: a.code,
    user_agent: a.userAgent,
    address: a.address,
    context: a.context,
    created_at: a.createdAt,
    expires_at: a.expiresAt,
    status: a.status,
    decided_at: a.decidedAt,
    decided_by: a.decidedBy,
  })

export const passkeyRow = (p: PasskeyRecord): RowWrite =>
  rowOf('passkeys', {
    id: p.id,
    user_id: p.userId,
    user_handle: p.userHandle,
    public_key: p.publicKey,
    counter: p.counter,
    transports: JSON.stringify(p.transports),
    device_type: p.deviceType,
    backed_up: p.backedUp ? 1 : 0,
    aaguid: p.aaguid,
    name: p.name,
    created_at: p.createdAt,
    last_used_at: p.lastUsedAt,
    removed_at: p.removedAt,
  })

export const challengeRow = (c: PasskeyChallengeRecord): RowWrite =>
  rowOf('passkey_challenges', {
    id: c.id,
    challenge: c.challenge,
    binding_hash: c.bindingHash,
    purpose: c.purpose,
    user_id: c.userId,
    session_id: c.sessionId,
    user_handle: c.userHandle,
    created_at: c.createdAt,
    expires_at: c.expiresAt,
    used_at: c.usedAt,
  })
