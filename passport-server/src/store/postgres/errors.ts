import { StoreUnavailableError } from '../../errors.ts'

/**
 * Which PostgreSQL failures mean "the data cannot be reached right now" (the app answers
 * `503 temporarily_unavailable` and mints nothing), which mean "try the transaction again"
 * (serialisation conflicts), and which are the caller's (a constraint, a bug): those pass through.
 */

/** SQLSTATE classes and codes that say the database cannot serve us now, whatever the query. */
const UNAVAILABLE_CLASSES = new Set([
  '08', // connection exception
  '28', // invalid authorization (a password changed under a running instance)
  '3D', // the database does not exist (dropped, or a wrong URL)
  '53', // insufficient resources: too many connections, disk full, out of memory
  '57', // operator intervention: shutdown, crash recovery, statement_timeout's query_canceled
  '58', // system error: I/O
])
const UNAVAILABLE_CODES = new Set([
  '55P03', // lock_not_available
  '25006', // read_only_sql_transaction: a standby after a failover, until it is promoted
])

/** Serialisation failure and deadlock: nothing was committed, the transaction may run again. */
const RETRYABLE_CODES = new Set(['40001', '40P01'])

/** Errors of the socket under the client. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
])

/** What `pg` and `pg-pool` say, without a code, when the connection is gone or too slow. */
const CLIENT_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|is not queryable|after calling end on the pool|Connection ended|connection timeout/i

const sqlState = (err: unknown): string | null => {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null
}

export function isRetryable(err: unknown): boolean {
  const state = sqlState(err)
  return state !== null && RETRYABLE_CODES.has(state)
}

export function isUnavailable(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true
  const state = sqlState(err)
  if (state !== null) return UNAVAILABLE_CODES.has(state) || UNAVAILABLE_CLASSES.has(state.slice(0, 2))
  const e = err as { code?: unknown; message?: unknown } | null
  if (typeof e?.code === 'string' && NETWORK_CODES.has(e.code)) return true
  // A connect failure to every address of a host arrives as an AggregateError of socket errors.
  if (err instanceof AggregateError) return err.errors.some(isUnavailable)
  return err instanceof Error && CLIENT_MESSAGES.test(err.message)
}

/** Failures to reach the data become `StoreUnavailableError`; anything else is returned as is. */
export function translateError(err: unknown): unknown {
  if (err instanceof StoreUnavailableError) return err
  return isUnavailable(err) ? new StoreUnavailableError(err) : err
}
