/**
 * Stable error codes shared by the HTTP API, the frame protocol and the SDK.
 * Tests and callers branch on these strings, never on message text.
 */
export const ErrorCode = {
  invalidRequest: 'invalid_request',
  invalidToken: 'invalid_token',
  invalidGrant: 'invalid_grant',
  invalidClient: 'invalid_client',
  invalidAuthkey: 'invalid_authkey',
  originNotAllowed: 'origin_not_allowed',
  loginRequired: 'login_required',
  accessDenied: 'access_denied',
  notFound: 'not_found',
  payloadTooLarge: 'payload_too_large',
  unsupportedMediaType: 'unsupported_media_type',
  rateLimited: 'rate_limited',
  temporarilyUnavailable: 'temporarily_unavailable',
  serverError: 'server_error',
  timeout: 'timeout',
  /** RFC 9449: the frame's API needs a valid DPoP proof by the key its credential is bound to. */
  invalidDpopProof: 'invalid_dpop_proof',
  /** RFC 9449: send the proof again with the server's nonce (from the `DPoP-Nonce` header). */
  useDpopNonce: 'use_dpop_nonce',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** Why a token or a sign-in is no longer valid. */
export const EndReason = {
  expired: 'expired',
  replaced: 'replaced',
  signedOut: 'signed_out',
  revoked: 'revoked',
  unknown: 'unknown',
} as const
export type EndReason = (typeof EndReason)[keyof typeof EndReason]

const endReasons: ReadonlySet<string> = new Set(Object.values(EndReason))
export function isEndReason(value: unknown): value is EndReason {
  return typeof value === 'string' && endReasons.has(value)
}
