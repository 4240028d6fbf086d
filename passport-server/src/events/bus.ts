import type { ApprovalPrompt } from '../../../passport-frame/src/protocol/approval.ts'
import type { EndReason } from '../../../passport-frame/src/protocol/codes.ts'
import { errorFields, type Logger } from '../errors.ts'
import { logSafely } from '../guard.ts'

/** Something ended a user's access: a whole session, or one site's tokens on one session. */
export interface SessionEndEvent {
  /** Its id in the durable event log (`session_events`): ordered, never reused. */
  id: number
  type: 'session_ended' | 'site_access_ended'
  userId: string
  sessionId: string
  /** Set when only one site's access ended (e.g. replaced by a newer sign-in elsewhere). */
  siteId?: string
  reason: EndReason
  at: number
}

export type { ApprovalPrompt } from '../../../passport-frame/src/protocol/approval.ts'

/**
 * Device-approval news for a user's signed-in devices (and the requester's waiting page).
 * Not durable: a device that connects later is sent the user's pending requests on connect.
 */
export type ApprovalNotice =
  | { type: 'approval_request'; userId: string; prompt: ApprovalPrompt }
  | {
      type: 'approval_closed'
      userId: string | null
      approvalId: string
      outcome: 'approved' | 'denied' | 'cancelled' | 'expired'
      /** Why a cancelled request was cancelled (for the log). */
      reason?: 'code_mismatch' | 'withdrawn'
    }

/**
 * An instruction for whichever instance holds a device's live socket on a site. Not durable: a
 * device with no socket open simply does not hear it (its own schedule still refreshes it).
 */
export type LiveCommand = { type: 'refresh_now'; sessionId: string; siteId: string; requestId: string }

/**
 * Something happened to a session that the operator console's live view shows (a sign-in, a
 * site token minted or refreshed, a live socket opened or closed). Not durable and not exact:
 * it only tells a console to read the session's row again; a console that missed one still
 * has the row from its snapshot and sees the next change.
 */
export interface SessionActivity {
  sessionId: string
  userId: string | null
  type: string
}

/**
 * Fan-out of session events to whoever holds live connections. The in-process bus serves one
 * instance; a Redis-backed bus with the same interface serves several.
 */
export interface EventBus {
  publish(event: SessionEndEvent): Promise<void>
  subscribe(listener: (event: SessionEndEvent) => void): () => void
  publishApproval(notice: ApprovalNotice): Promise<void>
  subscribeApprovals(listener: (notice: ApprovalNotice) => void): () => void
  /** Commands for whichever instance holds the device's live socket (not durable). */
  publishCommand(command: LiveCommand): Promise<void>
  subscribeCommands(listener: (command: LiveCommand) => void): () => void
  /** Session activity for the consoles of every instance (not durable; see `SessionActivity`). */
  publishActivity(activity: SessionActivity): void
  subscribeActivity(listener: (activity: SessionActivity) => void): () => void
  /** False while the bus cannot deliver across instances (e.g. Redis down); `/readyz` reports it. */
  ready(): boolean
  /** Releases the bus's connections; in-process, nothing to release. */
  close(): Promise<void>
}

/**
 * A bus spanning several instances that share one event log (Redis). The log tail hands it the
 * events it reads from the log, to deliver to this instance only (the instance that wrote one
 * already published it), each event id at most once whichever way it came first; and it wakes
 * the tail the moment it is back after an outage, so the events it missed are read at once.
 */
export interface LogFollowingBus extends EventBus {
  deliverFromLog(event: SessionEndEvent): Promise<void>
  onReconnect(listener: () => void): () => void
}

export function isLogFollowingBus(bus: EventBus): bus is LogFollowingBus {
  return 'deliverFromLog' in bus && 'onReconnect' in bus
}

/**
 * Every listener hears every value: one that throws (or returns a promise that rejects) is
 * logged and the others are still called, and the publisher never sees the failure (the
 * change it reports is already committed).
 */
export function createTopic<T>(log: Logger, topic: string) {
  const listeners = new Set<(value: T) => void>()
  const failed = (err: unknown) =>
    logSafely(log, 'server_error', { listener: `bus_${topic}`, ...errorFields(err) })
  return {
    publish: async (value: T) => {
      for (const listener of [...listeners]) {
        try {
          const result: unknown = listener(value)
          if (result instanceof Promise) result.catch(failed)
        } catch (err) {
          failed(err)
        }
      }
    },
    subscribe: (listener: (value: T) => void) => {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    },
  }
}

export function createInProcessBus(log: Logger): EventBus {
  const sessions = createTopic<SessionEndEvent>(log, 'session_events')
  const approvals = createTopic<ApprovalNotice>(log, 'approvals')
  const commands = createTopic<LiveCommand>(log, 'commands')
  const activity = createTopic<SessionActivity>(log, 'activity')
  return {
    publish: sessions.publish,
    subscribe: sessions.subscribe,
    publishApproval: approvals.publish,
    subscribeApprovals: approvals.subscribe,
    publishCommand: commands.publish,
    subscribeCommands: commands.subscribe,
    publishActivity: (value) => void activity.publish(value),
    subscribeActivity: activity.subscribe,
    // One process: every listener is in it, so delivery never waits on anything.
    ready: () => true,
    close: async () => {},
  }
}
