import { fetchEncryptionKey, openSealed, wrapContentKey } from '../sign-in/sealed.ts'
import type { ApprovalRequest, OpenRequest } from './approval-messages.ts'

/**
 * The frame's sealed asks (`/frame-sealed.js`, loaded on demand): a one-time content key wrapped
 * to the passport's `enc` key (the frame's origin is the passport's) for purpose `approvals`,
 * handed to `ask` (the frame's API call, `POST /api/frame/approval/details`), and the answer
 * opened with it and checked. The same sealing code as the passport's own pages.
 */
export async function approvalDetails(
  open: OpenRequest,
  ask: (seal: string) => Promise<string | null>,
): Promise<ApprovalRequest | null> {
  const issuer = location.origin
  const { key, wrapped } = await wrapContentKey(await fetchEncryptionKey(issuer), issuer, 'approvals')
  const sealed = await ask(wrapped)
  return sealed ? readApprovalDetails(open, await openSealed<unknown>(sealed, key)) : null
}

const text = (value: unknown, max: number): value is string =>
  typeof value === 'string' && value.length <= max

/**
 * The sealed answer of `POST /api/frame/approval/details`, opened: the request in full, or null.
 * Checked strictly, like the socket's messages (here, not in frame.js: only this chunk reads it).
 */
export function readApprovalDetails(open: OpenRequest, details: unknown): ApprovalRequest | null {
  const d = details as Record<string, unknown> | null
  if (
    typeof d !== 'object' ||
    d === null ||
    !text(d.site_name, 200) ||
    !text(d.device, 256) ||
    !text(d.address, 64) ||
    !(d.binding_message === null || text(d.binding_message, 256))
  ) {
    return null
  }
  return {
    ...open,
    siteName: d.site_name,
    device: d.device,
    address: d.address,
    bindingMessage: (d.binding_message as string | null) ?? null,
  }
}
