import { type EndReason, type ErrorCode, isEndReason, isErrorCode } from '../protocol/codes.ts'
import type { DpopSigner } from './dpop.ts'

/** A failure the frame passes on to the page: a stable code, and a reason where there is one. */
export class FrameApiError extends Error {
  readonly code: ErrorCode
  readonly reason: EndReason | undefined
  constructor(code: ErrorCode, reason?: EndReason) {
    super(code)
    this.code = code
    this.reason = reason
  }
}

export interface TokenAnswer {
  token: string
  expiresAt: number
  serverTime: number
  /** The rotating refresh credential; it never leaves the frame. */
  refreshToken: string | null
  /** Server time at which to refresh (a few minutes before `expiresAt`). */
  refreshAt: number
  /** Server time after which the refresh credential is dead. */
  refreshExpiresAt: number
}
export interface CheckAnswer {
  valid: boolean
  reason: EndReason | null
  expiresAt: number | null
  serverTime: number
}

/**
 * The frame's calls to its own origin. Same-origin fetches, each with a DPoP proof by the
 * frame's key (the server refuses anything else), the site token in `Authorization: DPoP`
 * where one is sent, and the server's latest nonce: it comes with the frame's page and then
 * with every answer; a proof the server finds stale (`use_dpop_nonce`) is made again once with
 * the fresh one.
 */
export function createServerApi(
  origin: string,
  signer: DpopSigner,
  firstNonce: string | null,
  fetchImpl: typeof fetch = fetch.bind(globalThis),
) {
  let nonce = firstNonce
  /** POSTs JSON; an answer outside 2xx throws, unless its status is one the caller expects. */
  const post = async (
    path: string,
    body: Record<string, string | boolean>,
    options: { token?: string; expected?: number[] } = {},
  ): Promise<Record<string, unknown>> => {
    const url = `${origin}${path}`
    const send = async () => {
      const proof = await signer.proof({
        method: 'POST',
        url,
        nonce,
        ...(options.token !== undefined ? { accessToken: options.token } : {}),
      })
      const res = await fetchImpl(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          DPoP: proof,
          ...(options.token !== undefined ? { Authorization: `DPoP ${options.token}` } : {}),
        },
        body: JSON.stringify(body),
        credentials: 'include', // the passport cookie, where the browser sends it to frames
        cache: 'no-store',
      })
      nonce = res.headers.get('DPoP-Nonce') ?? nonce
      return res
    }
    let res: Response
    let json: Record<string, unknown>
    try {
      res = await send()
      json = (await res.json().catch(() => ({}))) as Record<string, unknown>
      if (res.status === 401 && json.error === 'use_dpop_nonce') {
        res = await send()
        json = (await res.json().catch(() => ({}))) as Record<string, unknown>
      }
    } catch {
      throw new FrameApiError('temporarily_unavailable')
    }
    if (!res.ok && !(options.expected ?? []).includes(res.status)) {
      const code = isErrorCode(json.error) ? json.error : 'server_error'
      throw new FrameApiError(code, isEndReason(json.reason) ? json.reason : undefined)
    }
    return json
  }
  const toToken = (json: Record<string, unknown>): TokenAnswer => {
    const expiresAt = Number(json.expires_at)
    const refreshToken = typeof json.refresh_token === 'string' ? json.refresh_token : null
    return {
      token: String(json.access_token),
      expiresAt,
      serverTime: Number(json.server_time),
      refreshToken,
      refreshAt: Number.isFinite(json.refresh_at) ? Number(json.refresh_at) : expiresAt,
      refreshExpiresAt:
        refreshToken && Number.isFinite(json.refresh_expires_at)
          ? Number(json.refresh_expires_at)
          : expiresAt,
    }
  }
  return {
    /** For the session chunk's own calls (the approval decision, approvals.ts). */
    post,
    exchangeCode: async (authkey: string, code: string, codeVerifier: string, redirectUri: string) =>
      toToken(
        await post('/api/frame/token', {
          grant_type: 'authorization_code',
          authkey,
          code,
          code_verifier: codeVerifier,
          redirect_uri: redirectUri,
        }),
      ),
    tokenFromSession: async (authkey: string) =>
      toToken(await post('/api/frame/token', { grant_type: 'session', authkey })),
    refresh: async (authkey: string, refreshToken: string) =>
      toToken(
        await post('/api/frame/token', { grant_type: 'refresh_token', authkey, refresh_token: refreshToken }),
      ),
    check: async (authkey: string, token: string): Promise<CheckAnswer> => {
      const json = await post('/api/frame/check', { authkey }, { token })
      return {
        valid: json.valid === true,
        reason: isEndReason(json.reason) ? json.reason : null,
        expiresAt: typeof json.expires_at === 'number' ? json.expires_at : null,
        serverTime: Number(json.server_time),
      }
    },
    logout: async (authkey: string, token: string) => {
      await post('/api/frame/logout', { authkey }, { token })
    },
  }
}
export type ServerApi = ReturnType<typeof createServerApi>
