import { AsyncLocalStorage } from 'node:async_hooks'
import { randomUUID } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import type { Logger } from '../errors.ts'

/**
 * The request a log line belongs to. Every line written while a request is handled carries its
 * id (`request_id`), through every `await` (AsyncLocalStorage), so one request's lines can be
 * found together, and the caller sees the same id in `X-Request-Id`.
 */
const context = new AsyncLocalStorage<{ requestId: string }>()

export const REQUEST_ID_HEADER = 'X-Request-Id'
/**
 * A caller's (or its proxy's) id is taken only when it is well-formed: short, and of characters
 * that cannot break a log line or a header (a UUID, a ULID, a trace id). Anything else is
 * replaced by one of ours, never echoed.
 */
const WELL_FORMED = /^[A-Za-z0-9._:-]{8,64}$/

export function currentRequestId(): string | undefined {
  return context.getStore()?.requestId
}

/**
 * Anything shaped like a JWT or JWE (dot-joined base64url runs). No code path logs one; this is
 * the net under them all, so that a token passed to the log by mistake never reaches it.
 */
const COMPACT_TOKEN = /[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*/
const COMPACT_TOKENS = new RegExp(COMPACT_TOKEN.source, 'g')

const wrapped = new WeakSet<Logger>()

/** A logger that adds the current request's id to each line and redacts token-shaped values. */
export function withRequestId(log: Logger): Logger {
  if (wrapped.has(log)) return log
  const out: Logger = (event, fields) => {
    const requestId = currentRequestId()
    let safe = fields
    if (fields) {
      for (const [key, value] of Object.entries(fields)) {
        if (typeof value === 'string' && value.length >= 22 && COMPACT_TOKEN.test(value)) {
          safe = { ...safe, [key]: value.replace(COMPACT_TOKENS, '[redacted]') }
        }
      }
    }
    log(event, requestId === undefined ? safe : { request_id: requestId, ...safe })
  }
  wrapped.add(out)
  return out
}

/**
 * Opens the request's context: takes a well-formed `X-Request-Id` or makes one, echoes it on
 * the answer, and writes one `http_request` line when the answer is ready (method, route
 * pattern, status, duration: never the query, a header or a body).
 */
export function requestContext(log: Logger): MiddlewareHandler {
  return (c, next) => {
    const offered = c.req.header(REQUEST_ID_HEADER)
    const requestId = offered !== undefined && WELL_FORMED.test(offered) ? offered : randomUUID()
    return context.run({ requestId }, async () => {
      const started = performance.now()
      try {
        await next()
      } finally {
        // On the answer's own headers: Hono's `c.header()` after the handler rebuilds the answer
        // around a body stream, which costs the server adapter its fast path on every request.
        c.res.headers.set(REQUEST_ID_HEADER, requestId)
        const status = c.res.status
        log('http_request', {
          method: c.req.method.slice(0, 10),
          route: status === 404 && c.req.routePath === '/*' ? 'unmatched' : c.req.routePath,
          status,
          ms: Math.round((performance.now() - started) * 10) / 10,
        })
      }
    })
  }
}
