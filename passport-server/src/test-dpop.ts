import { generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto'
import { accessTokenHash, jwkThumbprint } from './tokens/dpop.ts'

/**
 * A frame key for tests: what the frame makes with WebCrypto, made with node:crypto, so tests
 * can prove possession as the frame does, or forge proofs the way an attacker would. Nothing
 * here is used in production.
 */
export interface TestFrameKey {
  jkt: string
  /** The latest `DPoP-Nonce` the server sent this key's requests (kept like the frame keeps it). */
  nonce: string | null
  proof(input: ProofInput): string
}

export interface ProofInput {
  method?: string
  url: string
  accessToken?: string
  nonce?: string | null
  /** Seconds; now by default. */
  iat?: number
  jti?: string
  /** Extra or overriding claims (an attacker's). */
  claims?: Record<string, unknown>
  /** Extra or overriding header fields. */
  header?: Record<string, unknown>
}

const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

export function createTestFrameKey(): TestFrameKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = publicKey.export({ format: 'jwk' }) as { x: string; y: string }
  const publicJwk = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }
  return {
    jkt: jwkThumbprint(jwk),
    nonce: null,
    proof: (input) => signProof(privateKey, publicJwk, input),
  }
}

function signProof(privateKey: KeyObject, publicJwk: Record<string, string>, input: ProofInput): string {
  const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: publicJwk, ...input.header }
  const url = new URL(input.url)
  const claims: Record<string, unknown> = {
    jti: input.jti ?? randomUUID(),
    htm: input.method ?? 'POST',
    htu: `${url.origin}${url.pathname}`,
    iat: input.iat ?? Math.floor(Date.now() / 1000),
    ...(input.accessToken !== undefined ? { ath: accessTokenHash(input.accessToken) } : {}),
    ...(input.nonce ? { nonce: input.nonce } : {}),
    ...input.claims,
  }
  const signingInput = `${part(header)}.${part(claims)}`
  const signature = sign('sha256', Buffer.from(signingInput), { key: privateKey, dsaEncoding: 'ieee-p1363' })
  return `${signingInput}.${signature.toString('base64url')}`
}

/** The key the test flows use unless a test names another: "the frame" of every test device. */
export const defaultFrameKey = createTestFrameKey()
