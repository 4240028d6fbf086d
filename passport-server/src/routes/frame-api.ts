import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { sameSecret } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { readJsonObject, requireString } from '../middleware/body.ts'
import { redeemCode } from '../services/codes.ts'
import { type DeviceApprovals, pendingPromptOf, readAnswer } from '../services/device-approval.ts'
import type { DpopProofs } from '../services/dpop-proofs.ts'
import { type MintedGrant, mintSiteToken } from '../services/minting.ts'
import { refreshSiteGrant } from '../services/refresh.ts'
import { resolveAuthkey } from '../services/registry.ts'
import { openSealedKey, sealAnswer } from '../services/sealed-answers.ts'
import { endSession, isSessionLive } from '../services/sessions.ts'
import { checkSiteToken, findSiteTokenRow, statusBody } from '../services/token-status.ts'
import type { SiteRecord } from '../store/types.ts'
import { clearSessionCookies, sessionFromCookies } from './session-cookies.ts'

/** Requests one frame key may make per minute: a frame makes a few an hour. */
const REQUESTS_PER_KEY_PER_MINUTE = 60
const DPOP_AUTHORIZATION = /^DPoP ([A-Za-z0-9_.-]{1,2048})$/

/** What `namedSite` leaves for a handler: the request's JSON body and the site its authkey names. */
type FrameEnv = { Variables: { body: Record<string, unknown>; site: SiteRecord } }

/**
 * The frame's API. Only the passport's own frame may call it, and it proves that by what never
 * leaves the frame: every request carries a DPoP proof (RFC 9449) by the frame's
 * non-extractable key, and every credential it presents (a code being exchanged aside) is bound
 * to that key's thumbprint at the sign-in. The site token alone opens nothing here: the page
 * and the site backend hold it, and the `Origin` check below stops browsers only.
 *
 * Tokens go in `Authorization: DPoP <token>`, proofs in `DPoP`; every answer carries a fresh
 * `DPoP-Nonce`. A missing, invalid, replayed or foreign-key proof is `401 invalid_dpop_proof`
 * (`use_dpop_nonce` for a stale nonce) and changes nothing.
 */
export function frameApiRoutes(
  deps: AppDeps,
  approvals: DeviceApprovals,
  proofs: DpopProofs,
): Hono<FrameEnv> {
  const app = new Hono<FrameEnv>()
  // Shared across instances (with Redis): one device's requests are spread over all of them.
  // Counted with the proof's claim (one round trip to Redis per request, not two).
  const perKey = { name: 'frame_key', limit: REQUESTS_PER_KEY_PER_MINUTE, windowMs: 60_000 }

  app.use('/api/frame/*', async (c, next) => {
    const fetchSite = c.req.header('Sec-Fetch-Site')
    if (
      c.req.header('Origin') !== deps.config.issuer ||
      (fetchSite !== undefined && fetchSite !== 'same-origin')
    ) {
      deps.log('malicious_cors', { origin: c.req.header('Origin')?.slice(0, 100) })
      throw new PassportError('origin_not_allowed', 'only the passport frame may call this endpoint')
    }
    c.header('Cache-Control', 'no-store')
    c.header('DPoP-Nonce', await proofs.currentNonce())
    await next()
  })

  /**
   * Every frame call names its site by the page's authkey, in a JSON body: read and checked
   * against the registry once, here, before the handler (an unknown or void authkey is
   * `invalid_authkey` and nothing else is looked at).
   */
  const namedSite: MiddlewareHandler<FrameEnv> = async (c, next) => {
    const body = await readJsonObject(c)
    c.set('body', body)
    c.set('site', await resolveAuthkey(deps, body.authkey))
    await next()
  }

  /** Checks the request's proof (over `accessToken` when one is sent) and counts it for its key. */
  const prove = async (c: Context, accessToken?: string): Promise<string> => {
    const { jkt, rate } = await proofs.check({
      proof: c.req.header('DPoP'),
      method: c.req.method,
      path: c.req.path,
      ...(accessToken !== undefined ? { accessToken } : {}),
      perKey,
    })
    if (rate && !rate.allowed) {
      deps.log('excess_rate_limit_exceeded', { what: 'frame_api', path: c.req.path })
      throw new PassportError('rate_limited', 'too many requests from this device')
    }
    return jkt
  }

  /**
   * The site token in `Authorization: DPoP …`, proven by the key it was minted for. Its
   * signature is ours for this site (expired ones too: a sign-out may follow expiry), and its
   * row names the frame key of its sign-in; a proof by any other key, or a token no frame
   * holds, is refused before anything else is looked at.
   */
  const boundToken = async (c: Context, site: SiteRecord) => {
    const token = DPOP_AUTHORIZATION.exec(c.req.header('Authorization') ?? '')?.[1]
    if (token === undefined) {
      throw new PassportError('invalid_token', 'send the site token as Authorization: DPoP <token>')
    }
    const jkt = await prove(c, token)
    const row = await findSiteTokenRow(deps, token, site.id)
    if (!row) throw new PassportError('invalid_token', 'the token is not valid for this site')
    if (row.jkt === null || !sameSecret(row.jkt, jkt)) {
      deps.log('dpop_proof_rejected', { reason: 'not_the_bound_key', site: site.id })
      throw new PassportError('invalid_dpop_proof', 'a DPoP proof by the key of this sign-in is required')
    }
    return { token, row }
  }

  // The body is built once where the grant is minted: a replayed refresh returns the same bytes.
  const grantResponse = (c: Context, body: string) =>
    c.body(body, 200, { 'Content-Type': 'application/json; charset=UTF-8' })
  const tokenResponse = (c: Context, minted: MintedGrant) => grantResponse(c, minted.body)

  app.post('/api/frame/token', namedSite, async (c) => {
    const { body, site } = c.var
    const grantType = requireString(body, 'grant_type', 64)

    if (grantType === 'authorization_code') {
      // The sign-in binds to whichever key proves possession here: the frame's, made before.
      const jkt = await prove(c)
      const code = await redeemCode(deps, {
        site,
        code: requireString(body, 'code', 256),
        codeVerifier: requireString(body, 'code_verifier', 256),
        redirectUri: requireString(body, 'redirect_uri', 2048),
      })
      const session = await deps.store.sessions.get(code.sessionId)
      if (!isSessionLive(session, deps.clock.now(), deps.config)) {
        throw new PassportError('invalid_grant', 'the sign-in behind this code has ended')
      }
      return tokenResponse(c, await mintSiteToken(deps, site, session, jkt))
    }

    if (grantType === 'session') {
      const jkt = await prove(c)
      // Reaches here with a cookie only where the browser sends third-party cookies to the frame.
      const session = await sessionFromCookies(deps, c)
      if (!session) throw new PassportError('login_required', 'no passport session is visible here')
      const exclusion = await deps.store.sessions.exclusion(session.id, site.id)
      if (exclusion) {
        throw new PassportError('login_required', 'this device must sign in again on this site', {
          extra: { reason: exclusion.reason },
        })
      }
      return tokenResponse(c, await mintSiteToken(deps, site, session, jkt))
    }

    if (grantType === 'refresh_token') {
      const credential = requireString(body, 'refresh_token', 256)
      // Without a valid proof the credential is still looked at: a used one presented so is a
      // copy in use (theft: the family is revoked); an unused one is refused, unchanged.
      let jkt: string | null = null
      try {
        jkt = await prove(c)
      } catch (err) {
        if (!(err instanceof PassportError && err.code === 'invalid_dpop_proof')) throw err
      }
      return grantResponse(c, await refreshSiteGrant(deps, site, credential, jkt))
    }

    throw new PassportError('invalid_request', 'unsupported grant_type')
  })

  app.post('/api/frame/check', namedSite, async (c) => {
    const { site } = c.var
    const { token } = await boundToken(c, site)
    return c.json(statusBody(await checkSiteToken(deps, token, site.id), deps.clock.now()))
  })

  /**
   * A signed-in device answers a "sign in with another device" request: the `code` the user
   * typed from the new device, or `deny`. The frame proves the device's sign-in with its live
   * token for this site, bound to its key; a dead token (the device's own session ended) is
   * refused before the request is looked at.
   */
  app.post('/api/frame/approval', namedSite, async (c) => {
    const { body, site } = c.var
    const approvalId = requireString(body, 'approval_id', 64)
    const answer = readAnswer(body.code, body.deny)
    if (!answer) throw new PassportError('invalid_request', 'send either code (two digits) or deny: true')
    const { token } = await boundToken(c, site)
    const status = await checkSiteToken(deps, token, site.id)
    if (!status.valid) {
      throw new PassportError('invalid_token', 'this device is no longer signed in', {
        extra: { reason: status.reason },
      })
    }
    const approver = await deps.store.sessions.get(status.record.sessionId)
    if (!approver) throw new PassportError('invalid_token', 'this device is no longer signed in')
    const decided = await approvals.decide({ approvalId, approver, answer })
    if (decided.outcome === 'not_yours')
      throw new PassportError('access_denied', 'not a request of this user')
    // Decided, expired, used or unknown: 410, and nothing changed.
    if (decided.outcome === 'gone') return c.json({ outcome: 'gone' }, 410)
    return c.json({ outcome: decided.outcome })
  })

  /**
   * What a request says of itself (site, browser, address, message), sealed: the live channel
   * tells a signed-in device only that a request is open (its id, expiry, same network or not);
   * the frame then asks here with a one-time key wrapped to the passport's `enc` key (purpose
   * `approvals`) and reads the answer alone (docs/sign-in.md, "Sealed payloads"). Proven like an
   * answer: this device's live token for the site, bound to the frame's key. Refused: a bad seal
   * (`invalid_request`), a dead token (`invalid_token`), another user's request, or one no
   * longer open (410 `gone`: the same answer for both, so ids cannot be probed).
   */
  app.post('/api/frame/approval/details', namedSite, async (c) => {
    const { body, site } = c.var
    const approvalId = requireString(body, 'approval_id', 64)
    const seal = requireString(body, 'seal', 4096)
    const { token } = await boundToken(c, site)
    const status = await checkSiteToken(deps, token, site.id)
    if (!status.valid) {
      throw new PassportError('invalid_token', 'this device is no longer signed in', {
        extra: { reason: status.reason },
      })
    }
    const key = await openSealedKey(deps, 'approvals', seal)
    if (!key) throw new PassportError('invalid_request', 'bad seal')
    const prompt = await pendingPromptOf(deps, approvalId, status.record.userId)
    c.header('Cache-Control', 'no-store')
    if (!prompt) return c.json({ outcome: 'gone' }, 410)
    return c.json({
      sealed: await sealAnswer(key, {
        site_name: prompt.siteName,
        device: prompt.device,
        address: prompt.address,
        binding_message: prompt.bindingMessage,
        expires_at: prompt.expiresAt,
      }),
    })
  })

  app.post('/api/frame/logout', namedSite, async (c) => {
    const { site } = c.var
    // A replaced, revoked or recently expired token still names its session well enough to
    // sign it out, proven by the key of its sign-in; its row is kept a day past expiry.
    const { row } = await boundToken(c, site)
    const session = await deps.store.sessions.get(row.sessionId)
    if (session) await endSession(deps, session, 'signed_out')
    // Both cookies go where this response can reach them (a frame with storage access: the
    // passport's own; a partitioned frame: nothing to clear), and the browser's login status.
    clearSessionCookies(c)
    return c.json({ signed_out: true })
  })

  return app
}
