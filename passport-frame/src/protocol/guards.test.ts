import { describe, expect, it } from 'vitest'
import { parseFrameMessage, parsePageRequest } from './guards.ts'
import { MAX_FIELD_LENGTH, MAX_ID_LENGTH } from './messages.ts'

const authkey = 'eyJzaXRlIjoibmV3cyJ9..iv.ct.tag'

const validRequests = {
  hello: { v: 1, type: 'hello', id: 'r1', authkey },
  token_request: { v: 1, type: 'token_request', id: 'r2' },
  check: { v: 1, type: 'check', id: 'r3' },
  logout: { v: 1, type: 'logout', id: 'r4' },
  continue: { v: 1, type: 'continue', id: 'r6' },
  code_exchange: {
    v: 1,
    type: 'code_exchange',
    id: 'r5',
    code: 'c0de',
    codeVerifier: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk',
    redirectUri: 'http://news.localhost:8081/',
  },
} as const

const validFrameMessages = {
  ready: { v: 1, type: 'ready', id: 'r1', hasToken: false },
  token_response: {
    v: 1,
    type: 'token_response',
    id: 'r2',
    token: 'eyJ.tok',
    expiresAt: 1_700_000_000_000,
    expiresIn: 60_000,
  },
  check_valid: {
    v: 1,
    type: 'check_response',
    id: 'r3',
    valid: true,
    reason: null,
    expiresAt: 1_700_000_000_000,
    serverTime: 1_699_999_000_000,
  },
  check_invalid: {
    v: 1,
    type: 'check_response',
    id: 'r3',
    valid: false,
    reason: 'replaced',
    expiresAt: null,
    serverTime: 1_699_999_000_000,
  },
  logged_out: { v: 1, type: 'logged_out', id: 'r4' },
  error: { v: 1, type: 'error', id: 'r5', code: 'login_required' },
  error_with_reason: { v: 1, type: 'error', id: 'r5', code: 'invalid_token', reason: 'revoked' },
  session_event: { v: 1, type: 'session_event', event: 'signed_out', reason: 'signed_out' },
  frame_display: { v: 1, type: 'frame_display', visible: true },
  token_refreshed: { v: 1, type: 'token_refreshed' },
} as const

/** Hostile variants every parser must refuse, built from one valid message. */
function abuseCases(valid: Record<string, unknown>): Array<[string, unknown]> {
  const withOwnKey = (key: string) =>
    JSON.parse(`{${JSON.stringify(valid).slice(1, -1)},"${key}":{"admin":true}}`)
  return [
    ['an extra key', { ...valid, extra: 'x' }],
    ['an own __proto__ key (JSON.parse)', withOwnKey('__proto__')],
    ['an own constructor key', withOwnKey('constructor')],
    ['an own prototype key', withOwnKey('prototype')],
    ['a non-Object prototype (__proto__ literal)', { __proto__: { admin: true }, ...valid }],
    ['a class instance', Object.assign(new (class Message {})(), valid)],
    ['v as a string', { ...valid, v: '1' }],
    ['v = 2', { ...valid, v: 2 }],
    ['no v', Object.fromEntries(Object.entries(valid).filter(([k]) => k !== 'v'))],
    ['an unknown type', { ...valid, type: 'getToken' }],
    ['type in another case', { ...valid, type: String(valid.type).toUpperCase() }],
    ['an oversized type', { ...valid, type: 'x'.repeat(MAX_ID_LENGTH + 1) }],
    ['the message wrapped in an array', [valid]],
    ['the message as a JSON string', JSON.stringify(valid)],
  ]
}

const notObjects: Array<[string, unknown]> = [
  ['null', null],
  ['undefined', undefined],
  ['a number', 1],
  ['NaN', Number.NaN],
  ['a boolean', true],
  ['a string', 'token_request'],
  ['an empty object', {}],
  ['an empty array', []],
  ['an array shaped like a message', Object.assign([], { v: 1, type: 'token_request', id: 'a' })],
  ['a Date', new Date()],
  ['a Map', new Map([['v', 1]])],
  ['an ArrayBuffer', new ArrayBuffer(8)],
  ['a typed array', new Uint8Array(8)],
  ['a Blob', new Blob(['{}'])],
  ['a RegExp', /token_request/],
  ['an Error', new Error('x')],
  ['deeply nested objects', JSON.parse(`${'{"a":'.repeat(500)}1${'}'.repeat(500)}`)],
]

describe('parsePageRequest', () => {
  it.each(Object.entries(validRequests))('accepts a valid %s', (_type, message) => {
    expect(parsePageRequest(message)).toEqual(message)
  })

  it('accepts a prototype-less object (what some cloners produce)', () => {
    const message = Object.assign(Object.create(null), validRequests.token_request)
    expect(parsePageRequest(message)).toEqual(validRequests.token_request)
  })

  it('accepts fields at their maximum length and refuses one more character', () => {
    const id = 'i'.repeat(MAX_ID_LENGTH)
    expect(parsePageRequest({ ...validRequests.token_request, id })).not.toBeNull()
    expect(parsePageRequest({ ...validRequests.token_request, id: `${id}i` })).toBeNull()

    const key = 'k'.repeat(MAX_FIELD_LENGTH)
    expect(parsePageRequest({ ...validRequests.hello, authkey: key })).not.toBeNull()
    expect(parsePageRequest({ ...validRequests.hello, authkey: `${key}k` })).toBeNull()

    const exchange = validRequests.code_exchange
    expect(parsePageRequest({ ...exchange, code: 'c'.repeat(256) })).not.toBeNull()
    expect(parsePageRequest({ ...exchange, code: 'c'.repeat(257) })).toBeNull()
    expect(parsePageRequest({ ...exchange, codeVerifier: 'v'.repeat(257) })).toBeNull()
    expect(parsePageRequest({ ...exchange, redirectUri: `http://a/${'p'.repeat(2048)}` })).toBeNull()
  })

  it('rejects a 1 MB string in any field', () => {
    const huge = 'x'.repeat(1024 * 1024)
    expect(parsePageRequest({ ...validRequests.hello, authkey: huge })).toBeNull()
    expect(parsePageRequest({ ...validRequests.token_request, id: huge })).toBeNull()
    expect(parsePageRequest({ ...validRequests.code_exchange, code: huge })).toBeNull()
  })

  describe.each(Object.entries(validRequests))('%s', (_type, valid) => {
    it.each(abuseCases(valid))('rejects %s', (_name, message) => {
      expect(parsePageRequest(message)).toBeNull()
    })

    it.each([
      ['a missing id', { ...valid, id: undefined }],
      ['an empty id', { ...valid, id: '' }],
      ['a numeric id', { ...valid, id: 1 }],
      ['an object id', { ...valid, id: { toString: () => 'r1' } }],
    ])('rejects %s', (_name, message) => {
      const copy = JSON.parse(JSON.stringify(message)) // JSON drops an undefined id
      expect(parsePageRequest(copy)).toBeNull()
      expect(parsePageRequest(message)).toBeNull()
    })
  })

  it.each([
    ['hello without authkey', { v: 1, type: 'hello', id: 'a' }],
    ['hello with an empty authkey', { ...validRequests.hello, authkey: '' }],
    ['hello with a numeric authkey', { ...validRequests.hello, authkey: 5 }],
    ['hello with an array authkey', { ...validRequests.hello, authkey: [authkey] }],
    ['hello with a nested authkey', { ...validRequests.hello, authkey: { a: { b: { c: authkey } } } }],
    ['hello naming a site (A11)', { ...validRequests.hello, site: 'shop' }],
    ['token_request naming a site (A11)', { ...validRequests.token_request, site: 'shop' }],
    ['token_request carrying a token', { ...validRequests.token_request, token: 'forged' }],
    ['code_exchange without code', { ...validRequests.code_exchange, code: undefined }],
    ['code_exchange with a numeric code', { ...validRequests.code_exchange, code: 1234 }],
    ['code_exchange without verifier', { ...validRequests.code_exchange, codeVerifier: undefined }],
    ['code_exchange with an empty redirectUri', { ...validRequests.code_exchange, redirectUri: '' }],
  ])('rejects %s', (_name, message) => {
    expect(parsePageRequest(JSON.parse(JSON.stringify(message)))).toBeNull()
  })

  it.each(notObjects)('rejects %s', (_name, value) => {
    expect(parsePageRequest(value)).toBeNull()
  })

  it('A9: does not pollute Object.prototype while rejecting pollution attempts', () => {
    for (const json of [
      '{"v":1,"type":"hello","id":"a","authkey":"k","__proto__":{"admin":true}}',
      '{"v":1,"type":"token_request","id":"a","constructor":{"prototype":{"admin":true}}}',
      '{"__proto__":{"admin":true},"v":1,"type":"logout","id":"a"}',
    ]) {
      expect(parsePageRequest(JSON.parse(json))).toBeNull()
    }
    expect(({} as Record<string, unknown>).admin).toBeUndefined()
  })

  it('rejects messages meant for the page (frame replies are not requests)', () => {
    for (const message of Object.values(validFrameMessages)) expect(parsePageRequest(message)).toBeNull()
  })
})

describe('parseFrameMessage', () => {
  it.each(Object.entries(validFrameMessages))('accepts a valid %s', (_type, message) => {
    expect(parseFrameMessage(message)).toEqual(message)
  })

  it('accepts a session_event without an id (it answers no request)', () => {
    expect(parseFrameMessage(validFrameMessages.session_event)).not.toBeNull()
    // A sign-in on another FedCM-connected site (issue 17): no reason, nothing else.
    expect(parseFrameMessage({ v: 1, type: 'session_event', event: 'signed_in' })).not.toBeNull()
    expect(parseFrameMessage({ v: 1, type: 'session_event', event: 'signed_in', token: 'x' })).toBeNull()
  })

  describe.each(Object.entries(validFrameMessages))('%s', (_type, valid) => {
    it.each(abuseCases(valid))('rejects %s', (_name, message) => {
      expect(parseFrameMessage(message)).toBeNull()
    })
  })

  it.each([
    ['ready without id', { v: 1, type: 'ready', hasToken: true }],
    ['ready with an oversized id', { ...validFrameMessages.ready, id: 'i'.repeat(MAX_ID_LENGTH + 1) }],
    ['ready with a string hasToken', { ...validFrameMessages.ready, hasToken: 'true' }],
    ['token_response with an empty token', { ...validFrameMessages.token_response, token: '' }],
    ['token_response with a numeric token', { ...validFrameMessages.token_response, token: 42 }],
    [
      'token_response with an oversized token',
      { ...validFrameMessages.token_response, token: 't'.repeat(MAX_FIELD_LENGTH + 1) },
    ],
    ['token_response with a string expiresAt', { ...validFrameMessages.token_response, expiresAt: '1' }],
    ['token_response without expiresAt', { v: 1, type: 'token_response', id: 'a', token: 't' }],
    ['check_response with a string valid', { ...validFrameMessages.check_valid, valid: 'yes' }],
    ['check_response without serverTime', { ...validFrameMessages.check_valid, serverTime: undefined }],
    ['check_response with an unknown reason', { ...validFrameMessages.check_invalid, reason: 'hacked' }],
    ['check_response with an HTML reason', { ...validFrameMessages.check_invalid, reason: '<img src=x>' }],
    ['check_response without reason', { ...validFrameMessages.check_valid, reason: undefined }],
    ['check_response with a string expiresAt', { ...validFrameMessages.check_valid, expiresAt: 'soon' }],
    ['error with an unknown code', { ...validFrameMessages.error, code: 'pwned' }],
    ['error with a numeric code', { ...validFrameMessages.error, code: 401 }],
    ['error with an unknown reason', { ...validFrameMessages.error, reason: 'because' }],
    ['error without id', { v: 1, type: 'error', code: 'login_required' }],
    ['session_event with another event', { ...validFrameMessages.session_event, event: 'signed_in' }],
    ['session_event with an unknown reason', { ...validFrameMessages.session_event, reason: 'hacked' }],
    ['session_event without reason', { v: 1, type: 'session_event', event: 'signed_out' }],
    ['frame_display with a string visible', { ...validFrameMessages.frame_display, visible: 'true' }],
    ['frame_display without visible', { v: 1, type: 'frame_display' }],
    ['token_refreshed carrying a token', { ...validFrameMessages.token_refreshed, token: 'eyJ.tok' }],
    ['frame_display carrying numbers', { ...validFrameMessages.frame_display, choices: ['42', '17', '88'] }],
  ])('rejects %s', (_name, message) => {
    expect(parseFrameMessage(JSON.parse(JSON.stringify(message)))).toBeNull()
  })

  it.each(notObjects)('rejects %s', (_name, value) => {
    expect(parseFrameMessage(value)).toBeNull()
  })

  it('rejects requests meant for the frame', () => {
    for (const message of Object.values(validRequests)) expect(parseFrameMessage(message)).toBeNull()
  })
})
