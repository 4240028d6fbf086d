import { parseExactOrigin } from '../../passport-frame/src/protocol/origins.ts'
import { trustedProxiesOf } from './services/client-address.ts'

/** What an operator may set. Every field but `issuer` has a default. */
export interface PassportOptions {
  /** Public origin of the passport, e.g. `https://passport.example.com`. Tokens carry it as `iss`. */
  issuer: string
  /** Absolute lifetime of a passport session (the browser's sign-in). Default 30 days. */
  sessionTtlSeconds?: number
  /** A session with no sign-in on a site and no refresh for this long ends ("timed out"). Default 7 days. */
  sessionIdleSeconds?: number
  /** Lifetime of a one-time authorization code. Default 60 s. */
  codeTtlSeconds?: number
  /** How long a used refresh credential may be presented again for the same answer. Default 10 s. */
  refreshGraceSeconds?: number
  /** Largest request body accepted on any endpoint. Default 16 KiB. */
  maxBodyBytes?: number
  /** scrypt cost parameter N for password hashes. Default 2^15. */
  scryptCost?: number
  /**
   * PBKDF2-HMAC-SHA-256 iterations of new SCRAM credentials (sign-in without the password on
   * the wire, docs/sign-in.md). Default 600,000 (OWASP's current figure).
   */
  scramIterations?: number
  /**
   * Whether the plain password form (the no-JavaScript fallback, which posts the password)
   * is accepted. `PASSPORT_PASSWORD_FORM=off` turns it off: SCRAM over the socket only.
   * Default true.
   */
  passwordForm?: boolean
  /**
   * Shared secret a WebSocket server running apart uses to validate live tickets at
   * `POST /internal/live/validate`. Empty (the default): that endpoint does not exist.
   */
  liveValidationSecret?: string
  /**
   * Most live-channel WebSockets one process holds (each is a file descriptor): keep it well
   * under the process's fd limit (LimitNOFILE), raising both together. Default 15,000.
   */
  liveMaxConnections?: number
  /**
   * Whether every DPoP proof to the frame's API must carry a fresh server nonce (RFC 9449 §8):
   * a proof made in advance, or kept, is then useless after at most ten minutes. The frame gets
   * a nonce with its page, so this costs no extra round trip. Default true.
   */
  dpopNonceRequired?: boolean
  /** Where the built frame and SDK files are (vite output). */
  assetsDir?: string
  /**
   * Addresses and CIDRs of the operator's reverse proxies. A request from one of them is
   * attributed to the right-most address in `X-Forwarded-For` that is not one of them; any other
   * request to its TCP peer. Empty (the default): always the TCP peer, headers ignored.
   */
  trustedProxies?: readonly string[]
  /**
   * A `postgres://` URL: the store is this PostgreSQL database (several instances may share it)
   * instead of the SQLite file. Empty (the default): SQLite. It may hold a password: never log it.
   */
  databaseUrl?: string
  /** Most connections one instance opens to that database. Default 10. */
  databasePoolSize?: number
  /**
   * Redis shared by several instances (`redis://host:6379/0`): cross-instance event fan-out,
   * shared rate limits and the DPoP replay cache, live-socket presence. Empty (the default):
   * all of it in this process, for one instance.
   */
  redisUrl?: string
  /** Prefix of every Redis key and channel, so several deployments can share one Redis. */
  redisKeyPrefix?: string
  /** Days the audit log keeps a row; the maintenance sweep purges older ones. Default 90. */
  auditRetentionDays?: number
}

export type ResolvedConfig = Readonly<Required<PassportOptions>>

export const defaults = {
  sessionTtlSeconds: 30 * 24 * 3600,
  sessionIdleSeconds: 7 * 24 * 3600,
  codeTtlSeconds: 60,
  refreshGraceSeconds: 10,
  maxBodyBytes: 16 * 1024,
  scryptCost: 2 ** 15,
  scramIterations: 600_000,
  passwordForm: true,
  liveValidationSecret: '',
  liveMaxConnections: 15_000,
  dpopNonceRequired: true,
  assetsDir: new URL('../../dist/passport/', import.meta.url).pathname,
  trustedProxies: [],
  databaseUrl: '',
  databasePoolSize: 10,
  redisUrl: '',
  redisKeyPrefix: 'passport:',
  auditRetentionDays: 90,
} satisfies Omit<ResolvedConfig, 'issuer'>

/**
 * Fills in defaults, validates, freezes. Throws at start-up on a bad value rather than failing
 * on the first request.
 *
 * @example
 * const config = resolveConfig({ issuer: 'http://passport.localhost:8080' })
 */
export function resolveConfig(options: PassportOptions): ResolvedConfig {
  const config = { ...defaults, ...options }
  if (parseExactOrigin(config.issuer) === null) {
    throw new Error(`issuer must be an exact origin like https://passport.example.com, got ${config.issuer}`)
  }
  for (const key of [
    'sessionTtlSeconds',
    'sessionIdleSeconds',
    'codeTtlSeconds',
    'refreshGraceSeconds',
    'liveMaxConnections',
    'maxBodyBytes',
    'scryptCost',
    'databasePoolSize',
    'scramIterations',
    'auditRetentionDays',
  ] as const) {
    if (!Number.isInteger(config[key]) || config[key] <= 0)
      throw new Error(`${key} must be a positive integer`)
  }
  if (config.liveValidationSecret !== '' && config.liveValidationSecret.length < 32) {
    throw new Error('liveValidationSecret must be at least 32 characters (or empty to disable)')
  }
  // scrypt needs a power of two; catching it here beats failing every sign-in later.
  if (config.scryptCost < 2 || (config.scryptCost & (config.scryptCost - 1)) !== 0) {
    throw new Error('scryptCost must be a power of two, e.g. 32768')
  }
  if (config.databaseUrl !== '' && !/^postgres(ql)?:\/\//.test(config.databaseUrl)) {
    throw new Error('databaseUrl must be a postgres:// URL (or empty for the SQLite store)')
  }
  if (config.redisUrl !== '' && !/^rediss?:\/\//.test(config.redisUrl)) {
    throw new Error('redisUrl must be a redis:// or rediss:// URL (or empty for one instance)')
  }
  const trustedProxies = Object.freeze([...config.trustedProxies])
  trustedProxiesOf(trustedProxies) // throws on an entry that is not an address or CIDR
  return Object.freeze({ ...config, trustedProxies })
}
