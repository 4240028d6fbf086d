import { describe, expect, it } from 'vitest'
import { createDummyHash, hashPassword, verifyPassword } from './password.ts'

const COST = 1024

describe('password hashing', () => {
  it('hashes into scrypt$N$r$p$salt$hash and verifies the same password', async () => {
    const stored = await hashPassword('correct horse battery staple', COST)
    const [scheme, n, r, p, salt, hash] = stored.split('$')
    expect([scheme, n, r, p]).toEqual(['scrypt', String(COST), '8', '1'])
    expect(Buffer.from(salt ?? '', 'base64url')).toHaveLength(16)
    expect(Buffer.from(hash ?? '', 'base64url')).toHaveLength(32)
    expect(stored).not.toContain('correct horse')
    expect(await verifyPassword('correct horse battery staple', stored)).toBe(true)
  })

  it('salts every hash, so the same password hashes differently', async () => {
    const a = await hashPassword('same password', COST)
    const b = await hashPassword('same password', COST)
    expect(a).not.toBe(b)
    expect(await verifyPassword('same password', b)).toBe(true)
  })

  it('refuses a wrong password, including near misses', async () => {
    const stored = await hashPassword('correct horse battery staple', COST)
    for (const guess of [
      '',
      'correct horse battery stapl',
      'Correct horse battery staple',
      'correct horse battery staple ',
    ]) {
      expect(await verifyPassword(guess, stored)).toBe(false)
    }
  })

  it('treats compatibility-equivalent Unicode passwords as the same (NFKC)', async () => {
    const stored = await hashPassword('caf\u00e9-\ufb01le-\uff21', COST)
    // Decomposed é (canonical), plain "fi" for the ligature and ASCII A for fullwidth Ａ (compatibility).
    expect(await verifyPassword('cafe\u0301-file-A', stored)).toBe(true)
  })

  it.each([
    ['an empty string', ''],
    ['a bare word', 'x'],
    ['another scheme', 'bcrypt$2b$10$abcdefghijklmnopqrstuv'],
    ['missing parts', 'scrypt$1024$8$1'],
    ['an empty salt and hash', 'scrypt$1024$8$1$$'],
    ['a non-numeric cost', 'scrypt$abc$8$1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA'],
    ['a cost that is not a power of two', 'scrypt$1000$8$1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA'],
    ['a zero cost', 'scrypt$0$8$1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA'],
    ['a negative block size', 'scrypt$1024$-8$1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA'],
    ['a truncated hash', 'scrypt$1024$8$1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA'],
  ])('returns false, without throwing, for a malformed stored hash: %s', async (_name, stored) => {
    await expect(verifyPassword('password', stored)).resolves.toBe(false)
  })

  it('returns false for a real hash whose hash part was cut short', async () => {
    const stored = await hashPassword('password', COST)
    await expect(verifyPassword('password', stored.slice(0, -4))).resolves.toBe(false)
  })

  it('makes a dummy hash at the requested cost that no password verifies against', async () => {
    const dummy = await createDummyHash(COST)
    expect(dummy.split('$').slice(0, 4)).toEqual(['scrypt', String(COST), '8', '1'])
    expect(await createDummyHash(COST)).not.toBe(dummy)
    for (const guess of ['', 'password', 'alice-password-1', 'undefined', 'null']) {
      expect(await verifyPassword(guess, dummy)).toBe(false)
    }
  })
})
