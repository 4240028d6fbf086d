import type { Context } from 'hono'
import { ErrorCode } from '../../passport-frame/src/protocol/codes.ts'

export { ErrorCode }

type Status = 400 | 401 | 403 | 404 | 405 | 413 | 415 | 429 | 500 | 503

const defaultStatus: Record<ErrorCode, Status> = {
  invalid_request: 400,
  invalid_token: 401,
  invalid_grant: 400,
  invalid_client: 401,
  invalid_authkey: 400,
  origin_not_allowed: 403,
  login_required: 401,
  access_denied: 403,
  not_found: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  temporarily_unavailable: 503,
  server_error: 500,
  timeout: 503,
  invalid_dpop_proof: 401,
  use_dpop_nonce: 401,
}

/**
 * An expected failure with a stable code. Its description is written for the caller and must
 * never contain secrets or internal detail; anything that is not a PassportError becomes a
 * bare `500 server_error`.
 */
export class PassportError extends Error {
  readonly code: ErrorCode
  readonly status: Status
  readonly description: string | undefined
  readonly extra: Record<string, string> | undefined
  /** For 429 and 503: how long the client should wait (`Retry-After`). */
  readonly retryAfterSeconds: number

  constructor(
    code: ErrorCode,
    description?: string,
    options?: {
      status?: Status
      cause?: unknown
      extra?: Record<string, string>
      retryAfterSeconds?: number
    },
  ) {
    super(description ?? code, { cause: options?.cause })
    this.name = 'PassportError'
    this.code = code
    this.status = options?.status ?? defaultStatus[code]
    this.description = description
    this.extra = options?.extra
    this.retryAfterSeconds = options?.retryAfterSeconds ?? 1
  }
}

/** Raised by a store when it cannot answer; the app fails closed with 503. */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super('store unavailable', { cause })
    this.name = 'StoreUnavailableError'
  }
}

export function errorBody(
  code: ErrorCode,
  description?: string,
  extra?: Record<string, string>,
): Record<string, string> {
  return description === undefined
    ? { error: code, ...extra }
    : { error: code, error_description: description, ...extra }
}

export type Logger = (event: string, fields?: Record<string, unknown>) => void

/**
 * What the log may say about an unexpected error: its class and a shortened message with
 * anything token-like cut out. Messages can quote their input (a JSON parse error quotes the
 * text it choked on, which may be a token); the stack is never logged.
 */
export function errorFields(err: unknown): { error: string; message: string } {
  const name = err instanceof Error ? err.name : typeof err
  const raw = err instanceof Error ? err.message : String(err)
  const message = raw
    .replace(/"[^"]*"|'[^']*'/g, '"…"')
    .replace(/[A-Za-z0-9_+/=.~-]{20,}/g, '[redacted]')
    .slice(0, 200)
  return { error: name, message }
}

/** Hono `onError`: the error owns its response; everything unexpected is logged and hidden. */
export function createErrorHandler(log: Logger) {
  return (err: Error, c: Context): Response => {
    c.header('Cache-Control', 'no-store')
    if (err instanceof PassportError) {
      if (err.code === 'invalid_token') c.header('WWW-Authenticate', 'Bearer error="invalid_token"')
      if (err.code === 'invalid_dpop_proof' || err.code === 'use_dpop_nonce') {
        c.header('WWW-Authenticate', `DPoP error="${err.code}", algs="ES256"`)
      }
      if (err.status === 503 || err.status === 429) c.header('Retry-After', String(err.retryAfterSeconds))
      return c.json(errorBody(err.code, err.description, err.extra), err.status)
    }
    if (err instanceof StoreUnavailableError) {
      log('store_unavailable', errorFields(err.cause))
      c.header('Retry-After', '1')
      return c.json(errorBody('temporarily_unavailable'), 503)
    }
    log('server_error', { listener: 'http', ...errorFields(err), path: c.req.path.slice(0, 200) })
    return c.json(errorBody('server_error'), 500)
  }
}
