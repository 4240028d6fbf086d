/**
 * The frame's own key and its DPoP proofs (RFC 9449).
 *
 * The key pair is made by WebCrypto with `extractable: false`: the private key can sign inside
 * this frame and can never be read out of it, not by the page, not by a script that reads the
 * frame's storage. It is kept in the frame's IndexedDB (partitioned per top-level site, like
 * the token cache), so every tab of the site uses the same key and a reload keeps it. Every
 * request to the frame's API, and the live socket's answer to its challenge, carries a proof
 * by it; the passport binds each sign-in to its thumbprint.
 */

/** The public half as the proof's header carries it (RFC 7518 EC key). */
export interface PublicJwk {
  kty: 'EC'
  crv: 'P-256'
  x: string
  y: string
}

export interface FrameKey {
  privateKey: CryptoKey
  publicJwk: PublicJwk
}

export interface ProofRequest {
  method: string
  /** The request's URL; the proof names it without query or fragment (`htu`). */
  url: string
  /** Sent with the request: the proof covers it (`ath`). */
  accessToken?: string
  /** The server's nonce (HTTP) or the socket's challenge. */
  nonce?: string | null
}

export interface DpopSigner {
  proof(request: ProofRequest): Promise<string>
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const
const DB_NAME = 'passport-frame'
const STORE = 'keys'

const encoder = new TextEncoder()
function base64url(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}
const base64urlJson = (value: unknown) => base64url(encoder.encode(JSON.stringify(value)))

async function generateKey(subtle: SubtleCrypto): Promise<CryptoKeyPair> {
  // extractable: false applies to the private key; the public one is always exportable.
  return (await subtle.generateKey(ALGORITHM, false, ['sign', 'verify'])) as CryptoKeyPair
}

/**
 * This frame's key pair for `siteId`: the one in IndexedDB, or a new one stored there. Two tabs
 * starting at once both make one, and the store keeps whichever was written first (a get and
 * put in one read-write transaction), so every tab ends up with the same key. Where IndexedDB
 * is missing or refuses (some private modes), the key lives as long as this frame.
 */
export async function loadOrCreateFrameKey(
  siteId: string,
  subtle: SubtleCrypto,
  idb: IDBFactory | null,
): Promise<CryptoKeyPair> {
  const fresh = await generateKey(subtle)
  if (!idb) return fresh
  try {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const open = idb.open(DB_NAME, 1)
      open.onupgradeneeded = () => open.result.createObjectStore(STORE)
      open.onsuccess = () => resolve(open.result)
      open.onerror = () => reject(open.error)
    })
    try {
      return await new Promise<CryptoKeyPair>((resolve, reject) => {
        const tx = db.transaction(STORE, 'readwrite')
        const store = tx.objectStore(STORE)
        let chosen = fresh
        const read = store.get(siteId)
        read.onsuccess = () => {
          const kept = read.result as CryptoKeyPair | undefined
          if (kept?.privateKey && kept.publicKey) chosen = kept
          else store.put(fresh, siteId)
        }
        tx.oncomplete = () => resolve(chosen)
        tx.onerror = () => reject(tx.error)
        tx.onabort = () => reject(tx.error)
      })
    } finally {
      db.close()
    }
  } catch {
    return fresh
  }
}

/** Makes proofs with a key pair, dated by the server's clock (`serverNow`). */
export function createDpopSigner(deps: {
  subtle: SubtleCrypto
  keyPair: () => Promise<CryptoKeyPair>
  serverNow: () => number
  randomId: () => string
}): DpopSigner {
  let key: Promise<FrameKey> | null = null
  const frameKey = () => {
    key ??= deps.keyPair().then(async (pair) => {
      const jwk = await deps.subtle.exportKey('jwk', pair.publicKey)
      return {
        privateKey: pair.privateKey,
        publicJwk: { kty: 'EC', crv: 'P-256', x: String(jwk.x), y: String(jwk.y) },
      }
    })
    return key
  }
  return {
    proof: async ({ method, url, accessToken, nonce }) => {
      const { privateKey, publicJwk } = await frameKey()
      const at = new URL(url)
      const claims: Record<string, unknown> = {
        jti: deps.randomId(),
        htm: method,
        htu: `${at.origin}${at.pathname}`,
        iat: Math.floor(deps.serverNow() / 1000),
      }
      if (accessToken !== undefined) {
        claims.ath = base64url(
          new Uint8Array(await deps.subtle.digest('SHA-256', encoder.encode(accessToken))),
        )
      }
      if (nonce) claims.nonce = nonce
      const input = `${base64urlJson({ typ: 'dpop+jwt', alg: 'ES256', jwk: publicJwk })}.${base64urlJson(claims)}`
      // WebCrypto's ECDSA signature is r || s, 64 bytes: exactly JWS ES256's form.
      const signature = await deps.subtle.sign(
        { name: 'ECDSA', hash: 'SHA-256' },
        privateKey,
        encoder.encode(input),
      )
      return `${input}.${base64url(new Uint8Array(signature))}`
    },
  }
}
