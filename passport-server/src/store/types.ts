import type { EndReason } from '../../../passport-frame/src/protocol/codes.ts'

/** Times are milliseconds since the epoch throughout the store. */

export interface UserRecord {
  id: string
  username: string
  name: string
  passwordHash: string
  createdAt: number
  /** May use the operator console (`/admin`). Absent = false. */
  isAdmin?: boolean
  /** Refused at every sign-in; disabling also ends every session. Absent = false. */
  disabled?: boolean
}

export interface SiteRecord {
  id: string
  name: string
  /** Exact origins allowed to embed the frame and talk to it. */
  origins: string[]
  /** Exact redirect targets for the sign-in round trip. */
  redirectUris: string[]
  loginModes: string[]
  tokenTtlSeconds: number
  /** A refresh credential unused this long expires (the device must sign in to the site again). */
  refreshIdleSeconds: number
  /** No refresh family outlives this, however often it is used (and never the session). */
  refreshAbsoluteSeconds: number
  /** The frame refreshes this long before the access token expires. */
  refreshBeforeSeconds: number
  /** Where the passport POSTs an OIDC back-channel logout token on every session end; or null. */
  backchannelLogoutUri: string | null
  /** Newest wins: a sign-in on one device ends the user's tokens on this site on every other. */
  oneDevicePerSite: boolean
  /**
   * Access tokens carry `cnf.jkt` (RFC 9449): the site backend accepts one only with a DPoP proof
   * by the frame's key. Off (default): bearer tokens for the site backend.
   */
  dpopBoundTokens: boolean
  /**
   * The site may sign its users in through the browser's own dialog (FedCM, docs/fedcm.md).
   * Absent on records of older stores: off.
   */
  fedcm?: boolean
  /** Shown in the browser's FedCM dialog (client metadata); null or absent: none. */
  privacyPolicyUrl?: string | null
  termsOfServiceUrl?: string | null
  /** Bumped on every change to the site; authkeys of an older version stop working. */
  authkeyVersion: number
  /** scrypt hash of the site backend's client secret (introspection, status). */
  clientSecretHash: string
  createdAt: number
}

export interface SessionRecord {
  /** SHA-256 of the cookie value; the value itself is never stored. */
  id: string
  userId: string
  createdAt: number
  expiresAt: number
  endedAt: number | null
  endReason: EndReason | null
  userAgent: string
  /** Last sign-in on a site or refresh by this session (idle timeout); absent = `createdAt`. */
  lastSeenAt?: number
  /** How the browser signed in; absent on sessions of older servers (they all used a password). */
  method?: SignInMethod
  /** The client address at sign-in (the console shows it); absent on older sessions. */
  address?: string
}

export type SignInMethod = 'password' | 'device_approval' | 'ciba' | 'passkey'

export interface CodeRecord {
  /** SHA-256 of the code. */
  hash: string
  siteId: string
  userId: string
  sessionId: string
  redirectUri: string
  codeChallenge: string
  expiresAt: number
  usedAt: number | null
}

export interface TokenRecord {
  jti: string
  siteId: string
  userId: string
  sessionId: string
  issuedAt: number
  expiresAt: number
  revokedAt: number | null
  revokeReason: EndReason | null
  /**
   * Thumbprint of the frame key the token's device proved at sign-in (DPoP); only a proof by
   * that key opens the frame's API with this token. Null for tokens no frame holds (CIBA).
   */
  jkt: string | null
}

/**
 * A rotating refresh credential as servers before issue 15 kept it, a row per credential (their
 * families keep rotating this way until they expire; new sign-ins start a `RefreshFamilyRecord`).
 * Each use yields a successor (generation + 1) in the same family; the used one keeps the
 * successor's answer, sealed with a key derived from the used credential itself, so a retry
 * within the grace window gets the identical answer and the database alone never holds a live
 * credential in clear.
 */
export interface RefreshRecord {
  /** SHA-256 of the credential. */
  hash: string
  familyId: string
  generation: number
  siteId: string
  userId: string
  sessionId: string
  issuedAt: number
  idleExpiresAt: number
  absoluteExpiresAt: number
  usedAt: number | null
  successorHash: string | null
  successorSealed: string | null
  revokedAt: number | null
  revokeReason: EndReason | null
  /** Thumbprint of the frame key the family is bound to: a refresh needs a proof by it. */
  jkt: string | null
}

/**
 * A refresh family in one row, rotated in place (credentials minted since issue 15; the
 * `RefreshRecord` rows above are the families of older servers, rotated as before until they
 * expire). The credentials are not stored: generation `n` of a family is
 * `<familyId>.<n>.<HMAC-SHA256(server key, "<familyId>.<n>")>`, the key sealed among the
 * store's secrets, so a copy of the database alone holds nothing usable, and the server tells
 * a genuine old credential of the family (a retry, or a copy in use) from a made-up one. The
 * row keeps what rebuilds the current generation's answer (its token's id and expiry, and
 * when it was minted), so a retry within the grace window gets the same answer again.
 */
export interface RefreshFamilyRecord {
  familyId: string
  siteId: string
  userId: string
  sessionId: string
  /** Thumbprint of the frame key the family is bound to (null: a site backend's grant). */
  jkt: string | null
  /** The generation of the family's one unused credential; every older one is used. */
  generation: number
  /** When the current generation was minted (and so the one before it used). */
  issuedAt: number
  idleExpiresAt: number
  absoluteExpiresAt: number
  /** The token minted with the current generation: its id and expiry. */
  tokenJti: string
  tokenExpiresAt: number
  revokedAt: number | null
  revokeReason: EndReason | null
}

/** What rotating a family in place changes: the next generation and its token. */
export type FamilyAdvance = Pick<
  RefreshFamilyRecord,
  'generation' | 'issuedAt' | 'idleExpiresAt' | 'tokenJti' | 'tokenExpiresAt'
>

/**
 * One entry of the durable, ordered log of everything that ended a session or a site's access
 * on a session. Written in the same transaction as the change, published after commit; a live
 * connection that missed some resumes from the last id it saw.
 */
export interface SessionEventRecord {
  /** Increasing, never reused. */
  id: number
  type: 'session_ended' | 'site_access_ended'
  userId: string
  sessionId: string
  /** Set when only one site's access ended. */
  siteId: string | null
  reason: EndReason
  at: number
}

/** A session that lost a site to a newer sign-in elsewhere may not take it back silently. */
export interface SiteExclusion {
  sessionId: string
  siteId: string
  reason: EndReason
  at: number
}

/**
 * "Sign in with another device": a new browser (or a CIBA client) asks, a device where the
 * user is signed in approves by picking the code the new one shows (number matching).
 * `pending` is the only state a decision can leave; `approved` is the only one `used` follows.
 */
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'cancelled' | 'expired' | 'used'

export interface ApprovalRecord {
  /** Random public id: names the request to the approving devices; grants nothing. */
  id: string
  /** SHA-256 of the secret only the requester holds (the new browser's cookie, or CIBA's auth_req_id). */
  secretHash: string
  kind: 'browser' | 'ciba'
  /** Null when the username matched nobody: the request then looks the same but nobody sees it. */
  userId: string | null
  /**
   * SHA-256 of the username as typed (trimmed, lower-cased): the pending limit counts by it, so
   * a username that matches nobody is limited exactly like one that does (no account probing).
   */
  requestedFor: string
  siteId: string
  /** The two-digit code the new device shows. */
  code: string
  /** What the approving device is shown about the requester. */
  userAgent: string
  address: string
  /** Where the requester goes once approved (the browser's sign-in parameters, JSON), or CIBA's binding message. */
  context: string
  createdAt: number
  expiresAt: number
  status: ApprovalStatus
  decidedAt: number | null
  /** The approving device's session. */
  decidedBy: string | null
}

export interface ApprovalRepo {
  create(approval: ApprovalRecord): Promise<void>
  get(id: string): Promise<ApprovalRecord | null>
  getBySecretHash(secretHash: string): Promise<ApprovalRecord | null>
  /** The user's requests still pending and unexpired at `now`, oldest first. */
  listPending(userId: string, now: number): Promise<ApprovalRecord[]>
  /** How many requests for this `requestedFor` are pending and unexpired at `now`. */
  countPending(requestedFor: string, now: number): Promise<number>
  /**
   * Moves a pending, unexpired request to `status` (compare-and-swap: of racing decisions
   * exactly one returns the updated record, the others null).
   */
  decide(
    id: string,
    status: 'approved' | 'denied' | 'cancelled',
    at: number,
    decidedBy: string | null,
  ): Promise<ApprovalRecord | null>
  /** Marks pending requests past their expiry `expired` and returns them (at most `limit`). */
  expireDue(now: number, limit: number): Promise<ApprovalRecord[]>
  /**
   * approved -> used, once, if it was approved at `approvedSince` or later; null when it was not
   * approved, already used, or approved too long ago.
   */
  markUsed(id: string, approvedSince: number): Promise<ApprovalRecord | null>
}

/** A WebAuthn credential (passkey) of a user. */
export interface PasskeyRecord {
  /** The credential id, base64url, as the authenticator made it (unique across users). */
  id: string
  userId: string
  /**
   * The WebAuthn user handle (base64url) the credential was made for: random, the same for
   * every passkey of a user, never the user id or name (authenticators may show or sync it).
   */
  userHandle: string
  /** The credential's COSE public key, base64url. */
  publicKey: string
  /** The signature counter last seen (0 for authenticators that keep none). */
  counter: number
  transports: string[]
  /** `multiDevice`: the credential may be synced (backup eligible); `singleDevice`: bound to one authenticator. */
  deviceType: 'singleDevice' | 'multiDevice'
  /** Backup state, as the authenticator last reported it. */
  backedUp: boolean
  /** The authenticator model's AAGUID (all zeros when it gives none). */
  aaguid: string
  /** A label for the account page. */
  name: string
  createdAt: number
  lastUsedAt: number | null
  /** Kept after removal so that the removed credential is refused as such (and never accepted again). */
  removedAt: number | null
}

/**
 * A WebAuthn challenge the passport handed out: single-use, short-lived, and bound to the
 * browser that asked for it (the hash of a cookie only that browser holds).
 */
export interface PasskeyChallengeRecord {
  /** SHA-256 of the challenge (base64url): the challenge itself is the client's to send back. */
  id: string
  /** The challenge (base64url), for the verifier. */
  challenge: string
  /** SHA-256 of the browser's binding cookie. */
  bindingHash: string
  purpose: 'registration' | 'authentication'
  /** Registration: the user and the session that asked; authentication: null. */
  userId: string | null
  sessionId: string | null
  /** Registration: the WebAuthn user handle the options carried (base64url); else null. */
  userHandle: string | null
  createdAt: number
  expiresAt: number
  usedAt: number | null
}

export interface PasskeyRepo {
  /** Adds a passkey; false when a credential with that id exists (live or removed). */
  create(passkey: PasskeyRecord): Promise<boolean>
  /** The credential, removed or not; null when never registered. */
  get(id: string): Promise<PasskeyRecord | null>
  /** The user's passkeys not removed, oldest first. */
  listByUser(userId: string): Promise<PasskeyRecord[]>
  /** The user handle of any passkey the user ever had (removed too), or null. */
  userHandleOf(userId: string): Promise<string | null>
  /**
   * Records a successful use. Compare-and-swap: only while the passkey is not removed and its
   * stored counter is still `expectedCounter`; false (changing nothing) otherwise.
   */
  recordUse(
    id: string,
    expectedCounter: number,
    use: { counter: number; backedUp: boolean; at: number },
  ): Promise<boolean>
  /** Marks the user's own passkey removed; false when it is not theirs or already removed. */
  remove(userId: string, id: string, at: number): Promise<boolean>
  createChallenge(challenge: PasskeyChallengeRecord): Promise<void>
  /**
   * Marks a challenge used and returns it as it was before this call, atomically: of two
   * concurrent calls one sees `usedAt: null`, the other the first one's time. Null if unknown.
   */
  useChallenge(id: string, at: number): Promise<PasskeyChallengeRecord | null>
}

export interface UserRepo {
  create(user: UserRecord): Promise<void>
  setPasswordHash(id: string, passwordHash: string): Promise<void>
  findById(id: string): Promise<UserRecord | null>
  findByUsername(username: string): Promise<UserRecord | null>
  /** Every user, by username. */
  list(): Promise<UserRecord[]>
  setAdmin(id: string, isAdmin: boolean): Promise<void>
  setDisabled(id: string, disabled: boolean): Promise<void>
}

export interface SiteRepo {
  create(site: SiteRecord): Promise<void>
  update(site: SiteRecord): Promise<void>
  get(id: string): Promise<SiteRecord | null>
  list(): Promise<SiteRecord[]>
  /**
   * Removes the site and remembers its authkey version, so that an id registered again
   * continues from it (its old authkeys never open again). Returns false when there was no such site.
   */
  remove(id: string): Promise<boolean>
  /** The highest authkey version a removed site of this id had (0 if none was ever removed). */
  retiredVersion(id: string): Promise<number>
}

export interface SessionRepo {
  create(session: SessionRecord): Promise<void>
  get(id: string): Promise<SessionRecord | null>
  /** Ends the session if it is still live; returns false when it already was ended. */
  end(id: string, reason: EndReason, at: number): Promise<boolean>
  exclude(exclusion: SiteExclusion): Promise<void>
  exclusion(sessionId: string, siteId: string): Promise<SiteExclusion | null>
  clearExclusion(sessionId: string, siteId: string): Promise<void>
  /**
   * Sessions past their expiry, or idle since `idleBefore` or earlier, that nobody has ended yet
   * (the expiry sweeper's work).
   */
  listExpired(now: number, limit: number, idleBefore?: number): Promise<SessionRecord[]>
  /** Records activity (a token minted or refreshed) for the idle timeout. */
  touch(id: string, at: number): Promise<void>
  listByUser(userId: string): Promise<SessionRecord[]>
  /** Sites this session was ever given a token for. */
  sitesOf(sessionId: string): Promise<string[]>
  /** When this session was last given a token (sign-in on a site or refresh), or null. */
  lastActivity(sessionId: string): Promise<number | null>
  /** Sessions not ended and not past their absolute expiry at `now`, newest first (the console). */
  listLive(now: number, limit: number): Promise<SessionRecord[]>
}

export interface CodeRepo {
  create(code: CodeRecord): Promise<void>
  /**
   * Marks the code used and returns it, atomically: of two concurrent calls exactly one gets
   * the record. A code that is unknown or already used returns null.
   */
  consume(hash: string, at: number): Promise<CodeRecord | null>
}

/** What a site may learn of a token's user (introspection). */
export type TokenHolder = Pick<UserRecord, 'id' | 'username' | 'name'>

/** A token row as checks read it: frozen, it may be shared between requests. */
export interface StoredToken {
  readonly record: TokenRecord
  readonly tokenHash: string | null
  readonly holder: TokenHolder | null
}

export interface TokenRepo {
  /** `tokenHash`: SHA-256 of the exact token minted for this record (see `getWithHash`). */
  create(token: TokenRecord, tokenHash?: string | null): Promise<void>
  get(jti: string): Promise<TokenRecord | null>
  /**
   * The record with the SHA-256 of the exact token minted for it, kept so that a presented
   * token can be recognised as ours by its bytes. Null for rows written without it (by a
   * server before this field, which may still share the store): such tokens are checked by
   * their signature. `holder` is the user the token was minted for, null if that account is gone.
   */
  getWithHash(jti: string): Promise<StoredToken | null>
  /** Revokes every unexpired live token of (user, site) not held by `keepSessionId`; returns them. */
  revokeOtherDevices(
    userId: string,
    siteId: string,
    keepSessionId: string,
    at: number,
    reason: EndReason,
  ): Promise<TokenRecord[]>
  /** Revokes every live token of a session; returns them. */
  revokeSession(sessionId: string, at: number, reason: EndReason): Promise<TokenRecord[]>
  /** Revokes the live tokens of one session on one site; returns them. */
  revokeSessionSite(sessionId: string, siteId: string, at: number, reason: EndReason): Promise<TokenRecord[]>
  /** Revokes every live token of a site (it is being removed); returns them. */
  revokeSite(siteId: string, at: number, reason: EndReason): Promise<TokenRecord[]>
  /** Unrevoked tokens unexpired at `now`, of one session or of all (the console), oldest first. */
  listLive(now: number, sessionId?: string): Promise<TokenRecord[]>
}

export interface RefreshRepo {
  create(record: RefreshRecord): Promise<void>
  get(hash: string): Promise<RefreshRecord | null>
  /** The family's newest credential if it is still unused and unrevoked; else null. */
  head(familyId: string): Promise<RefreshRecord | null>
  /**
   * Marks an unused credential used and records its successor. Compare-and-swap: returns
   * false, changing nothing, when it was already used or revoked.
   */
  markRotated(
    hash: string,
    at: number,
    successorHash: string,
    successorSealed: string | null,
  ): Promise<boolean>
  /** A new family (a sign-in on a site), at generation 0. */
  createFamily(record: RefreshFamilyRecord): Promise<void>
  getFamily(familyId: string): Promise<RefreshFamilyRecord | null>
  /**
   * Rotates a family in place to `next`. Compare-and-swap: returns false, changing nothing,
   * unless the family is unrevoked and still at generation `from`.
   */
  advanceFamily(familyId: string, from: number, next: FamilyAdvance): Promise<boolean>
  /**
   * Revokes every live credential of a family; returns how many. The revoke methods below
   * cover both kinds of family (rows of `RefreshRecord` and of `RefreshFamilyRecord`).
   */
  revokeFamily(familyId: string, at: number, reason: EndReason): Promise<number>
  revokeSession(sessionId: string, at: number, reason: EndReason): Promise<number>
  revokeSessionSite(sessionId: string, siteId: string, at: number, reason: EndReason): Promise<number>
  /** Revokes every live credential of a site; returns the (session, user) of each family it ended. */
  revokeSite(siteId: string, at: number, reason: EndReason): Promise<{ sessionId: string; userId: string }[]>
  /**
   * Revokes the user's unused credentials for a site held by every session but `keepSessionId`;
   * returns those sessions.
   */
  revokeOtherDevices(
    userId: string,
    siteId: string,
    keepSessionId: string,
    at: number,
    reason: EndReason,
  ): Promise<string[]>
}

export interface MaintenanceRepo {
  /**
   * Deletes what can no longer matter: tokens, codes and tickets a day past expiry, refresh
   * credentials a day past use, revocation or expiry, events older than a week.
   */
  purge(now: number): Promise<number>
}

export interface EventRepo {
  append(event: Omit<SessionEventRecord, 'id'>): Promise<SessionEventRecord>
  /** Events of a session after `afterId`, oldest first. */
  since(sessionId: string, afterId: number, limit: number): Promise<SessionEventRecord[]>
  /** Events of every session after `afterId`, oldest first. */
  after(afterId: number, limit: number): Promise<SessionEventRecord[]>
  latestId(): Promise<number>
}

/** One row of the audit log: who did what to whom, when (the console, `audit` in the CLI). */
export interface AuditRecord {
  id: number
  type: string
  /** Who acted: an admin's username, `cli`, or null for the user themself / the system. */
  actor: string | null
  userId: string | null
  siteId: string | null
  sessionId: string | null
  /** JSON object of plain values; never a secret. */
  detail: string
  at: number
}

export interface AuditQuery {
  userId?: string
  siteId?: string
  type?: string
  /** At or after (ms). */
  since?: number
  /** Before (ms). */
  until?: number
  /** Rows with a smaller id only (paging back). */
  beforeId?: number
  limit: number
}

export interface AuditRepo {
  append(record: Omit<AuditRecord, 'id'>): Promise<number>
  /** Newest first. */
  list(query: AuditQuery): Promise<AuditRecord[]>
  /** Deletes rows older than `before`; returns how many. */
  purge(before: number): Promise<number>
}

export interface SecretRepo {
  get(name: string): Promise<string | null>
  /** Stores the value unless one exists; returns whichever value is stored afterwards. */
  putIfAbsent(name: string, value: string): Promise<string>
  put(name: string, value: string): Promise<void>
}

/**
 * Ids that may be used once (wrapped keys of sealed payloads, sign-in tickets), each kept until
 * it expires; the maintenance sweep drops expired ones.
 */
export interface OneTimeIdRepo {
  /** Records `id` until `expiresAt` (ms); false if it is recorded already (a replay). */
  claim(id: string, expiresAt: number): Promise<boolean>
  /** Drops ids expired at `now`; returns how many. */
  purgeExpired(now: number): Promise<number>
}

export interface StoreTx {
  users: UserRepo
  sites: SiteRepo
  sessions: SessionRepo
  codes: CodeRepo
  tokens: TokenRepo
  refresh: RefreshRepo
  events: EventRepo
  maintenance: MaintenanceRepo
  secrets: SecretRepo
  approvals: ApprovalRepo
  passkeys: PasskeyRepo
  oneTimeIds: OneTimeIdRepo
  audit: AuditRepo
}

/**
 * The persistence boundary. The embedded default is SQLite (`sqlite.ts`); the scale-out one is
 * PostgreSQL (`postgres/`). Both give the same guarantees: `transaction` is all-or-nothing and
 * serialisable with respect to other transactions, and every failure to reach the data
 * surfaces as `StoreUnavailableError` so the app can fail closed.
 *
 * `fn` may run more than once (PostgreSQL runs a transaction again after a serialisation
 * conflict), so it must have no effect outside `tx` (no publishing, no logging of what it did)
 * before it returns: do those after `transaction` resolves. The contract tests of both
 * engines are in `contract.test.ts`.
 */
export interface Store extends StoreTx {
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>
  close(): Promise<void>
}
