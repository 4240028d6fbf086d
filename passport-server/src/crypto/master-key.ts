import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

/**
 * The key-encryption key: 32 bytes the operator keeps outside the database
 * (`PASSPORT_MASTER_KEY`, or a file named by `PASSPORT_MASTER_KEY_FILE`). The signing keys and
 * the authkey key are stored sealed under it (AES-256-GCM), so a copy of the database alone
 * (a backup, a stolen disk image) signs no token and opens or makes no authkey.
 */
export type MasterKey = KeyObject

const KEY_BYTES = 32
const SEALED_PREFIX = 'sealed:v1:'

/** 32 bytes written as base64, base64url or hex (surrounding whitespace ignored). */
export function parseMasterKey(text: string): MasterKey {
  const value = text.trim()
  const bytes = /^[0-9a-fA-F]{64}$/.test(value)
    ? Buffer.from(value, 'hex')
    : /^[A-Za-z0-9+/_-]{43}=?$/.test(value)
      ? Buffer.from(value, 'base64url')
      : null
  if (!bytes || bytes.length !== KEY_BYTES) {
    throw new Error('the master key must be 32 random bytes, written as base64 or hex (64 digits)')
  }
  return createSecretKey(bytes)
}

/**
 * Reads a key file. Refused when other users may read it: like ssh with its private keys, a key
 * anyone on the machine can read protects nothing.
 */
export function readMasterKeyFile(file: string): MasterKey {
  const mode = fs.statSync(file).mode
  if ((mode & 0o077) !== 0) {
    throw new Error(`master key file ${file} is readable by other users: chmod 600 it`)
  }
  return parseMasterKey(fs.readFileSync(file, 'utf8'))
}

/** Reads the key file, or creates it (mode 0600, never overwriting) with a fresh random key. */
export function readOrCreateMasterKeyFile(file: string): MasterKey {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(file, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { mode: 0o600, flag: 'wx' })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  return readMasterKeyFile(file)
}

export function isSealedSecret(value: string): boolean {
  return value.startsWith(SEALED_PREFIX)
}

/**
 * Seals a stored secret. Its name is authenticated with it, so one sealed value moved to another
 * name fails to open.
 */
export function sealSecret(key: MasterKey, name: string, plaintext: string): string {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  cipher.setAAD(Buffer.from(name, 'utf8'))
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return SEALED_PREFIX + [iv, body, cipher.getAuthTag()].map((b) => b.toString('base64url')).join('.')
}

/** The plaintext, or null when this key did not seal it (another master key, or altered). */
export function openSecret(key: MasterKey, name: string, sealed: string): string | null {
  if (!isSealedSecret(sealed)) return null
  const [iv, body, tag] = sealed
    .slice(SEALED_PREFIX.length)
    .split('.')
    .map((part) => Buffer.from(part, 'base64url'))
  if (!iv || !body || !tag || iv.length !== 12 || tag.length !== 16) return null
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv)
    decipher.setAAD(Buffer.from(name, 'utf8'))
    decipher.setAuthTag(tag)
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8')
  } catch {
    return null
  }
}

/**
 * The operator's master key: given inline (`PASSPORT_MASTER_KEY`) or by file
 * (`PASSPORT_MASTER_KEY_FILE`); null when neither is set. Both set is a mistake, not a choice.
 */
export function masterKeyFrom(source: {
  key?: string | undefined
  file?: string | undefined
}): MasterKey | null {
  if (source.key && source.file) {
    throw new Error('set PASSPORT_MASTER_KEY or PASSPORT_MASTER_KEY_FILE, not both')
  }
  if (source.key) return parseMasterKey(source.key)
  if (source.file) return readMasterKeyFile(source.file)
  return null
}

export const NO_MASTER_KEY_MESSAGE = `passport: no master key, so it will not start.
The signing keys and the authkey key are stored sealed under a key that is not in the database.
Make one once and keep it apart from the data folder and its backups:

  node -e "console.log(require('node:crypto').randomBytes(32).toString('base64'))" > /etc/passport/master.key
  chmod 600 /etc/passport/master.key

then start with PASSPORT_MASTER_KEY_FILE=/etc/passport/master.key (or PASSPORT_MASTER_KEY=<that value>).
The demo (npm start) made data/master.key for its own data: PASSPORT_MASTER_KEY_FILE=data/master.key.`
