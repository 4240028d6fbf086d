import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash) on the passport's side: node:crypto only.
 *
 * What is stored per user is `scram-sha-256$<iterations>$<salt>$<StoredKey>$<ServerKey>`
 * (base64): StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")) checks a client proof but
 * cannot make one, so a copy of the database signs nobody in (unlike a stored digest the
 * client would answer over). It is also what the password form checks (PBKDF2 again).
 */
export const SCRAM_SCHEME = 'scram-sha-256'
/** OWASP Password Storage Cheat Sheet (2023-): PBKDF2-HMAC-SHA-256, 600,000 iterations. */
export const SCRAM_DEFAULT_ITERATIONS = 600_000
const KEY_BYTES = 32

export interface ScramCredential {
  iterations: number
  salt: Buffer
  storedKey: Buffer
  serverKey: Buffer
}

const hmac = (key: Buffer, data: string | Buffer) => createHmac('sha256', key).update(data).digest()
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest()

/**
 * Passwords are normalised as the page does before PBKDF2: NFKC (SASLprep's core; the same
 * normalisation the scrypt hashes used), so "é" typed two ways is one password.
 */
export function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(password.normalize('NFKC'), salt, iterations, KEY_BYTES, 'sha256', (err, key) =>
      err ? reject(err) : resolve(key),
    )
  })
}

export function credentialFromSaltedPassword(
  salted: Buffer,
  salt: Buffer,
  iterations: number,
): ScramCredential {
  return {
    iterations,
    salt,
    storedKey: sha256(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  }
}

export async function deriveScramCredential(
  password: string,
  salt: Buffer,
  iterations: number,
): Promise<ScramCredential> {
  return credentialFromSaltedPassword(await saltedPassword(password, salt, iterations), salt, iterations)
}

/** A new stored credential for `password` with a fresh random salt. */
export async function hashScramPassword(password: string, iterations: number): Promise<string> {
  return encodeScramCredential(await deriveScramCredential(password, randomBytes(16), iterations))
}

export function encodeScramCredential(c: ScramCredential): string {
  return [
    SCRAM_SCHEME,
    c.iterations,
    c.salt.toString('base64'),
    c.storedKey.toString('base64'),
    c.serverKey.toString('base64'),
  ].join('$')
}

/** The stored credential, or null when `stored` is not one (an scrypt hash, or malformed). */
export function parseScramCredential(stored: string): ScramCredential | null {
  const [scheme, iterations, salt, storedKey, serverKey, extra] = stored.split('$')
  if (scheme !== SCRAM_SCHEME || extra !== undefined || !salt || !storedKey || !serverKey) return null
  const i = Number(iterations)
  if (!Number.isSafeInteger(i) || i < 1) return null
  const c = {
    iterations: i,
    salt: Buffer.from(salt, 'base64'),
    storedKey: Buffer.from(storedKey, 'base64'),
    serverKey: Buffer.from(serverKey, 'base64'),
  }
  return c.storedKey.length === KEY_BYTES && c.serverKey.length === KEY_BYTES ? c : null
}

/** The password form's check against a stored SCRAM credential (constant-time compare). */
export async function verifyScramPassword(password: string, stored: string): Promise<boolean> {
  const c = parseScramCredential(stored)
  if (!c) return false
  const derived = await deriveScramCredential(password, c.salt, c.iterations)
  return timingSafeEqual(derived.storedKey, c.storedKey)
}

/** AuthMessage = client-first-message-bare "," server-first-message "," client-final-without-proof. */
export function authMessage(clientFirstBare: string, serverFirst: string, clientFinalWithoutProof: string) {
  return `${clientFirstBare},${serverFirst},${clientFinalWithoutProof}`
}

/**
 * Checks a ClientProof: ClientKey = proof XOR HMAC(StoredKey, AuthMessage), and
 * SHA-256(ClientKey) must equal StoredKey (constant time). The ServerSignature (proof of the
 * passport's own knowledge of ServerKey) is computed either way, so a wrong proof costs the
 * same time as a right one.
 */
export function verifyClientProof(
  credential: Pick<ScramCredential, 'storedKey' | 'serverKey'>,
  message: string,
  proof: Buffer,
): { ok: boolean; serverSignature: Buffer } {
  const clientSignature = hmac(credential.storedKey, message)
  const serverSignature = hmac(credential.serverKey, message)
  if (proof.length !== KEY_BYTES) return { ok: false, serverSignature }
  const clientKey = Buffer.alloc(KEY_BYTES)
  for (let i = 0; i < KEY_BYTES; i++) clientKey[i] = (proof[i] as number) ^ (clientSignature[i] as number)
  return { ok: timingSafeEqual(sha256(clientKey), credential.storedKey), serverSignature }
}

/**
 * What the passport answers for a username with no SCRAM credential (unknown, or still on an
 * scrypt hash): a salt and keys derived from a server secret and the username, so asking twice
 * gives the same salt (as for a real account) and no proof ever matches.
 */
export function decoyCredential(secret: Buffer, username: string, iterations: number): ScramCredential {
  const key = hmac(secret, `scram-decoy\0${username}`)
  return {
    iterations,
    salt: hmac(key, 'salt').subarray(0, 16),
    storedKey: hmac(key, 'stored'),
    serverKey: hmac(key, 'server'),
  }
}
