import { isEndReason, isErrorCode } from './codes.ts'
import {
  type FrameMessage,
  MAX_FIELD_LENGTH,
  MAX_ID_LENGTH,
  type PageRequest,
  PROTOCOL_VERSION,
} from './messages.ts'

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function isShortString(value: unknown, max = MAX_FIELD_LENGTH): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= max
}

function hasOnly(record: Record<string, unknown>, keys: readonly string[]): boolean {
  return Object.keys(record).every((key) => keys.includes(key))
}

function isEnvelope(value: unknown): value is Record<string, unknown> & { type: string } {
  return isPlainRecord(value) && value.v === PROTOCOL_VERSION && isShortString(value.type, MAX_ID_LENGTH)
}

/**
 * Validates a message a page sent to the frame. Unknown types, extra keys, oversized or
 * non-string fields are all rejected: the frame acts only on the exact shapes it knows.
 */
export function parsePageRequest(value: unknown): PageRequest | null {
  if (!isEnvelope(value) || !isShortString(value.id, MAX_ID_LENGTH)) return null
  switch (value.type) {
    case 'hello':
      return hasOnly(value, ['v', 'type', 'id', 'authkey']) && isShortString(value.authkey)
        ? (value as PageRequest)
        : null
    case 'token_request':
    case 'check':
    case 'logout':
    case 'refresh':
    case 'continue':
      return hasOnly(value, ['v', 'type', 'id']) ? (value as PageRequest) : null
    case 'proof_request':
      return hasOnly(value, ['v', 'type', 'id', 'method', 'url']) &&
        typeof value.method === 'string' &&
        /^[A-Z]{1,16}$/.test(value.method) &&
        isShortString(value.url, 2048)
        ? (value as PageRequest)
        : null
    case 'code_exchange':
      return hasOnly(value, ['v', 'type', 'id', 'code', 'codeVerifier', 'redirectUri']) &&
        isShortString(value.code, 256) &&
        isShortString(value.codeVerifier, 256) &&
        isShortString(value.redirectUri, 2048)
        ? (value as PageRequest)
        : null
    default:
      return null
  }
}

/** Validates a message the frame sent to a page: like requests, only the exact known shapes. */
export function parseFrameMessage(value: unknown): FrameMessage | null {
  if (!isEnvelope(value)) return null
  if (value.type === 'session_event') {
    const ok =
      value.event === 'signed_in'
        ? hasOnly(value, ['v', 'type', 'event'])
        : hasOnly(value, ['v', 'type', 'event', 'reason']) &&
          value.event === 'signed_out' &&
          isEndReason(value.reason)
    return ok ? (value as FrameMessage) : null
  }
  if (value.type === 'frame_display') {
    return hasOnly(value, ['v', 'type', 'visible']) && typeof value.visible === 'boolean'
      ? (value as FrameMessage)
      : null
  }
  if (value.type === 'token_refreshed') return hasOnly(value, ['v', 'type']) ? (value as FrameMessage) : null
  if (!isShortString(value.id, MAX_ID_LENGTH)) return null
  switch (value.type) {
    case 'ready':
      return hasOnly(value, ['v', 'type', 'id', 'hasToken']) && typeof value.hasToken === 'boolean'
        ? (value as FrameMessage)
        : null
    case 'token_response':
      return hasOnly(value, ['v', 'type', 'id', 'token', 'expiresAt', 'expiresIn']) &&
        isShortString(value.token) &&
        Number.isFinite(value.expiresAt) &&
        Number.isFinite(value.expiresIn)
        ? (value as FrameMessage)
        : null
    case 'check_response':
      return hasOnly(value, ['v', 'type', 'id', 'valid', 'reason', 'expiresAt', 'serverTime']) &&
        typeof value.valid === 'boolean' &&
        (value.reason === null || isEndReason(value.reason)) &&
        (value.expiresAt === null || typeof value.expiresAt === 'number') &&
        typeof value.serverTime === 'number'
        ? (value as FrameMessage)
        : null
    case 'logged_out':
      return hasOnly(value, ['v', 'type', 'id']) ? (value as FrameMessage) : null
    case 'proof_response':
      return hasOnly(value, ['v', 'type', 'id', 'token', 'proof']) &&
        isShortString(value.token) &&
        isShortString(value.proof)
        ? (value as FrameMessage)
        : null
    case 'error':
      return hasOnly(value, ['v', 'type', 'id', 'code', 'reason']) &&
        typeof value.code === 'string' &&
        isErrorCode(value.code) &&
        (value.reason === undefined || isEndReason(value.reason))
        ? (value as FrameMessage)
        : null
    default:
      return null
  }
}
