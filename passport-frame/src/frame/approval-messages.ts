import type { ApprovalPrompt } from '../protocol/approval.ts'

/**
 * "Sign in with another device" as the live channel carries it to the frame. Parsed strictly:
 * only the exact shapes and bounded strings; anything else is dropped.
 */

/** A request as the frame holds it: the server's description, and whether it came from the network this device is on. */
export interface ApprovalRequest extends ApprovalPrompt {
  /** A hint against phishing: a request from another network gets a warning. */
  sameNetwork: boolean
}
export type ApprovalOutcome = 'approved' | 'denied' | 'cancelled' | 'expired'
export type ApprovalNews =
  | { type: 'approval_request'; request: ApprovalRequest }
  | { type: 'approval_closed'; id: string; outcome: ApprovalOutcome }

const outcomes: ReadonlySet<string> = new Set(['approved', 'denied', 'cancelled', 'expired'])
const text = (value: unknown, max: number): value is string =>
  typeof value === 'string' && value.length <= max
const id = (value: unknown): value is string =>
  typeof value === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(value)

export function parseApprovalNews(msg: Record<string, unknown>): ApprovalNews | null {
  if (msg.type === 'approval_closed') {
    return id(msg.id) && typeof msg.outcome === 'string' && outcomes.has(msg.outcome)
      ? { type: 'approval_closed', id: msg.id, outcome: msg.outcome as ApprovalOutcome }
      : null
  }
  if (msg.type !== 'approval_request') return null
  if (
    !id(msg.id) ||
    !text(msg.site_name, 200) ||
    !text(msg.device, 256) ||
    !text(msg.address, 64) ||
    !(msg.binding_message === null || text(msg.binding_message, 256)) ||
    typeof msg.expires_at !== 'number' ||
    typeof msg.same_network !== 'boolean'
  ) {
    return null
  }
  return {
    type: 'approval_request',
    request: {
      id: msg.id,
      siteName: msg.site_name,
      device: msg.device,
      address: msg.address,
      bindingMessage: (msg.binding_message as string | null) ?? null,
      expiresAt: msg.expires_at,
      sameNetwork: msg.same_network,
    },
  }
}
