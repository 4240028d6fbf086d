import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { checkServerFinal, clientFinal } from '../../../passport-frame/src/sign-in/scram.ts'
import { verifyPassword } from './password.ts'
import {
  authMessage,
  decoyCredential,
  deriveScramCredential,
  encodeScramCredential,
  hashScramPassword,
  parseScramCredential,
  verifyClientProof,
  verifyScramPassword,
} from './scram.ts'

/** RFC 7677 §3: user "user", password "pencil", no channel binding ("n,," = "biws"). */
const V = {
  clientFirstBare: 'n=user,r=rOprNGfwEbeRWgbNEkqO',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
}
const withoutProof = V.clientFinal.slice(0, V.clientFinal.lastIndexOf(',p='))
const proofOf = (m: string) => Buffer.from(m.slice(m.lastIndexOf(',p=') + 3), 'base64')

describe('SCRAM-SHA-256 against the RFC 7677 test vector', () => {
  it('the page (WebCrypto) computes the RFC client-final and expects the RFC server signature', async () => {
    const final = await clientFinal({
      password: 'pencil',
      clientFirstBare: V.clientFirstBare,
      clientNonce: V.clientNonce,
      serverFirst: V.serverFirst,
      channelBinding: 'n,,',
    })
    expect(final?.message).toBe(V.clientFinal)
    expect(checkServerFinal(V.serverFinal, final?.serverSignature ?? '')).toBe(true)
    expect(checkServerFinal('v=AAAA', final?.serverSignature ?? '')).toBe(false)
    expect(checkServerFinal('e=invalid-proof', final?.serverSignature ?? '')).toBe(false)
  })

  it('the passport (node:crypto) accepts the RFC proof from StoredKey alone and signs the RFC v=', async () => {
    const stored = await deriveScramCredential(
      'pencil',
      Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
      4096,
    )
    // What the database holds: no SaltedPassword, no ClientKey.
    const kept = parseScramCredential(encodeScramCredential(stored))
    if (!kept) throw new Error('credential did not round-trip')
    const message = authMessage(V.clientFirstBare, V.serverFirst, withoutProof)
    const { ok, serverSignature } = verifyClientProof(kept, message, proofOf(V.clientFinal))
    expect(ok).toBe(true)
    expect(`v=${serverSignature.toString('base64')}`).toBe(V.serverFinal)
  })

  it('refuses a flipped proof byte, a proof for another AuthMessage, and a short proof', async () => {
    const stored = await deriveScramCredential(
      'pencil',
      Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
      4096,
    )
    const message = authMessage(V.clientFirstBare, V.serverFirst, withoutProof)
    const flipped = proofOf(V.clientFinal)
    flipped[0] = (flipped[0] as number) ^ 1
    expect(verifyClientProof(stored, message, flipped).ok).toBe(false)
    expect(verifyClientProof(stored, `${message}x`, proofOf(V.clientFinal)).ok).toBe(false)
    expect(verifyClientProof(stored, message, proofOf(V.clientFinal).subarray(0, 31)).ok).toBe(false)
  })

  it('the page refuses a server-first that does not extend its nonce or asks absurd iterations', async () => {
    const base = {
      password: 'pencil',
      clientFirstBare: V.clientFirstBare,
      clientNonce: V.clientNonce,
      channelBinding: 'n,,',
    }
    expect(
      await clientFinal({ ...base, serverFirst: 'r=someoneElse123456,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096' }),
    ).toBeNull()
    expect(
      await clientFinal({ ...base, serverFirst: `r=${V.clientNonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1` }),
    ).toBeNull()
    expect(
      await clientFinal({
        ...base,
        serverFirst: `r=${V.clientNonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999`,
      }),
    ).toBeNull()
  })
})

describe('stored SCRAM credentials', () => {
  it('the password form checks a SCRAM credential (and nothing else matches)', async () => {
    const stored = await hashScramPassword('alice-password-1', 4096)
    expect(stored).toMatch(/^scram-sha-256\$4096\$[^$]+\$[^$]+\$[^$]+$/)
    expect(stored).not.toContain('alice-password-1')
    expect(await verifyScramPassword('alice-password-1', stored)).toBe(true)
    expect(await verifyPassword('alice-password-1', stored)).toBe(true)
    expect(await verifyPassword('alice-password-2', stored)).toBe(false)
    expect(parseScramCredential('scrypt$1024$8$1$abc$def')).toBeNull()
    expect(parseScramCredential('scram-sha-256$0$a$b$c')).toBeNull()
  })

  it('a decoy is the same for the same username, differs by username and by server secret', () => {
    const secret = randomBytes(32)
    const a = decoyCredential(secret, 'nobody', 600_000)
    expect(decoyCredential(secret, 'nobody', 600_000)).toEqual(a)
    expect(decoyCredential(secret, 'nobody2', 600_000).salt).not.toEqual(a.salt)
    expect(decoyCredential(randomBytes(32), 'nobody', 600_000).salt).not.toEqual(a.salt)
    expect(a.salt).toHaveLength(16)
    expect(a.iterations).toBe(600_000)
  })
})
