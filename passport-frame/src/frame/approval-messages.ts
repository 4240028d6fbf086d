import type { ApprovalPrompt } from '../protocol/approval.ts'

/**
 * "Sign in with another device" as the live channel carries it to the frame. Parsed strictly:
 * only the exact shapes and bounded strings; anything else is dropped.
 *
 * The socket says only that a request is open (`OpenRequest`); what the request says of itself
 * (site, browser, address, message) the frame fetches sealed (`readApprovalDetails` in `sealed-ask.ts`), so nothing
 * between the frame and the passport's code reads it (docs/sign-in.md, "Sealed payloads").
 */

/** A request as the live channel announces it. */
export interface OpenRequest {
  id: string
  /** Server time (ms). */
  expiresAt: number
  /** A hint against phishing: a request from another network gets a warning. */
  sameNetwork: boolean
}
/** A request as the frame holds it: the server's description, and whether it came from the network this device is on. */
export interface ApprovalRequest extends ApprovalPrompt {
  sameNetwork: boolean
}
export type ApprovalOutcome = 'approved' | 'denied' | 'cancelled' | 'expired'
export type ApprovalClosed = { type: 'approval_closed'; id: string; outcome: ApprovalOutcome }
/** News off the socket (or another tab). */
export type ApprovalNews = { type: 'approval_request'; request: OpenRequest } | ApprovalClosed
/** News as the prompt draws it: a request with its details. */
export type PromptNews = { type: 'approval_request'; request: ApprovalRequest } | ApprovalClosed

const outcomes: ReadonlySet<string> = new Set(['approved', 'denied', 'cancelled', 'expired'])
const id = (value: unknown): value is string =>
  typeof value === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(value)

export function parseApprovalNews(msg: Record<string, unknown>): ApprovalNews | null {
  if (msg.type === 'approval_closed') {
    return id(msg.id) && typeof msg.outcome === 'string' && outcomes.has(msg.outcome)
      ? { type: 'approval_closed', id: msg.id, outcome: msg.outcome as ApprovalOutcome }
      : null
  }
  if (msg.type !== 'approval_request') return null
  if (!id(msg.id) || typeof msg.expires_at !== 'number' || typeof msg.same_network !== 'boolean') return null
  return {
    type: 'approval_request',
    request: { id: msg.id, expiresAt: msg.expires_at, sameNetwork: msg.same_network },
  }
}
