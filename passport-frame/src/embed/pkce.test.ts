import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { pkceChallenge, randomToken } from './pkce.ts'

describe('pkceChallenge', () => {
  it('matches the RFC 7636 Appendix B example', async () => {
    // The RFC's value is "…Melhoa2Ow…" (an "a", not an "e"); node:crypto agrees below.
    expect(await pkceChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe(
      'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    )
  })

  it('is the unpadded base64url SHA-256 of the verifier', async () => {
    for (let i = 0; i < 20; i++) {
      const verifier = randomToken()
      const expected = createHash('sha256').update(verifier).digest('base64url')
      expect(await pkceChallenge(verifier)).toBe(expected)
    }
  })

  it('produces 43 characters of the base64url alphabet, with no padding', async () => {
    const challenge = await pkceChallenge('x'.repeat(128))
    expect(challenge).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })
})

describe('randomToken', () => {
  it('is a valid PKCE verifier: 43 unreserved characters (RFC 7636 §4.1: 43-128 of [A-Za-z0-9-._~])', () => {
    for (let i = 0; i < 200; i++) expect(randomToken()).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })

  it('carries 256 bits: it decodes to 32 bytes', () => {
    expect(Buffer.from(randomToken(), 'base64url')).toHaveLength(32)
  })

  it('does not repeat', () => {
    const seen = new Set(Array.from({ length: 1000 }, () => randomToken()))
    expect(seen.size).toBe(1000)
  })

  it('uses the whole alphabet over many draws (not a fixed or hex-only source)', () => {
    const chars = new Set(Array.from({ length: 200 }, () => randomToken()).join(''))
    expect(chars.size).toBe(64)
  })
})
