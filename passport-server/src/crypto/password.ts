import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto'
import { SCRAM_SCHEME, verifyScramPassword } from './scram.ts'

const KEY_LENGTH = 32
const R = 8
const P = 1

function scryptAsync(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, KEY_LENGTH, options, (err, key) =>
      err ? reject(err) : resolve(key),
    )
  })
}

function maxmem(n: number): number {
  return 128 * n * R * 2
}

/** `scrypt$N$r$p$salt$hash`, base64url parts. The password itself is never stored or logged. */
export async function hashPassword(password: string, cost: number): Promise<string> {
  const salt = randomBytes(16)
  const key = await scryptAsync(password, salt, { N: cost, r: R, p: P, maxmem: maxmem(cost) })
  return ['scrypt', cost, R, P, salt.toString('base64url'), key.toString('base64url')].join('$')
}

/** Whether `stored` is an scrypt hash from before SCRAM credentials (upgraded at the next sign-in). */
export function isLegacyHash(stored: string): boolean {
  return stored.startsWith('scrypt$')
}

/** Checks a password against a stored SCRAM credential (PBKDF2) or an scrypt hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (stored.startsWith(`${SCRAM_SCHEME}$`)) return verifyScramPassword(password, stored)
  const [scheme, n, r, p, salt, hash] = stored.split('$')
  if (scheme !== 'scrypt' || !salt || !hash) return false
  const N = Number(n)
  const expected = Buffer.from(hash, 'base64url')
  let actual: Buffer
  try {
    actual = await scryptAsync(password, Buffer.from(salt, 'base64url'), {
      N,
      r: Number(r),
      p: Number(p),
      maxmem: maxmem(N),
    })
  } catch {
    // Parameters node's scrypt refuses (NaN, N not a power of two, r out of range): a malformed
    // stored hash verifies nothing; it must not turn a sign-in into a server error.
    return false
  }
  // Constant-time compare: the time taken must not tell how much of the hash matched.
  return actual.length === expected.length && timingSafeEqual(actual, expected)
}

/**
 * A hash of a random password at the same cost. Checking an unknown username against it
 * takes as long as a real check, so response time does not reveal which usernames exist.
 */
export function createDummyHash(cost: number): Promise<string> {
  return hashPassword(randomBytes(16).toString('base64url'), cost)
}
