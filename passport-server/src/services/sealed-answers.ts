import type { AppDeps } from '../deps.ts'
import { openSealedRequest, type SealedPurpose } from '../tokens/sealed.ts'

/** The answer only the page (or frame) that made `key` can read: a JWE under that key. */
export { sealForKey as sealAnswer } from '../tokens/sealed.ts'

type SealDeps = Pick<AppDeps, 'keys' | 'config' | 'clock' | 'store'>

/**
 * A sealed request for `purpose` opened, its wrapped one-time key spent in the store (so a
 * replay, on this instance or another, opens nothing): its content key and claims, or null for
 * anything that is not a fresh, untampered seal for this purpose (`tokens/sealed.ts` lists the
 * refusals), including a value that is not a string at all.
 */
export function openSealed(deps: SealDeps, purpose: SealedPurpose, jwe: unknown) {
  if (typeof jwe !== 'string') return Promise.resolve(null)
  return openSealedRequest({
    keys: deps.keys,
    issuer: deps.config.issuer,
    purpose,
    jwe,
    nowMs: deps.clock.now(),
    claimOnce: (id, expiresAt) => deps.store.oneTimeIds.claim(id, expiresAt),
  })
}

/** `openSealed` for a request that carries only the key its answer is to be sealed under. */
export async function openSealedKey(deps: SealDeps, purpose: SealedPurpose, jwe: unknown) {
  return (await openSealed(deps, purpose, jwe))?.key ?? null
}
