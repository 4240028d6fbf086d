import { describe, expect, it } from 'vitest'
import { parseApprovalNews } from './approval-messages.ts'
import { readApprovalDetails } from './sealed-ask.ts'

/** What the live channel says: that a request is open, nothing it says of itself (issue 16). */
const request = {
  type: 'approval_request',
  id: 'Zm9vYmFyYmF6cXV4MTIzNA',
  expires_at: 1_700_000_120_000,
  same_network: true,
}
/** What the frame reads from the sealed answer of `POST /api/frame/approval/details`. */
const details = {
  site_name: 'Shop',
  device: 'Chromium on Linux',
  address: '127.0.0.1',
  binding_message: null,
  expires_at: 1_700_000_120_000,
}
const open = { id: request.id, expiresAt: request.expires_at, sameNetwork: true }

describe('parseApprovalNews', () => {
  it('reads a request and a closing', () => {
    expect(parseApprovalNews(request)).toEqual({ type: 'approval_request', request: open })
    expect(parseApprovalNews({ type: 'approval_closed', id: request.id, outcome: 'denied' })).toEqual({
      type: 'approval_closed',
      id: request.id,
      outcome: 'denied',
    })
  })

  it.each([
    ['an id with a slash', { ...request, id: '../account' }],
    ['a string expiry', { ...request, expires_at: 'soon' }],
    ['an unknown type', { ...request, type: 'approval_granted' }],
    ['no network hint', { ...request, same_network: undefined }],
  ])('drops a request with %s', (_name, message) => {
    expect(parseApprovalNews(message as Record<string, unknown>)).toBeNull()
  })

  it.each([
    ['an unknown outcome', { type: 'approval_closed', id: request.id, outcome: 'hacked' }],
    ['no id', { type: 'approval_closed', outcome: 'denied' }],
  ])('drops a closing with %s', (_name, message) => {
    expect(parseApprovalNews(message)).toBeNull()
  })
})

describe('readApprovalDetails', () => {
  it('joins the sealed details to the open request', () => {
    expect(readApprovalDetails(open, details)).toEqual({
      ...open,
      siteName: 'Shop',
      device: 'Chromium on Linux',
      address: '127.0.0.1',
      bindingMessage: null,
    })
  })

  it.each([
    ['an oversized device', { ...details, device: 'd'.repeat(257) }],
    ['a missing site name', { ...details, site_name: undefined }],
    ['a numeric binding message', { ...details, binding_message: 7 }],
    ['no object', null],
  ])('drops details with %s', (_name, d) => {
    expect(readApprovalDetails(open, d)).toBeNull()
  })
})
