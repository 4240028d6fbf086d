import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign,
} from 'node:crypto'

/**
 * The frame's side of DPoP (RFC 9449) for the load generators: an ES256 key per frame, made
 * with node:crypto (the frame makes its own with WebCrypto), and a proof per request signed
 * with it. Proofs are made here, on the load generator's core, so that the server's CPU per
 * request is what it costs to verify them, never to make them. Written apart from the
 * passport's code on purpose: a proof the server refuses fails the benchmark.
 */

/** A P-256 private key as a JWK's members: serializable, so one process can hand it to another. */
export interface FrameKeyJwk {
  x: string
  y: string
  d: string
}

export interface FrameKey {
  /** RFC 7638 thumbprint: what the passport binds a sign-in's credentials to. */
  jkt: string
  proof(input: { htm: string; htu: string; nonce?: string | null; accessToken?: string }): string
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url')

export const thumbprint = (jwk: { x: string; y: string }) =>
  sha256(`{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`)

export function newFrameKeyJwk(): FrameKeyJwk {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const { x, y, d } = privateKey.export({ format: 'jwk' }) as FrameKeyJwk
  return { x, y, d }
}

export function frameKey(jwk: FrameKeyJwk): FrameKey {
  const privateKey: KeyObject = createPrivateKey({
    key: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, d: jwk.d },
    format: 'jwk',
  })
  // The header is the same for every proof of a key: encoded once.
  const header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } })
  return {
    jkt: thumbprint(jwk),
    proof: ({ htm, htu, nonce, accessToken }) => {
      const claims = {
        jti: randomUUID(),
        htm,
        htu,
        iat: Math.floor(Date.now() / 1000),
        ...(nonce ? { nonce } : {}),
        ...(accessToken !== undefined ? { ath: sha256(accessToken) } : {}),
      }
      const input = `${header}.${b64(claims)}`
      const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
      return `${input}.${signature.toString('base64url')}`
    },
  }
}

/** A new key (with its JWK, for processes that need to hand it on). */
export function newFrameKey(): FrameKey & { jwk: FrameKeyJwk } {
  const jwk = newFrameKeyJwk()
  return { ...frameKey(jwk), jwk }
}

/**
 * The server nonce as a frame keeps it: whatever `DPoP-Nonce` the last answer carried (the
 * nonce is the server's, not the key's: one per process serves every key).
 */
export function nonceKeeper() {
  let nonce: string | null = null
  return {
    get: () => nonce,
    take(headers: Record<string, string | string[] | undefined>) {
      const got = headers['dpop-nonce']
      if (typeof got === 'string' && got.length > 0) nonce = got
    },
  }
}

/** Whether an answer asks for the request again with the server's nonce (it carries a new one). */
export const wantsNonce = (status: number, text: string) =>
  status === 401 && text.includes('"use_dpop_nonce"')
