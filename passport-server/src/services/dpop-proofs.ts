import { createHmac, randomBytes } from 'node:crypto'
import { sameSecret } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import {
  PROOF_MAX_AGE_MS,
  PROOF_MAX_FUTURE_MS,
  type ProofExpectation,
  verifyDpopProof,
} from '../tokens/dpop.ts'
import { countersOf } from './counters.ts'
import { createSharedRateWindow, type RateDecision, type SharedRateWindow } from './rate-window.ts'

/** A server nonce is good for the window it was made in and the next one (5 to 10 minutes). */
export const NONCE_WINDOW_MS = 5 * 60_000
/** A proof is fresh for as long as its nonce: it is remembered against replay that long. */
const REMEMBER_PROOF_MS = 2 * NONCE_WINDOW_MS
const NONCE_SECRET = 'dpop_nonce_key'

/** A proof that passed: the thumbprint of the key that made it. */
export interface ProvenKey {
  jkt: string
  /** The key's rate limit, when the check was asked to count the proof against one. */
  rate?: RateDecision
}

/** A limit on the requests one key may make: `limit` per `windowMs`, across instances. */
export interface KeyRateLimit {
  name: string
  limit: number
  windowMs: number
}

export type DpopProofs = ReturnType<typeof createDpopProofs>

/**
 * What checking a frame's DPoP proofs needs beyond the proof itself:
 *
 * - server nonces (`DPoP-Nonce`), an HMAC of the time window under a secret every instance
 *   shares through the store: stateless, so any instance accepts another's; a proof made in
 *   advance, or kept, is useless after ten minutes whatever its `iat` says;
 * - the replay cache: a proof's `jti` is accepted once while its nonce (or, with nonces off,
 *   its `iat`) is fresh. Kept in the deployment's counters (`counters.ts`): with several
 *   instances, Redis `SET NX PX`, so a proof spent on one instance is refused on all; in memory
 *   it holds at most 200,000 proofs, beyond which new ones are refused (fail closed).
 *
 * Nonces need nothing shared beyond the secret: the per-window HMACs cached below are the same
 * on every instance, so the cache is per process by design.
 *
 * Failures are `invalid_dpop_proof` (or `use_dpop_nonce` with a fresh nonce), and change nothing.
 */
export function createDpopProofs(deps: Pick<AppDeps, 'store' | 'clock' | 'config' | 'log' | 'counters'>) {
  let secret: Promise<Buffer> | null = null
  const nonceSecret = () => {
    secret ??= deps.store.secrets
      .putIfAbsent(NONCE_SECRET, randomBytes(32).toString('base64url'))
      .then((value) => Buffer.from(value, 'base64url'))
    // A failed read is retried on the next request, not remembered.
    secret.catch(() => {
      secret = null
    })
    return secret
  }
  /**
   * Nonces of the last few windows. Once read, the secret never changes in this process, so a
   * window's nonce is the same HMAC every time: computed once, not on every request (each
   * answer carries the current one, and each proof's is compared with two).
   */
  const nonces = new Map<number, string>()
  const nonceFor = async (window: number) => {
    const known = nonces.get(window)
    if (known !== undefined) return known
    const nonce = createHmac('sha256', await nonceSecret())
      .update(`dpop-nonce:${window}`)
      .digest('base64url')
      .slice(0, 32)
    nonces.set(window, nonce)
    if (nonces.size > 4) nonces.delete(Math.min(...nonces.keys()))
    return nonce
  }

  const spent = countersOf(deps)
  /** Per-key windows in the same counters as the claims: spent and counted in one step. */
  const keyWindows = new Map<string, SharedRateWindow>()
  const keyWindow = (l: KeyRateLimit) => {
    let w = keyWindows.get(l.name)
    if (!w) {
      w = createSharedRateWindow(spent, l.name, l.limit, l.windowMs)
      keyWindows.set(l.name, w)
    }
    return w
  }

  const currentNonce = () => nonceFor(Math.floor(deps.clock.now() / NONCE_WINDOW_MS))
  const isFreshNonce = async (nonce: string) => {
    const window = Math.floor(deps.clock.now() / NONCE_WINDOW_MS)
    return sameSecret(nonce, await nonceFor(window)) || sameSecret(nonce, await nonceFor(window - 1))
  }

  const refuse = (reason: string, what: string): never => {
    deps.log('dpop_proof_rejected', { reason, what })
    throw new PassportError('invalid_dpop_proof', 'a valid DPoP proof by the frame key is required')
  }

  return {
    currentNonce,
    /**
     * Checks a proof for an HTTP request to the passport (`htu` = the issuer + `path`) and
     * spends its `jti`. Requires a fresh server nonce unless `dpopNonceRequired` is off.
     * With `perKey`, a proof spent here (never a replayed one) is also counted against its key's
     * limit, in the same round trip to the counters (`rate` in the answer).
     */
    async check(input: {
      proof: string | undefined
      method: string
      path: string
      accessToken?: string
      perKey?: KeyRateLimit
    }): Promise<ProvenKey> {
      const now = deps.clock.now()
      const nonceRequired = deps.config.dpopNonceRequired
      const expected: ProofExpectation = {
        method: input.method,
        url: `${deps.config.issuer}${input.path}`,
        nowMs: now,
        // With nonces required, the nonce's age decides freshness: a device clock that jumped
        // (or a tab that slept) does not get a good frame refused.
        checkIat: !nonceRequired,
        ...(input.accessToken !== undefined ? { accessToken: input.accessToken } : {}),
      }
      const result = verifyDpopProof(input.proof, expected)
      if (!result.ok) return refuse(result.reason, input.path)
      if (result.nonce !== null ? !(await isFreshNonce(result.nonce)) : nonceRequired) {
        throw new PassportError('use_dpop_nonce', 'send the proof again with the nonce in DPoP-Nonce')
      }
      // Long enough that the same proof is stale (nonce, or `iat`) before it is forgotten.
      const claimKey = `dpop_jti:${result.jkt}.${result.jti}`
      const rememberMs = nonceRequired ? REMEMBER_PROOF_MS : PROOF_MAX_AGE_MS + PROOF_MAX_FUTURE_MS
      const { claim, decision: rate } = input.perKey
        ? await keyWindow(input.perKey).takeAfterClaim(claimKey, rememberMs, result.jkt)
        : { claim: await spent.claimOnce(claimKey, rememberMs), decision: null }
      if (claim === 'replayed') return refuse('replayed', input.path)
      if (claim === 'full') {
        deps.log('dpop_replay_cache_full', {})
        throw new PassportError('temporarily_unavailable', 'too many requests in flight; try again')
      }
      return rate ? { jkt: result.jkt, rate } : { jkt: result.jkt }
    },
  }
}
