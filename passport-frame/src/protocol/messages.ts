import type { EndReason, ErrorCode } from './codes.ts'

/**
 * The postMessage protocol between a site's page (the SDK) and the passport frame.
 * Every message is `{ v: 1, type, id, ... }`; `type` is snake_case.
 *
 * @example
 * // page -> frame
 * frame.postMessage({ v: 1, type: 'hello', id: 'r1', authkey }, passportOrigin)
 */
export const PROTOCOL_VERSION = 1

/** Page -> frame requests. */
export type HelloRequest = { v: 1; type: 'hello'; id: string; authkey: string }
export type TokenRequest = { v: 1; type: 'token_request'; id: string }
export type CodeExchangeRequest = {
  v: 1
  type: 'code_exchange'
  id: string
  code: string
  codeVerifier: string
  redirectUri: string
}
export type CheckRequest = { v: 1; type: 'check'; id: string }
export type LogoutRequest = { v: 1; type: 'logout'; id: string }
/** Refresh now, whatever the cached token's remaining life (the manual trigger). */
export type RefreshRequest = { v: 1; type: 'refresh'; id: string }
/**
 * A DPoP proof for a request to this site's own backend (sites registered with
 * `--dpop-bound-tokens`). Only for a URL on one of the site's registered origins: the frame
 * never proves anything for another origin, least of all its own.
 */
export type ProofRequest = { v: 1; type: 'proof_request'; id: string; method: string; url: string }
/**
 * Show the frame's "Continue with Passport" button (browsers without FedCM; docs/fedcm.md): its
 * click asks the browser for storage access, then the frame signs in from the passport session.
 * Answered `ready` at once; the sign-in, if it comes, is a `session_event` `signed_in`.
 */
export type ContinueButtonRequest = { v: 1; type: 'continue'; id: string }
export type PageRequest =
  | HelloRequest
  | ContinueButtonRequest
  | ProofRequest
  | TokenRequest
  | CodeExchangeRequest
  | CheckRequest
  | LogoutRequest
  | RefreshRequest

/** Frame -> page replies (each carries the `id` of the request it answers). */
export type ReadyReply = { v: 1; type: 'ready'; id: string; hasToken: boolean }
export type TokenReply = {
  v: 1
  type: 'token_response'
  id: string
  token: string
  /** Server time (ms) of expiry. */
  expiresAt: number
  /** Milliseconds left, judged on the server's clock: what the page counts with its own clock. */
  expiresIn: number
}
export type CheckReply = {
  v: 1
  type: 'check_response'
  id: string
  valid: boolean
  reason: EndReason | null
  expiresAt: number | null
  serverTime: number
}
export type LoggedOutReply = { v: 1; type: 'logged_out'; id: string }
/** The token to send and a proof over it for exactly that method and URL. */
export type ProofReply = { v: 1; type: 'proof_response'; id: string; token: string; proof: string }
export type ErrorReply = { v: 1; type: 'error'; id: string; code: ErrorCode; reason?: EndReason }
export type FrameReply = ReadyReply | TokenReply | CheckReply | LoggedOutReply | ProofReply | ErrorReply

/** Frame -> page events, not tied to a request. */
export type SessionEvent =
  | { v: 1; type: 'session_event'; event: 'signed_out'; reason: EndReason }
  /**
   * A sign-in made on another FedCM-connected site reached this frame through the passport's
   * shared storage (docs/fedcm.md): the frame holds a token now, the page may ask for it.
   */
  | { v: 1; type: 'session_event'; event: 'signed_in' }
/**
 * The frame has something to show the user (a sign-in request from another device): the page
 * makes the iframe visible, or hides it again. What it shows stays inside the frame.
 */
export type FrameDisplay = { v: 1; type: 'frame_display'; visible: boolean }
/** The frame refreshed the token on the passport's request: the page asks for it (`token_request`). */
export type TokenRefreshed = { v: 1; type: 'token_refreshed' }
export type FrameEvent = SessionEvent | FrameDisplay | TokenRefreshed
export type FrameMessage = FrameReply | FrameEvent

/** Upper bounds the guards enforce before looking at anything else. */
export const MAX_ID_LENGTH = 64
export const MAX_FIELD_LENGTH = 4096
