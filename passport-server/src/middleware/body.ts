import type { Context, MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { PassportError } from '../errors.ts'

/**
 * Refuses oversized bodies with 413 before any handler reads them (declared or chunked).
 *
 * A declared length is judged from the headers here, as hono's `bodyLimit` judges it, without
 * touching `c.req.raw.body`: on @hono/node-server that getter wraps the socket in a whole fetch
 * `Request` and web stream (about a tenth of a small request's CPU), where the handlers'
 * `c.req.text()` reads the body by a direct path. Chunked bodies still go through `bodyLimit`.
 */
export function limitBody(maxSize: number): MiddlewareHandler {
  const tooLarge = () => {
    throw new PassportError('payload_too_large', `request bodies are limited to ${maxSize} bytes`)
  }
  const streamed = bodyLimit({ maxSize, onError: tooLarge })
  return async (c, next) => {
    const method = c.req.method
    // No body to limit (hono: `!c.req.raw.body`).
    if (method === 'GET' || method === 'HEAD') return next()
    const length = c.req.header('Content-Length')
    if (length !== undefined && c.req.header('Transfer-Encoding') === undefined) {
      return Number.parseInt(length, 10) > maxSize ? tooLarge() : next()
    }
    // `bodyLimit` reads a chunked body whole before the handler runs: a client that garbles or
    // breaks off its chunks makes that read throw, which is its fault (400), not ours (500).
    // (A handler's own error never comes back through `next()`: Hono handles it at its level.)
    try {
      return await streamed(c, next)
    } catch (err) {
      if (err instanceof PassportError) throw err
      throw new PassportError('invalid_request', 'the body could not be read', { cause: err })
    }
  }
}

function mediaType(c: Context): string {
  return (c.req.header('Content-Type') ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
}

/**
 * The body as text. A client that breaks off or garbles its body mid-way (a bad chunk, a reset)
 * makes the read fail: that is its fault, a 400, not a server error.
 */
async function readBodyText(c: Context): Promise<string> {
  try {
    return await c.req.text()
  } catch (err) {
    throw new PassportError('invalid_request', 'the body could not be read', { cause: err })
  }
}

/** A form body as single-valued fields. Repeated fields are an error (RFC 6749 §3.1). */
export async function readForm(c: Context): Promise<Record<string, string>> {
  if (mediaType(c) !== 'application/x-www-form-urlencoded') {
    throw new PassportError('unsupported_media_type', 'expected application/x-www-form-urlencoded')
  }
  const params = new URLSearchParams(await readBodyText(c))
  const out: Record<string, string> = Object.create(null)
  for (const [key, value] of params) {
    if (key in out) throw new PassportError('invalid_request', `repeated parameter: ${key.slice(0, 32)}`)
    out[key] = value
  }
  return out
}

/** A JSON object body. Anything else (arrays, scalars, malformed text) is `invalid_request`. */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  if (mediaType(c) !== 'application/json') {
    throw new PassportError('unsupported_media_type', 'expected application/json')
  }
  const text = await readBodyText(c)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new PassportError('invalid_request', 'the body is not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new PassportError('invalid_request', 'the body must be a JSON object')
  }
  return value as Record<string, unknown>
}

/** A required string field of bounded length. */
export function requireString(body: Record<string, unknown>, name: string, maxLength = 4096): string {
  const value = Object.hasOwn(body, name) ? body[name] : undefined
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw new PassportError('invalid_request', `missing or invalid parameter: ${name}`)
  }
  return value
}
