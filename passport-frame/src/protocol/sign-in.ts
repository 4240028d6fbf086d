/**
 * The sign-in socket's wire: SCRAM-SHA-256 (RFC 5802 message shapes, RFC 7677 hash) between
 * the passport's sign-in page and the passport, over a WebSocket at `SIGN_IN_PATH` with the
 * sub-protocol `SIGN_IN_PROTOCOL` and the passport's own `Origin` (403 otherwise). Both ends
 * import this file. See docs/sign-in.md for the exchange message by message.
 *
 * Each SCRAM message travels verbatim in `message`, inside a JSON envelope that adds what the
 * RFC leaves to the transport: the site being signed in to (client-first), the client address
 * the passport sees (server-first), the sealed result (server-final). The channel binding
 * (`c=`) is `SIGN_IN_GS2_HEADER` followed by `bindingData(address, site)`, so a proof made for
 * one address or site proves nothing for another.
 *
 * @example
 * // page → passport
 * { type: 'client_first', site: 'news', message: 'p=passport-address-site,,n=alice,r=…' }
 * // passport → page
 * { type: 'server_first', address: '127.0.0.1', message: 'r=…,s=…,i=600000' }
 * // page → passport (`seal`: a one-time content key wrapped to the passport's `enc` key)
 * { type: 'client_final', message: 'c=…,r=…,p=…', seal: '<JWE>' }
 * // passport → page, after which the page posts `result` top-level to `SIGN_IN_COMPLETE_PATH`
 * { type: 'server_final', message: 'v=…', result: '<JWE under the content key>' }
 */
export const SIGN_IN_PATH = '/login/socket'
export const SIGN_IN_PROTOCOL = 'passport.scram.v1'
/** Where the page posts the one-time result (an ordinary top-level form post). */
export const SIGN_IN_COMPLETE_PATH = '/login/scram'
/** Channel-binding type: the client address the passport sees and the site signed in to. */
export const SIGN_IN_CB_NAME = 'passport-address-site'
export const SIGN_IN_GS2_HEADER = `p=${SIGN_IN_CB_NAME},,`
/** How long a server nonce answers; a client-final after it is refused `nonce_expired`. */
export const SIGN_IN_NONCE_TTL_MS = 60_000
/** Largest message either side sends (the client-final carries a JWE). */
export const SIGN_IN_MAX_BYTES = 4096

/** The channel-binding data: what `c=` carries after the GS2 header. */
export function bindingData(address: string, site: string): string {
  return `${address}\n${site}`
}

/** Refusal codes, stable: tests and the page branch on them, never on text. */
export const SignInErrorCode = {
  /** Not JSON, not the expected message at this step, or a malformed SCRAM message. */
  invalid_message: 'invalid_message',
  /** The client-final's nonce is not this socket's current one (another socket's, or made up). */
  nonce_mismatch: 'nonce_mismatch',
  /** The server nonce was already answered once on this socket. */
  nonce_used: 'nonce_used',
  /** The server nonce is older than `SIGN_IN_NONCE_TTL_MS`. */
  nonce_expired: 'nonce_expired',
  /** The channel binding names another address or site. */
  binding_mismatch: 'binding_mismatch',
  /** Wrong password or unknown user: one answer for both. */
  invalid_proof: 'invalid_proof',
  /** Too many failures for this account or from this address (`retry_after` seconds). */
  throttled: 'throttled',
  /** The site is not registered (or does not allow password sign-in). `site: ''` is the passport itself (re-authentication). */
  unknown_site: 'unknown_site',
  /** The sealed key (`seal`) is malformed, replayed, for another audience or another key. */
  invalid_seal: 'invalid_seal',
  server_error: 'server_error',
} as const
export type SignInErrorCode = (typeof SignInErrorCode)[keyof typeof SignInErrorCode]

export type SignInClientFirst = { type: 'client_first'; site: string; message: string }
export type SignInServerFirst = { type: 'server_first'; address: string; message: string }
export type SignInClientFinal = { type: 'client_final'; message: string; seal: string }
export type SignInServerFinal = { type: 'server_final'; message: string; result: string }
/**
 * A refusal. `fallback` (with `invalid_proof`, while the password form is on): a one-time
 * ticket with which the page may post the plain form once for this attempt, the way an
 * account still on an old password hash signs in (docs/sign-in.md, "Fallbacks").
 */
export type SignInError = { type: 'error'; code: SignInErrorCode; retry_after?: number; fallback?: string }

export type SignInClientMessage = SignInClientFirst | SignInClientFinal
export type SignInServerMessage = SignInServerFirst | SignInServerFinal | SignInError

/** The page's messages, checked by shape; null for anything else. */
export function parseSignInClientMessage(text: string): SignInClientMessage | null {
  let m: unknown
  try {
    m = JSON.parse(text)
  } catch {
    return null
  }
  if (typeof m !== 'object' || m === null) return null
  const o = m as Record<string, unknown>
  if (typeof o.message !== 'string' || o.message.length > SIGN_IN_MAX_BYTES) return null
  if (o.type === 'client_first' && typeof o.site === 'string' && o.site.length <= 64) {
    return { type: 'client_first', site: o.site, message: o.message }
  }
  if (o.type === 'client_final' && typeof o.seal === 'string' && o.seal.length <= SIGN_IN_MAX_BYTES) {
    return { type: 'client_final', message: o.message, seal: o.seal }
  }
  return null
}

/** The passport's messages, checked by shape; null for anything else. */
export function parseSignInServerMessage(text: string): SignInServerMessage | null {
  let m: unknown
  try {
    m = JSON.parse(text)
  } catch {
    return null
  }
  if (typeof m !== 'object' || m === null) return null
  const o = m as Record<string, unknown>
  if (o.type === 'error' && typeof o.code === 'string' && o.code in SignInErrorCode) {
    return {
      type: 'error',
      code: o.code as SignInErrorCode,
      ...(typeof o.retry_after === 'number' ? { retry_after: o.retry_after } : {}),
      ...(typeof o.fallback === 'string' ? { fallback: o.fallback } : {}),
    }
  }
  if (typeof o.message !== 'string') return null
  if (o.type === 'server_first' && typeof o.address === 'string') {
    return { type: 'server_first', address: o.address, message: o.message }
  }
  if (o.type === 'server_final' && typeof o.result === 'string') {
    return { type: 'server_final', message: o.message, result: o.result }
  }
  return null
}

/**
 * A SCRAM message's attributes (`a=value,b=value`), in order; null if one is malformed. Values
 * may contain `=` (base64), never `,`.
 */
export function parseScramAttributes(message: string): Map<string, string> | null {
  const out = new Map<string, string>()
  for (const part of message.split(',')) {
    const m = /^([A-Za-z])=(.*)$/s.exec(part)
    if (!m || out.has(m[1] as string)) return null
    out.set(m[1] as string, m[2] as string)
  }
  return out
}

/** RFC 5802 `saslname`: `=` and `,` escaped as `=3D` and `=2C`. */
export function encodeSaslName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C')
}

/** The inverse of `encodeSaslName`; null where an `=` starts no valid escape. */
export function decodeSaslName(value: string): string | null {
  if (/=(?!3D|2C)/.test(value)) return null
  return value.replace(/=2C/g, ',').replace(/=3D/g, '=')
}

/** A nonce: printable ASCII without `,` (RFC 5802 `printable`). */
export const SCRAM_NONCE = /^[\x21-\x2b\x2d-\x7e]{16,128}$/

/**
 * The account page's password change (docs/sign-in.md): the passport never sees the new
 * password, so the page alone judges it, by these rules (the CLI's `user password` asks for the
 * same length). Answers why it is refused, or null.
 */
export const MIN_NEW_PASSWORD_LENGTH = 8
export type NewPasswordProblem = 'too_short' | 'too_long' | 'same_as_username' | 'same_as_current'
export function newPasswordProblem(
  password: string,
  context: { username: string; current: string },
): NewPasswordProblem | null {
  const chars = [...password.normalize('NFKC')].length
  if (chars < MIN_NEW_PASSWORD_LENGTH) return 'too_short'
  if (chars > 1024) return 'too_long'
  if (password.toLowerCase().includes(context.username.toLowerCase()) && context.username.length > 2) {
    return 'same_as_username'
  }
  if (password === context.current) return 'same_as_current'
  return null
}
