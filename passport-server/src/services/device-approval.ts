import { randomBytes, randomInt } from 'node:crypto'
import { randomSecret, sha256 } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import type { ApprovalNotice, ApprovalPrompt } from '../events/bus.ts'
import type { ApprovalRecord, SessionRecord, SiteRecord } from '../store/types.ts'
import { recordAudit } from './audit.ts'
import { countersOf } from './counters.ts'
import { createSharedRateWindow } from './rate-window.ts'
import { allowsLoginMode } from './registry.ts'
import { isSessionLive } from './sessions.ts'
import { createTimedBlock } from './timed-block.ts'
import { describeUserAgent } from './user-agent.ts'

/**
 * "Sign in with another device" with number matching (seed 001).
 *
 * A new device asks on behalf of a username; the passport shows it a random two-digit code
 * and pushes the request to every device where that user is signed in. The approving device is
 * never shown the code: the user types the two digits the new device shows. The right code
 * approves; a deny or one wrong code cancels; two minutes end it. So a user who approves without
 * looking passes 1 time in 100, and never twice. Every decision is a compare-and-swap on a
 * pending request, so racing decisions have exactly one outcome, and the approval is then used once.
 *
 * The requester proves it is the requester with a secret only it holds (a cookie of the new
 * browser, or CIBA's auth_req_id); the store keeps its hash. An unknown username gets a request
 * that looks the same and that nobody is ever shown: the form does not reveal who has an account.
 */
export const APPROVAL_TTL_MS = 2 * 60_000
/** Store-wide (all instances) cap on requests waiting for one username at once. */
export const MAX_PENDING_PER_USER = 3
/** An approval must be picked up by the new device within this long. */
export const APPROVED_USE_WITHIN_MS = 60_000
/**
 * Push fatigue: at most this many requests per username in `RATE_WINDOW_MS` reach the account's
 * devices; and requests per client address in the same window.
 */
export const REQUESTS_PER_USER = 3
export const REQUESTS_PER_ADDRESS = 30
export const RATE_WINDOW_MS = 10 * 60_000
/** After "Deny, I did not ask for this", the account takes no new request for this long. */
export const BLOCK_AFTER_DENY_MS = 60 * 60_000

export type ApprovalRefusal =
  | 'too_many_pending'
  | 'rate_limited'
  /** The user denied a request recently ("I did not ask for this"). */
  | 'blocked'
  /** The site does not allow this way of signing in (its login modes). */
  | 'mode_not_allowed'

export type DecisionOutcome =
  | { outcome: 'approved' }
  /** A wrong code: the request is cancelled. */
  | { outcome: 'mismatch' }
  | { outcome: 'denied' }
  /** Not pending any more (decided, expired, used), or never existed. */
  | { outcome: 'gone' }
  /** Another user's request: this device may not answer it. */
  | { outcome: 'not_yours' }

/** What the requester sees of its request. */
export type RequesterView = Pick<
  ApprovalRecord,
  'id' | 'kind' | 'code' | 'siteId' | 'context' | 'expiresAt'
> & {
  status: ApprovalRecord['status']
}

export type Answer = { code: string } | { deny: true }

/**
 * An answer as a form or the frame sends it: exactly one of a two-digit `code` or `deny: true`;
 * anything else (both, neither, another shape) is null and must change nothing.
 */
export function readAnswer(code: unknown, deny: unknown): Answer | null {
  if (deny === true && code === undefined) return { deny: true }
  if (deny === undefined && typeof code === 'string' && /^\d\d$/.test(code)) return { code }
  return null
}

/**
 * The code the new device shows: uniform over 00–99 from the CSPRNG (`randomInt` rejects
 * biased draws), leading zero kept, so one blind try matches 1 time in 100.
 */
export function drawCode(): string {
  return String(randomInt(0, 100)).padStart(2, '0')
}

async function promptOf(deps: Pick<AppDeps, 'store'>, a: ApprovalRecord): Promise<ApprovalPrompt> {
  const site = await deps.store.sites.get(a.siteId)
  return {
    id: a.id,
    siteName: site?.name ?? a.siteId,
    // A backchannel request names its client; a browser is described, never shown raw.
    device: a.kind === 'ciba' ? a.userAgent : describeUserAgent(a.userAgent),
    address: a.address,
    bindingMessage: a.kind === 'ciba' && a.context ? a.context : null,
    expiresAt: a.expiresAt,
  }
}

/** Resolves true at the first notice that matches, false when `ms` pass first (long polls). */
export function waitForNotice(
  deps: Pick<AppDeps, 'events'>,
  matches: (notice: ApprovalNotice) => boolean,
  ms: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(false), ms)
    const stop = deps.events.subscribeApprovals((notice) => {
      if (matches(notice)) done(true)
    })
    const done = (value: boolean) => {
      clearTimeout(timer)
      stop()
      resolve(value)
    }
  })
}

/** Publishes approval news; a bus failure is logged, never thrown into the decision it reports. */
function announce(
  deps: Pick<AppDeps, 'events' | 'log' | 'store' | 'clock'>,
  notice: ApprovalNotice,
): Promise<void> {
  if (notice.type === 'approval_closed') {
    const { userId: user, approvalId: approval, outcome } = notice
    // The audit log keeps every decision (not the code); it never fails the decision itself.
    void recordAudit(deps, {
      type: `approval_${outcome}`,
      actor: null,
      userId: user,
      detail: { approval, ...(notice.reason ? { reason: notice.reason } : {}) },
    })
    if (outcome === 'approved') deps.log('approval_granted', { user, approval })
    else deps.log('approval_rejected', { user, approval, reason: notice.reason ?? outcome })
    // A denial means someone tried to sign in as this user and the user said no.
    if (outcome === 'denied') deps.log('authn_login_fail', { user, via: 'device_approval' })
  }
  return deps.events
    .publishApproval(notice)
    .catch((err: unknown) =>
      deps.log('approval_notify_failed', { cause: String((err as Error)?.message ?? err) }),
    )
}

/**
 * Ends the requests whose two minutes are up and tells everyone who shows them (the approving
 * devices take the prompt down, the waiting browser learns at once). Run by the expiry sweeper;
 * a request past its time is refused everywhere even before the sweep reaches it.
 */
export async function expireDueApprovals(
  deps: Pick<AppDeps, 'store' | 'clock' | 'events' | 'log'>,
  limit = 500,
): Promise<number> {
  const expired = await deps.store.approvals.expireDue(deps.clock.now(), limit)
  for (const a of expired)
    await announce(deps, { type: 'approval_closed', userId: a.userId, approvalId: a.id, outcome: 'expired' })
  return expired.length
}

/**
 * One open request of `userId`'s, as their devices show it: what the frame asks for, sealed,
 * after the live channel told it only the request's id (docs/sign-in.md, "Sealed payloads").
 * Null for another user's, a decided or an expired one.
 */
export async function pendingPromptOf(
  deps: Pick<AppDeps, 'store' | 'clock'>,
  approvalId: string,
  userId: string,
): Promise<ApprovalPrompt | null> {
  const a = await deps.store.approvals.get(approvalId)
  if (!a || a.userId !== userId || a.status !== 'pending' || a.expiresAt <= deps.clock.now()) return null
  return promptOf(deps, a)
}

/** The user's requests still open, as their devices show them (sent to a device on connect). */
export async function pendingPrompts(
  deps: Pick<AppDeps, 'store' | 'clock'>,
  userId: string,
): Promise<ApprovalPrompt[]> {
  const pending = await deps.store.approvals.listPending(userId, deps.clock.now())
  return Promise.all(pending.map((a) => promptOf(deps, a)))
}

export function createDeviceApprovals(
  deps: Pick<AppDeps, 'store' | 'clock' | 'events' | 'log' | 'config' | 'counters'>,
) {
  // Shared across instances (with Redis): a request may land on any instance, and a deny on
  // one must hold off the next request on all of them.
  const counters = countersOf(deps)
  const perUser = createSharedRateWindow(counters, 'approval_user', REQUESTS_PER_USER, RATE_WINDOW_MS)
  const perAddress = createSharedRateWindow(
    counters,
    'approval_address',
    REQUESTS_PER_ADDRESS,
    RATE_WINDOW_MS,
  )
  // Keys: the username as typed (`requestedFor`) and `user:<id>`; set by a deny.
  const deniedRecently = createTimedBlock(counters, 'approval_denied', BLOCK_AFTER_DENY_MS)
  const refuse = (refusal: ApprovalRefusal, retryAfterSeconds: number) =>
    ({ ok: false, refusal, retryAfterSeconds }) as const

  const notify = (notice: ApprovalNotice) => announce(deps, notice)
  const closed = (
    a: ApprovalRecord,
    outcome: 'approved' | 'denied' | 'cancelled',
    reason?: 'code_mismatch' | 'withdrawn',
  ) =>
    notify({
      type: 'approval_closed',
      userId: a.userId,
      approvalId: a.id,
      outcome,
      ...(reason ? { reason } : {}),
    })

  /**
   * The request a requester's secret stands for, only if it is of the kind the caller serves: a
   * CIBA client's auth_req_id must never work as a browser's cookie (it would buy a whole
   * passport session instead of one site token), nor the other way round.
   */
  const bySecret = async (secret: string | undefined, kind: ApprovalRecord['kind']) => {
    if (!secret || secret.length > 128) return null
    const a = await deps.store.approvals.getBySecretHash(sha256(secret))
    return a && a.kind === kind ? a : null
  }

  return {
    /**
     * Opens a request for `username` on `site`. The secret goes to the requester alone; the
     * store keeps only its hash.
     */
    async request(input: {
      username: string
      site: SiteRecord
      kind: ApprovalRecord['kind']
      context: string
      userAgent: string
      address: string
    }): Promise<
      | { ok: true; approval: ApprovalRecord; secret: string }
      | { ok: false; refusal: ApprovalRefusal; retryAfterSeconds: number }
    > {
      const mode = input.kind === 'ciba' ? 'ciba' : 'device'
      if (!allowsLoginMode(input.site, mode)) return refuse('mode_not_allowed', 0)
      const username = input.username.trim().slice(0, 64)
      const requestedFor = sha256(username.toLowerCase())
      const blockedByName = await deniedRecently.retryAfterSeconds(requestedFor)
      if (blockedByName > 0) return refuse('blocked', blockedByName)
      // Counted by the username as typed, before looking it up: an unknown name is refused at
      // exactly the same point as a real one (no account discovery).
      for (const gate of [await perAddress.take(input.address), await perUser.take(requestedFor)]) {
        if (!gate.allowed) {
          deps.log('excess_rate_limit_exceeded', { what: 'device_approval' })
          return refuse('rate_limited', gate.retryAfterSeconds)
        }
      }
      const user = await deps.store.users.findByUsername(username)
      const blockedById = user ? await deniedRecently.retryAfterSeconds(`user:${user.id}`) : 0
      if (blockedById > 0) return refuse('blocked', blockedById)
      const now = deps.clock.now()
      const secret = randomSecret()
      const code = drawCode()
      const approval: ApprovalRecord = {
        id: randomBytes(16).toString('base64url'),
        secretHash: sha256(secret),
        kind: input.kind,
        userId: user?.id ?? null,
        requestedFor,
        siteId: input.site.id,
        code,
        userAgent: input.userAgent.slice(0, 256),
        address: input.address.slice(0, 64),
        context: input.context,
        createdAt: now,
        expiresAt: now + APPROVAL_TTL_MS,
        status: 'pending',
        decidedAt: null,
        decidedBy: null,
      }
      // Counting and inserting in one transaction: two requests at once cannot both be the third.
      const created = await deps.store.transaction(async (tx) => {
        if ((await tx.approvals.countPending(requestedFor, now)) >= MAX_PENDING_PER_USER) return false
        await tx.approvals.create(approval)
        return true
      })
      if (!created) {
        deps.log('approval_rejected', { user: user?.id ?? null, reason: 'too_many_pending' })
        return refuse('too_many_pending', APPROVAL_TTL_MS / 1000)
      }
      deps.log('approval_requested', { user: user?.id ?? null, approval: approval.id, kind: input.kind })
      if (user)
        await notify({ type: 'approval_request', userId: user.id, prompt: await promptOf(deps, approval) })
      return { ok: true, approval, secret }
    },

    /**
     * A signed-in device answers: the two digits the new device shows, or a deny ("I did not ask
     * for this"). The approving session must be live and the user's own; anything else is `gone`
     * and changes nothing. A wrong code cancels the request at once: one blind try in 100 passes.
     */
    async decide(input: {
      approvalId: string
      approver: SessionRecord
      answer: Answer
    }): Promise<DecisionOutcome> {
      const now = deps.clock.now()
      const { approver } = input
      const approval = await deps.store.approvals.get(input.approvalId)
      if (!approval || !isSessionLive(approver, now, deps.config)) return { outcome: 'gone' }
      if (approval.userId !== approver.userId) {
        deps.log('authz_fail', { user: approver.userId, what: 'approval_of_another_user' })
        return { outcome: 'not_yours' }
      }
      if ('deny' in input.answer) {
        const denied = await deps.store.approvals.decide(approval.id, 'denied', now, approver.id)
        if (!denied) return { outcome: 'gone' }
        // The user says someone else is trying: no new request reaches them for an hour.
        await deniedRecently.block(denied.requestedFor)
        await deniedRecently.block(`user:${approver.userId}`)
        deps.log('authn_login_lock', {
          user: approver.userId,
          via: 'device_approval',
          reason: 'denied_by_user',
          seconds: BLOCK_AFTER_DENY_MS / 1000,
        })
        await closed(denied, 'denied')
        return { outcome: 'denied' }
      }
      if (input.answer.code === approval.code) {
        const approved = await deps.store.approvals.decide(approval.id, 'approved', now, approver.id)
        if (!approved) return { outcome: 'gone' }
        await closed(approved, 'approved')
        return { outcome: 'approved' }
      }
      // Compare-and-swap like the approval: of a racing right and wrong code exactly one counts.
      const cancelled = await deps.store.approvals.decide(approval.id, 'cancelled', now, approver.id)
      if (!cancelled) return { outcome: 'gone' }
      deps.log('approval_code_mismatch', { user: cancelled.userId, approval: cancelled.id })
      await closed(cancelled, 'cancelled', 'code_mismatch')
      return { outcome: 'mismatch' }
    },

    /** The requester's own view of its request, by its secret; null for a secret we never issued. */
    async view(secret: string | undefined, kind: ApprovalRecord['kind']): Promise<RequesterView | null> {
      const a = await bySecret(secret, kind)
      if (!a) return null
      const expired = a.status === 'pending' && a.expiresAt <= deps.clock.now()
      return {
        id: a.id,
        kind: a.kind,
        code: a.code,
        siteId: a.siteId,
        context: a.context,
        expiresAt: a.expiresAt,
        status: expired ? 'expired' : a.status,
      }
    },

    /** The requester withdraws its own request (it goes away as if denied). */
    async withdraw(secret: string | undefined, kind: ApprovalRecord['kind']): Promise<boolean> {
      const a = await bySecret(secret, kind)
      const cancelled = a && (await deps.store.approvals.decide(a.id, 'cancelled', deps.clock.now(), null))
      if (!cancelled) return false
      await closed(cancelled, 'cancelled', 'withdrawn')
      return true
    },

    /** Uses an approval, once: returns the user to sign in, or null. */
    async redeem(secret: string | undefined, kind: ApprovalRecord['kind']): Promise<ApprovalRecord | null> {
      const a = await bySecret(secret, kind)
      if (!a || a.userId === null) return null
      const now = deps.clock.now()
      // The approving device must still be signed in when its approval is used: a device
      // revoked (or timed out) since it approved vouches for nobody (attack H4).
      const approver = a.decidedBy ? await deps.store.sessions.get(a.decidedBy) : null
      if (a.status === 'approved' && !isSessionLive(approver, now, deps.config)) {
        deps.log('approval_rejected', { user: a.userId, approval: a.id, reason: 'approver_ended' })
        return null
      }
      return deps.store.approvals.markUsed(a.id, now - APPROVED_USE_WITHIN_MS)
    },

    /** Waits until the request with this id is decided or `ms` passes (the requester's long poll). */
    waitForChange: (approvalId: string, ms: number): Promise<boolean> =>
      waitForNotice(deps, (n) => n.type === 'approval_closed' && n.approvalId === approvalId, ms),
  }
}

export type DeviceApprovals = ReturnType<typeof createDeviceApprovals>
