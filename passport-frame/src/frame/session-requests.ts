import type { EndReason } from '../protocol/codes.ts'
import type { CheckRequest, FrameMessage, ProofRequest } from '../protocol/messages.ts'
import { FrameApiError, type ServerApi } from './server-api.ts'
import type { CachedToken, TokenCache } from './token-cache.ts'

/** What the agent lends the requests answered here. */
export interface RequestContext {
  /** The site's registered origins. */
  origins: string[]
  api: Pick<ServerApi, 'check'>
  cache: TokenCache
  now: () => number
  /** The cached token, else one refreshed from the cached refresh credential; null without. */
  liveToken: () => Promise<CachedToken | null>
  proveForSite?:
    | ((request: { method: string; url: string; accessToken: string }) => Promise<string>)
    | undefined
}

/**
 * The page's `check` and `proof_request`: asked now and then by a signed-in page, never on the way
 * to its token, so their code is fetched with the session's (`/frame-session.js`). Resolves with
 * the reply; a failure of the passport rejects, as in the agent's other requests.
 */
export async function answerRequest(
  ctx: RequestContext,
  msg: CheckRequest | ProofRequest,
  authkey: string,
): Promise<FrameMessage> {
  const { id } = msg
  if (msg.type === 'proof_request') {
    // Only for the site's own registered origins: a proof for the passport (the frame's own API)
    // or any other origin is never made for a page.
    let target: URL | null = null
    try {
      target = new URL(msg.url)
    } catch {}
    if (!target || !ctx.origins.includes(target.origin) || !ctx.proveForSite) {
      return { v: 1, type: 'error', id, code: 'invalid_request' }
    }
    const live = await ctx.liveToken()
    if (!live) return { v: 1, type: 'error', id, code: 'login_required' }
    const proof = await ctx.proveForSite({ method: msg.method, url: msg.url, accessToken: live.token })
    return { v: 1, type: 'proof_response', id, token: live.token, proof }
  }
  let cached: CachedToken | null = null
  let deadReason: EndReason = 'unknown'
  try {
    cached = await ctx.liveToken()
  } catch (err) {
    if (!(err instanceof FrameApiError && err.code === 'invalid_grant')) throw err
    deadReason = err.reason ?? 'unknown'
  }
  if (!cached) {
    return {
      v: 1,
      type: 'check_response',
      id,
      valid: false,
      reason: deadReason,
      expiresAt: null,
      serverTime: ctx.now(),
    }
  }
  const answer = await ctx.api.check(authkey, cached.token)
  if (!answer.valid) ctx.cache.clear()
  return { v: 1, type: 'check_response', id, ...answer }
}
