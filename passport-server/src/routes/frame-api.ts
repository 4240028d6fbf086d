import { type Context, Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { readJsonObject, requireString } from '../middleware/body.ts'
import { redeemCode } from '../services/codes.ts'
import { type DeviceApprovals, readAnswer } from '../services/device-approval.ts'
import { issueLiveTicket } from '../services/live-tickets.ts'
import { checkSiteToken, type MintedGrant, mintSiteToken } from '../services/minting.ts'
import { refreshSiteGrant } from '../services/refresh.ts'
import { resolveAuthkey } from '../services/registry.ts'
import {
  CROSS_SITE_COOKIE,
  endSession,
  findLiveSession,
  isSessionLive,
  SESSION_COOKIE,
} from '../services/sessions.ts'
import { verifySiteToken } from '../tokens/site-token.ts'

/**
 * The frame's API. Only the passport's own frame may call it: requests must be same-origin
 * (the frame runs on the passport origin), which a page on any other site cannot forge.
 */
export function frameApiRoutes(deps: AppDeps, approvals: DeviceApprovals): Hono {
  const app = new Hono()

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
    await next()
  })

  // The body is built once where the grant is minted: a replayed refresh returns the same bytes.
  const grantResponse = (c: Context, body: string) =>
    c.body(body, 200, { 'Content-Type': 'application/json; charset=UTF-8' })
  const tokenResponse = (c: Context, minted: MintedGrant) => grantResponse(c, minted.body)

  app.post('/api/frame/token', async (c) => {
    const body = await readJsonObject(c)
    const grantType = requireString(body, 'grant_type', 64)
    const site = await resolveAuthkey(deps, body.authkey)

    if (grantType === 'authorization_code') {
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
      return tokenResponse(c, await mintSiteToken(deps, site, session))
    }

    if (grantType === 'session') {
      // Reaches here with a cookie only where the browser sends third-party cookies to the frame.
      const session = await findLiveSession(
        deps,
        getCookie(c, CROSS_SITE_COOKIE) ?? getCookie(c, SESSION_COOKIE),
      )
      if (!session) throw new PassportError('login_required', 'no passport session is visible here')
      const exclusion = await deps.store.sessions.exclusion(session.id, site.id)
      if (exclusion) {
        throw new PassportError('login_required', 'this device must sign in again on this site', {
          extra: { reason: exclusion.reason },
        })
      }
      return tokenResponse(c, await mintSiteToken(deps, site, session))
    }

    if (grantType === 'refresh_token') {
      return grantResponse(c, await refreshSiteGrant(deps, site, requireString(body, 'refresh_token', 256)))
    }

    throw new PassportError('invalid_request', 'unsupported grant_type')
  })

  /** A single-use ticket to open the live channel (the WebSocket at `/live`). */
  app.post('/api/frame/live-ticket', async (c) => {
    const body = await readJsonObject(c)
    const site = await resolveAuthkey(deps, body.authkey)
    const issued = await issueLiveTicket(deps, site, requireString(body, 'token'))
    return c.json({
      ticket: issued.ticket,
      registration_code: issued.registrationCode,
      expires_at: issued.expiresAt,
      last_event_id: issued.lastEventId,
    })
  })

  app.post('/api/frame/check', async (c) => {
    const body = await readJsonObject(c)
    const site = await resolveAuthkey(deps, body.authkey)
    const status = await checkSiteToken(deps, requireString(body, 'token'), site.id)
    return c.json({
      valid: status.valid,
      reason: status.valid ? null : status.reason,
      expires_at: status.valid ? status.record.expiresAt : status.expiresAt,
      server_time: deps.clock.now(),
    })
  })

  /**
   * A signed-in device answers a "sign in with another device" request: the `code` the user
   * typed from the new device, or `deny`. The frame proves the device's sign-in with its live
   * token for this site; a dead token (the device's own session ended) is refused before the request is looked at.
   */
  app.post('/api/frame/approval', async (c) => {
    const body = await readJsonObject(c)
    const site = await resolveAuthkey(deps, body.authkey)
    const approvalId = requireString(body, 'approval_id', 64)
    const answer = readAnswer(body.code, body.deny)
    if (!answer) throw new PassportError('invalid_request', 'send either code (two digits) or deny: true')
    const status = await checkSiteToken(deps, requireString(body, 'token'), site.id)
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

  app.post('/api/frame/logout', async (c) => {
    const body = await readJsonObject(c)
    const site = await resolveAuthkey(deps, body.authkey)
    // A replaced, revoked or recently expired token still identifies its session well enough
    // to sign it out; only a token we did not sign for this site, or a day past expiry, is refused.
    const verified = await verifySiteToken(deps.keys, requireString(body, 'token'), {
      issuer: deps.config.issuer,
      audience: site.id,
      nowMs: deps.clock.now(),
      allowExpired: true,
    })
    if (!verified.ok) throw new PassportError('invalid_token', 'the token is not valid for this site')
    const session = await deps.store.sessions.get(verified.claims.sid)
    if (session) await endSession(deps, session, 'signed_out')
    c.header('Set-Login', 'logged-out')
    return c.json({ signed_out: true })
  })

  return app
}
