import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import { isoCBOR } from '@simplewebauthn/server/helpers'

/**
 * Test-only: a software WebAuthn authenticator (ES256 on P-256, "none" attestation) built on
 * node:crypto, answering the options the passport sends as a browser would. Every field a
 * refusal test needs to get wrong can be overridden per call.
 */

export interface CeremonyOverrides {
  origin?: string
  rpId?: string
  challenge?: string
  type?: string
  crossOrigin?: boolean
  userPresent?: boolean
  userVerified?: boolean
  /** The counter to report (default: one more than the last). */
  counter?: number
  /** Sign with another key than the credential's. */
  wrongKey?: boolean
  /** Report another credential id than the one registered. */
  credentialId?: string
}

const b64url = (bytes: Uint8Array | Buffer) => Buffer.from(bytes).toString('base64url')
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest()

export function createSoftAuthenticator(defaults: { origin: string; rpId: string }) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = publicKey.export({ format: 'jwk' }) as { x: string; y: string }
  const credentialId = randomBytes(16)
  let counter = 0
  let userHandle = ''

  const cosePublicKey = () =>
    isoCBOR.encode(
      new Map<number, number | Uint8Array>([
        [1, 2], // kty: EC2
        [3, -7], // alg: ES256
        [-1, 1], // crv: P-256
        [-2, new Uint8Array(Buffer.from(jwk.x, 'base64url'))],
        [-3, new Uint8Array(Buffer.from(jwk.y, 'base64url'))],
      ]),
    )

  const clientData = (type: string, challenge: string, o: CeremonyOverrides) =>
    Buffer.from(
      JSON.stringify({
        type: o.type ?? type,
        challenge: o.challenge ?? challenge,
        origin: o.origin ?? defaults.origin,
        crossOrigin: o.crossOrigin ?? false,
      }),
    )

  const authenticatorData = (o: CeremonyOverrides, attested: boolean) => {
    const flags =
      (o.userPresent === false ? 0 : 0x01) |
      (o.userVerified === false ? 0 : 0x04) |
      0x08 | // backup eligible
      0x10 | // backed up
      (attested ? 0x40 : 0)
    const count = Buffer.alloc(4)
    count.writeUInt32BE(o.counter ?? counter)
    const parts = [sha256(o.rpId ?? defaults.rpId), Buffer.from([flags]), count]
    if (attested) {
      const length = Buffer.alloc(2)
      length.writeUInt16BE(credentialId.length)
      parts.push(Buffer.alloc(16), length, credentialId, Buffer.from(cosePublicKey()))
    }
    return Buffer.concat(parts)
  }

  return {
    get credentialId() {
      return b64url(credentialId)
    },
    get counter() {
      return counter
    },
    /** Answers registration options (the JSON the passport sent) with a registration response. */
    register(optionsJson: unknown, o: CeremonyOverrides = {}): string {
      const options = optionsJson as { challenge: string; user: { id: string } }
      userHandle = options.user.id
      const authData = authenticatorData(o, true)
      const attestationObject = isoCBOR.encode(
        new Map<string, unknown>([
          ['fmt', 'none'],
          ['attStmt', new Map()],
          ['authData', new Uint8Array(authData)],
        ]) as never,
      )
      return JSON.stringify({
        id: b64url(credentialId),
        rawId: b64url(credentialId),
        type: 'public-key',
        response: {
          clientDataJSON: b64url(clientData('webauthn.create', options.challenge, o)),
          attestationObject: b64url(attestationObject),
          transports: ['internal'],
        },
        clientExtensionResults: {},
      })
    },
    /** Answers authentication options with an assertion (the counter moves on by one first). */
    authenticate(optionsJson: unknown, o: CeremonyOverrides = {}): string {
      const options = optionsJson as { challenge: string }
      if (o.counter === undefined) counter += 1
      const authData = authenticatorData(o, false)
      const data = clientData('webauthn.get', options.challenge, o)
      const signature = sign(
        'sha256',
        Buffer.concat([authData, sha256(data)]),
        o.wrongKey ? other.privateKey : privateKey,
      )
      const id = o.credentialId ?? b64url(credentialId)
      return JSON.stringify({
        id,
        rawId: id,
        type: 'public-key',
        response: {
          clientDataJSON: b64url(data),
          authenticatorData: b64url(authData),
          signature: b64url(signature),
          userHandle,
        },
        clientExtensionResults: {},
      })
    },
  }
}

export type SoftAuthenticator = ReturnType<typeof createSoftAuthenticator>
