import type { PasskeyChallengeRecord, PasskeyRecord } from './types.ts'

/** Rows of the passkey tables as both engines hand them out (PostgreSQL's BIGINTs as strings). */

const nullableNumber = (v: unknown) => (v === null || v === undefined ? null : Number(v))

export const toPasskey = (r: Record<string, unknown>): PasskeyRecord => ({
  id: r.id as string,
  userId: r.user_id as string,
  userHandle: r.user_handle as string,
  publicKey: r.public_key as string,
  counter: Number(r.counter),
  transports: JSON.parse(r.transports as string),
  deviceType: r.device_type as PasskeyRecord['deviceType'],
  backedUp: Number(r.backed_up) === 1,
  aaguid: r.aaguid as string,
  name: r.name as string,
  createdAt: Number(r.created_at),
  lastUsedAt: nullableNumber(r.last_used_at),
  removedAt: nullableNumber(r.removed_at),
})

export const toPasskeyChallenge = (r: Record<string, unknown>): PasskeyChallengeRecord => ({
  id: r.id as string,
  challenge: r.challenge as string,
  bindingHash: r.binding_hash as string,
  purpose: r.purpose as PasskeyChallengeRecord['purpose'],
  userId: (r.user_id as string | null) ?? null,
  sessionId: (r.session_id as string | null) ?? null,
  userHandle: (r.user_handle as string | null) ?? null,
  createdAt: Number(r.created_at),
  expiresAt: Number(r.expires_at),
  usedAt: nullableNumber(r.used_at),
})
