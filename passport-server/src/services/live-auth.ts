import { LIVE_PATH } from '../../../passport-frame/src/protocol/live.ts'
import { sameSecret } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { MAX_PROOF_LENGTH, verifyDpopProof } from '../tokens/dpop.ts'
import { MAX_TOKEN_LENGTH } from '../tokens/site-token.ts'
import { checkSiteToken } from './token-status.ts'

/** Who a live connection belongs to, established from its proof and token. */
export interface LiveBinding {
  userId: string
  sessionId: string
  siteId: string
  jti: string
}

/** What the frame sends in answer to a socket's challenge. */
export interface LiveCredentials {
  token: string
  proof: string
  /** The challenge this socket was sent: the proof must carry it. */
  nonce: string
  siteId: string
}

/** What the WebSocket server asks before it lets a socket hear anything. */
export interface LiveAuthenticator {
  authenticate(input: LiveCredentials): Promise<LiveBinding | null>
}

/** The longest token and proof a socket's answer may carry (longer ones are refused unread). */
export const LIVE_CREDENTIAL_LIMITS = { token: MAX_TOKEN_LENGTH, proof: MAX_PROOF_LENGTH } as const

/** The `htu` of a socket proof: the passport's live URL, ws: or wss: like the issuer. */
export const liveProofUrl = (issuer: string) => `${issuer.replace(/^http/, 'ws')}${LIVE_PATH}`

/**
 * Authenticates a socket against the store: a DPoP proof over this socket's challenge and the
 * token, by the key the token's sign-in is bound to, and a token valid for the site the socket
 * names. The challenge is fresh per socket and answered once, so a proof cannot be replayed.
 * Any failure is null and says nothing more: the frame asks `/api/frame/check` (with a proof)
 * whether its token ended.
 */
export function createStoreLiveAuthenticator(
  deps: Pick<AppDeps, 'store' | 'keys' | 'clock' | 'config' | 'log'>,
): LiveAuthenticator {
  const url = liveProofUrl(deps.config.issuer)
  return {
    authenticate: async ({ token, proof, nonce, siteId }) => {
      const now = deps.clock.now()
      // The challenge is this socket's own, seconds old: it is what makes the proof fresh.
      const proven = verifyDpopProof(proof, {
        method: 'GET',
        url,
        nowMs: now,
        checkIat: false,
        accessToken: token,
        nonce,
      })
      if (!proven.ok) {
        deps.log('ws_upgrade_rejected', { reason: `proof_${proven.reason}` })
        return null
      }
      const status = await checkSiteToken(deps, token, siteId)
      if (!status.valid) return null
      if (status.record.jkt === null || !sameSecret(status.record.jkt, proven.jkt)) {
        deps.log('ws_upgrade_rejected', { reason: 'not_the_bound_key', site: siteId })
        return null
      }
      const { record } = status
      return { userId: record.userId, sessionId: record.sessionId, siteId: record.siteId, jti: record.jti }
    },
  }
}

/**
 * The same question over HTTP, for a WebSocket server running apart from the passport: it
 * calls `POST /internal/live/validate` with a shared secret (`liveValidationSecret`).
 */
export function createHttpLiveAuthenticator(input: {
  passportUrl: string
  secret: string
  fetchImpl?: typeof fetch
}): LiveAuthenticator {
  const fetchImpl = input.fetchImpl ?? fetch
  return {
    authenticate: async ({ token, proof, nonce, siteId }) => {
      const res = await fetchImpl(`${input.passportUrl}/internal/live/validate`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${input.secret}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ token, proof, nonce, site: siteId }),
      })
      if (res.status !== 200) return null
      const body = (await res.json()) as Partial<LiveBinding>
      if (
        typeof body.userId !== 'string' ||
        typeof body.sessionId !== 'string' ||
        typeof body.siteId !== 'string' ||
        typeof body.jti !== 'string'
      ) {
        return null
      }
      return { userId: body.userId, sessionId: body.sessionId, siteId: body.siteId, jti: body.jti }
    },
  }
}
