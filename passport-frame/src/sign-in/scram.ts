import { encodeSaslName, parseScramAttributes } from '../protocol/sign-in.ts'

/**
 * SCRAM-SHA-256 on the page (RFC 5802 / RFC 7677), WebCrypto only: PBKDF2 for SaltedPassword,
 * HMAC-SHA-256 and SHA-256 for the keys. The password goes into PBKDF2 and nowhere else; what
 * leaves the page is the proof, which is useless without this exchange's nonces.
 */
const te = new TextEncoder()

export function toBase64(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += String.fromCharCode(b)
  return btoa(s)
}

export function fromBase64(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null
  const s = atob(text)
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

async function hmac(key: Uint8Array, data: string | Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    'raw',
    key as Uint8Array<ArrayBuffer>,
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  )
  const bytes = typeof data === 'string' ? te.encode(data) : data
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, bytes as Uint8Array<ArrayBuffer>))
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>))
}

/** PBKDF2-HMAC-SHA-256 of the NFKC-normalised password (as the passport normalises it). */
export async function saltedPassword(password: string, salt: Uint8Array, iterations: number) {
  const base = await crypto.subtle.importKey('raw', te.encode(password.normalize('NFKC')), 'PBKDF2', false, [
    'deriveBits',
  ])
  const bits = await crypto.subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: salt as Uint8Array<ArrayBuffer>, iterations },
    base,
    256,
  )
  return new Uint8Array(bits)
}

/** A client nonce: 24 random bytes, base64 (printable, no comma). */
export function clientNonce(): string {
  return toBase64(crypto.getRandomValues(new Uint8Array(24)))
}

export function clientFirstBare(username: string, nonce: string): string {
  return `n=${encodeSaslName(username)},r=${nonce}`
}

/** Most iterations the page accepts: a server asking for more is refused (no page-freezing). */
const MAX_ITERATIONS = 10_000_000
const MIN_ITERATIONS = 4096

/**
 * The client-final message for a server-first, and the server signature the server-final must
 * carry. Null when the server-first is malformed or does not extend this exchange's nonce.
 */
export async function clientFinal(input: {
  password: string
  clientFirstBare: string
  clientNonce: string
  serverFirst: string
  /** GS2 header followed by the channel-binding data. */
  channelBinding: string
}): Promise<{ message: string; serverSignature: string } | null> {
  const attrs = parseScramAttributes(input.serverFirst)
  const nonce = attrs?.get('r')
  const salt = fromBase64(attrs?.get('s') ?? '')
  const iterations = Number(attrs?.get('i'))
  if (
    !nonce?.startsWith(input.clientNonce) ||
    nonce.length <= input.clientNonce.length ||
    !salt ||
    salt.length === 0 ||
    !Number.isSafeInteger(iterations) ||
    iterations < MIN_ITERATIONS ||
    iterations > MAX_ITERATIONS
  ) {
    return null
  }
  const salted = await saltedPassword(input.password, salt, iterations)
  const clientKey = await hmac(salted, 'Client Key')
  const storedKey = await sha256(clientKey)
  const withoutProof = `c=${toBase64(te.encode(input.channelBinding))},r=${nonce}`
  const authMessage = `${input.clientFirstBare},${input.serverFirst},${withoutProof}`
  const clientSignature = await hmac(storedKey, authMessage)
  const proof = clientKey.map((b, i) => b ^ (clientSignature[i] as number))
  const serverKey = await hmac(salted, 'Server Key')
  return {
    message: `${withoutProof},p=${toBase64(proof)}`,
    serverSignature: toBase64(await hmac(serverKey, authMessage)),
  }
}

/** Whether the server-final proves the passport knows this account's ServerKey. */
export function checkServerFinal(serverFinal: string, expectedSignature: string): boolean {
  const attrs = parseScramAttributes(serverFinal)
  return attrs !== null && !attrs.has('e') && attrs.get('v') === expectedSignature
}

/**
 * A new SCRAM credential made on the page (a password change): the new password goes into
 * PBKDF2 here and only StoredKey and ServerKey leave, sealed.
 */
export async function newCredential(password: string, iterations: number) {
  const salt = crypto.getRandomValues(new Uint8Array(16))
  const salted = await saltedPassword(password, salt, iterations)
  const clientKey = await hmac(salted, 'Client Key')
  return {
    salt: toBase64(salt),
    iterations,
    stored_key: toBase64(await sha256(clientKey)),
    server_key: toBase64(await hmac(salted, 'Server Key')),
  }
}
