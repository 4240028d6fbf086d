import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto'

/**
 * Seals a value so that only the holder of `secret` can open it: AES-256-GCM under a key
 * derived from the secret with HKDF. The refresh path keeps each successor's answer sealed
 * under the credential it replaced, so a lost response can be replayed to the tab that holds
 * that credential while a copy of the database alone reveals nothing usable.
 */
const INFO = Buffer.from('passport refresh successor v1')
const NO_SALT = Buffer.alloc(0)

/**
 * HKDF-SHA256 of the secret (UTF-8), as a KeyObject. The secret goes in as a string and the key
 * out as a KeyObject because node:crypto probes a Buffer passed as a key with a throw and catch
 * (about half the cost of sealing); the bytes are the same.
 */
function keyFor(secret: string): KeyObject {
  return createSecretKey(Buffer.from(hkdfSync('sha256', secret, NO_SALT, INFO, 32)))
}

export function sealForHolder(secret: string, plaintext: string): string {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', keyFor(secret), iv)
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return [iv, body, cipher.getAuthTag()].map((b) => b.toString('base64url')).join('.')
}

/** The plaintext, or null when the secret is not the one it was sealed for (or it was altered). */
export function openForHolder(secret: string, sealed: string): string | null {
  const [iv, body, tag] = sealed.split('.').map((part) => Buffer.from(part, 'base64url'))
  if (!iv || !body || !tag || iv.length !== 12 || tag.length !== 16) return null
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyFor(secret), iv)
    decipher.setAuthTag(tag)
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8')
  } catch {
    return null
  }
}
