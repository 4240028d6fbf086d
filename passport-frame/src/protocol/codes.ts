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

// Plain lists for the checks: the objects above then stay out of the browser bundles.
const errorCodes: ReadonlySet<string> = new Set([
  'invalid_request',
  'invalid_token',
  'invalid_grant',
  'invalid_client',
  'invalid_authkey',
  'origin_not_allowed',
  'login_required',
  'access_denied',
  'not_found',
  'payload_too_large',
  'unsupported_media_type',
  'rate_limited',
  'temporarily_unavailable',
  'server_error',
  'timeout',
] satisfies ErrorCode[])
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && errorCodes.has(value)
}

const endReasons: ReadonlySet<string> = new Set([
  'expired',
  'replaced',
  'signed_out',
  'revoked',
  'unknown',
] satisfies EndReason[])
export function isEndReason(value: unknown): value is EndReason {
  return typeof value === 'string' && endReasons.has(value)
}
