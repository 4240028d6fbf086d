import type { AppDeps } from '../deps.ts'
import { signIdToken } from '../tokens/id-token.ts'
import { SIGNING_ALG } from '../tokens/keys.ts'

/** The one algorithm this passport signs its tokens with (ID and site tokens): what discovery states. */
export const TOKEN_SIGNING_ALG = SIGNING_ALG

/** An ID token is read once, at the exchange that hands it out, and never kept: short-lived. */
export const ID_TOKEN_TTL_MS = 5 * 60_000

/**
 * The ID token a site's backend gets with its tokens (OpenID Connect Core §2): this passport as
 * issuer, the site as audience, who signed in and when, signed by the current key.
 */
export function issueIdToken(
  deps: Pick<AppDeps, 'keys' | 'config' | 'clock'>,
  input: {
    siteId: string
    userId: string
    authTimeMs: number
    /** `sid`, `preferred_username`, `name`: never the registered claims above. */
    claims?: Record<string, string>
  },
): Promise<string> {
  const now = deps.clock.now()
  return signIdToken(deps.keys, {
    issuer: deps.config.issuer,
    clientId: input.siteId,
    userId: input.userId,
    authTimeMs: input.authTimeMs,
    issuedAtMs: now,
    expiresAtMs: now + ID_TOKEN_TTL_MS,
    ...(input.claims ? { claims: input.claims } : {}),
  })
}
