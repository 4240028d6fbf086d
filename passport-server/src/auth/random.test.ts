import { describe, expect, it } from 'vitest'
import { pkceChallenge, randomSecret, sha256 } from './random.ts'

describe('random secrets and hashes', () => {
  it('makes URL-safe 256-bit secrets that do not repeat', () => {
    const secrets = new Set(Array.from({ length: 100 }, () => randomSecret()))
    expect(secrets.size).toBe(100)
    for (const secret of secrets) {
      expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(Buffer.from(secret, 'base64url')).toHaveLength(32)
    }
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
