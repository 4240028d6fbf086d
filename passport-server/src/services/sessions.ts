import type { EndReason } from '../../../passport-frame/src/protocol/codes.ts'
import type { ResolvedConfig } from '../config.ts'
import { randomSecret, sha256 } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import type { SessionRecord, SignInMethod } from '../store/types.ts'
import { recordAudit } from './audit.ts'
import { publishEvents, recordEvent } from './session-events.ts'

/**
 * The passport session is the browser's sign-in on the passport origin. Two cookies carry the
 * same value: a `SameSite=Lax` one for top-level navigations (the path that works with
 * third-party cookies blocked) and a `SameSite=None` one that reaches the frame where the
 * browser allows it. Lookups never care which one carried the value.
 */
export const SESSION_COOKIE = '__Host-passport_session'
export const CROSS_SITE_COOKIE = '__Host-passport_xs'

export async function startSession(
  deps: Pick<AppDeps, 'store' | 'clock' | 'config'>,
  userId: string,
  userAgent: string,
  method: SignInMethod = 'password',
  address?: string,
): Promise<{ cookieValue: string; session: SessionRecord }> {
  const cookieValue = randomSecret()
  const now = deps.clock.now()
  const session: SessionRecord = {
    id: sha256(cookieValue),
    userId,
    createdAt: now,
    expiresAt: now + deps.config.sessionTtlSeconds * 1000,
    endedAt: null,
    endReason: null,
    userAgent: userAgent.slice(0, 256),
    method,
    ...(address ? { address: address.slice(0, 64) } : {}),
  }
  await deps.store.sessions.create(session)
  return { cookieValue, session }
}

/** When a session stops being live: its absolute lifetime, or its idle timeout, if sooner. */
export function sessionEndsAt(
  session: SessionRecord,
  config: Pick<ResolvedConfig, 'sessionIdleSeconds'>,
): number {
  return Math.min(
    session.expiresAt,
    (session.lastSeenAt ?? session.createdAt) + config.sessionIdleSeconds * 1000,
  )
}

export function isSessionLive(
  session: SessionRecord | null,
  now: number,
  config: Pick<ResolvedConfig, 'sessionIdleSeconds'>,
): session is SessionRecord {
  return session !== null && session.endedAt === null && sessionEndsAt(session, config) > now
}

/**
 * How recent a sign-in must be for what gives lasting access to the account (adding a passkey):
 * a stolen session cookie older than this cannot register the thief's own passkey. Changing the
 * password needs more (a fresh SCRAM proof of the current one), so it does not use this.
 */
export const REAUTH_WINDOW_MS = 10 * 60_000

/** Whether `session` was signed in (password, passkey, approval) within the last `windowMs`. */
export function signedInRecently(
  session: SessionRecord,
  nowMs: number,
  windowMs = REAUTH_WINDOW_MS,
): boolean {
  return nowMs - session.createdAt <= windowMs
}

/** The live session a cookie value stands for, or null. Ids we never issued find nothing. */
export async function findLiveSession(
  deps: Pick<AppDeps, 'store' | 'clock' | 'config'>,
  cookieValue: string | undefined,
): Promise<SessionRecord | null> {
  if (!cookieValue || cookieValue.length > 128) return null
  const session = await deps.store.sessions.get(sha256(cookieValue))
  return isSessionLive(session, deps.clock.now(), deps.config) ? session : null
}

/** Ends a session and every token it holds, in one transaction, then tells the event bus. */
export async function endSession(
  deps: Pick<AppDeps, 'store' | 'clock' | 'events' | 'log'>,
  session: SessionRecord,
  reason: EndReason,
): Promise<void> {
  const at = deps.clock.now()
  const event = await deps.store.transaction(async (tx) => {
    const changed = await tx.sessions.end(session.id, reason, at)
    if (!changed) return null
    await tx.tokens.revokeSession(session.id, at, reason)
    await tx.refresh.revokeSession(session.id, at, reason)
    return recordEvent(tx, {
      type: 'session_ended',
      userId: session.userId,
      sessionId: session.id,
      siteId: null,
      reason,
      at,
    })
  })
  if (!event) return
  deps.log(reason === 'expired' ? 'session_expired' : 'session_logout', { user: session.userId, reason })
  await publishEvents(deps, [event])
  await recordAudit(deps, {
    type: 'session_ended',
    actor: null,
    userId: session.userId,
    sessionId: session.id,
    detail: { reason },
  })
}
