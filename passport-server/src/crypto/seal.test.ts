import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { randomSecret } from './random.ts'
import { openForHolder, sealForHolder } from './seal.ts'

describe('sealForHolder / openForHolder', () => {
  it('opens for the holder of the secret only, and refuses an altered seal', () => {
    const secret = randomSecret()
    const sealed = sealForHolder(secret, '{"access_token":"x"}')
    expect(openForHolder(secret, sealed)).toBe('{"access_token":"x"}')
    expect(openForHolder(randomSecret(), sealed)).toBeNull()
    const [iv, body, tag] = sealed.split('.') as [string, string, string]
    const flipped = Buffer.from(body, 'base64url')
    flipped[0] = (flipped[0] ?? 0) ^ 1
    expect(openForHolder(secret, [iv, flipped.toString('base64url'), tag].join('.'))).toBeNull()
    expect(openForHolder(secret, `${iv}.${body}`)).toBeNull()
  })

  it('opens what the earlier derivation sealed (Buffer in, Buffer key): same HKDF bytes', () => {
    // A store keeps sealed answers across an upgrade for the grace window; they must still open.
    const secret = randomSecret()
    const key = Buffer.from(
      hkdfSync(
        'sha256',
        Buffer.from(secret),
        Buffer.alloc(0),
        Buffer.from('passport refresh successor v1'),
        32,
      ),
    )
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', key, iv)
    const body = Buffer.concat([cipher.update('earlier answer', 'utf8'), cipher.final()])
    const sealed = [iv, body, cipher.getAuthTag()].map((b) => b.toString('base64url')).join('.')
    expect(openForHolder(secret, sealed)).toBe('earlier answer')
  })
})
