import { webcrypto } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { accessTokenHash, jwkThumbprint, verifyDpopProof } from '../../../passport-server/src/tokens/dpop.ts'
import { createDpopSigner, loadOrCreateFrameKey } from './dpop.ts'

/** The frame's proofs, made with WebCrypto as in the browser, judged by the passport's verifier. */
const subtle = webcrypto.subtle as unknown as SubtleCrypto
const T0 = 1_800_000_000_000

function signer(serverNow = () => T0) {
  const pair = loadOrCreateFrameKey('news', subtle, null)
  return {
    pair,
    signer: createDpopSigner({ subtle, keyPair: () => pair, serverNow, randomId: () => crypto.randomUUID() }),
  }
}

describe('the frame key and its DPoP proofs', () => {
  it("makes proofs the passport accepts: htm, htu without query, iat by the server's clock, nonce, ath", async () => {
    const { signer: s } = signer()
    const proof = await s.proof({
      method: 'POST',
      url: 'http://passport.localhost:8080/api/frame/check?x=1#y',
      accessToken: 'the.site.token',
      nonce: 'server-nonce',
    })
    const result = verifyDpopProof(proof, {
      method: 'POST',
      url: 'http://passport.localhost:8080/api/frame/check',
      nowMs: T0,
      checkIat: true,
      accessToken: 'the.site.token',
      nonce: 'server-nonce',
    })
    expect(result.ok).toBe(true)
    const claims = JSON.parse(Buffer.from(proof.split('.')[1] ?? '', 'base64url').toString())
    expect(claims).toMatchObject({ htm: 'POST', iat: T0 / 1000, ath: accessTokenHash('the.site.token') })
  })

  it('uses one key for every proof of the frame, and a new frame key has another thumbprint', async () => {
    const a = signer()
    const b = signer()
    const thumbprintOf = async (p: Promise<string>) => {
      const header = JSON.parse(Buffer.from((await p).split('.')[0] ?? '', 'base64url').toString())
      expect(header).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256' })
      expect(header.jwk.d).toBeUndefined()
      return jwkThumbprint(header.jwk)
    }
    const url = 'http://passport.localhost:8080/api/frame/token'
    const first = await thumbprintOf(a.signer.proof({ method: 'POST', url }))
    expect(await thumbprintOf(a.signer.proof({ method: 'POST', url }))).toBe(first)
    expect(await thumbprintOf(b.signer.proof({ method: 'POST', url }))).not.toBe(first)
  })

  it('keeps the private key non-extractable: the page, or a copy of storage, can never read it', async () => {
    const { pair } = signer()
    const { privateKey, publicKey } = await pair
    expect(privateKey.extractable).toBe(false)
    await expect(subtle.exportKey('jwk', privateKey)).rejects.toThrow()
    expect(publicKey.extractable).toBe(true)
  })

  it('gives every proof its own jti', async () => {
    const { signer: s } = signer()
    const url = 'http://passport.localhost:8080/api/frame/check'
    const jtis = new Set<string>()
    for (let i = 0; i < 5; i++) {
      const proof = await s.proof({ method: 'POST', url })
      jtis.add(JSON.parse(Buffer.from(proof.split('.')[1] ?? '', 'base64url').toString()).jti)
    }
    expect(jtis.size).toBe(5)
  })
})
