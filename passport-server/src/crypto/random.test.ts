import { describe, expect, it } from 'vitest'
import { pkceChallenge, randomSecret, sha256, timeOrderedId } from './random.ts'

describe('random secrets and hashes', () => {
  it('makes URL-safe 256-bit secrets that do not repeat', () => {
    const secrets = new Set(Array.from({ length: 100 }, () => randomSecret()))
    expect(secrets.size).toBe(100)
    for (const secret of secrets) {
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(Buffer.from(secret, 'base64url')).toHaveLength(32)
    }
  })

  it('makes version-7 UUIDs that start with their millisecond, sort by it, and do not repeat', () => {
    const at = Date.UTC(2026, 10, 25, 12, 0, 0, 123)
    const ids = Array.from({ length: 200 }, (_, i) => timeOrderedId(at + i))
    expect(new Set(ids).size).toBe(200)
    expect([...ids].sort()).toEqual(ids)
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(Number.parseInt((ids[0] as string).replace('-', '').slice(0, 12), 16)).toBe(at)
    // The same millisecond still gives different ids (74 random bits).
    expect(timeOrderedId(at)).not.toBe(timeOrderedId(at))
  })

  it('hashes with SHA-256 into base64url (known answer)', () => {
    expect(sha256('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0')
  })

  it('computes the PKCE S256 challenge of the RFC 7636 appendix B example', () => {
    expect(pkceChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe(
      'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    )
  })
})
