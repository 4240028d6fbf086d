import { describe, expect, it } from 'vitest'
import { parseApprovalNews } from './approval-messages.ts'

const request = {
  type: 'approval_request',
  id: 'Zm9vYmFyYmF6cXV4MTIzNA',
  site_name: 'Shop',
  device: 'Chromium on Linux',
  address: '127.0.0.1',
  binding_message: null,
  expires_at: 1_700_000_120_000,
  same_network: true,
}

describe('parseApprovalNews', () => {
  it('reads a request and a closing', () => {
    expect(parseApprovalNews(request)).toEqual({
      type: 'approval_request',
      request: {
        id: request.id,
        siteName: 'Shop',
        device: 'Chromium on Linux',
        address: '127.0.0.1',
        bindingMessage: null,
        expiresAt: request.expires_at,
        sameNetwork: true,
      },
    })
    expect(parseApprovalNews({ type: 'approval_closed', id: request.id, outcome: 'denied' })).toEqual({
      type: 'approval_closed',
      id: request.id,
      outcome: 'denied',
    })
  })

  it.each([
    ['an id with a slash', { ...request, id: '../account' }],
    ['an oversized device', { ...request, device: 'd'.repeat(257) }],
    ['a missing site name', { ...request, site_name: undefined }],
    ['a string expiry', { ...request, expires_at: 'soon' }],
    ['a numeric binding message', { ...request, binding_message: 7 }],
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
