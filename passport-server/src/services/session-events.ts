import type { AppDeps } from '../deps.ts'
import type { SessionEndEvent } from '../events/bus.ts'
import type { SessionEventRecord, StoreTx } from '../store/types.ts'

/**
 * Every end of a session or of a site's access is written to the durable event log inside the
 * transaction that makes the change, and published only after it commits: nothing is pushed
 * that did not happen, and nothing that happened is lost to a crash between the two (a frame
 * that reconnects resumes from the log).
 */
export function recordEvent(tx: StoreTx, event: Omit<SessionEventRecord, 'id'>): Promise<SessionEventRecord> {
  return tx.events.append(event)
}

/** The bus's form of a logged event. */
export function sessionEndEvent(e: SessionEventRecord): SessionEndEvent {
  return {
    id: e.id,
    type: e.type,
    userId: e.userId,
    sessionId: e.sessionId,
    ...(e.siteId ? { siteId: e.siteId } : {}),
    reason: e.reason,
    at: e.at,
  }
}

export async function publishEvents(
  deps: Pick<AppDeps, 'events'>,
  events: SessionEventRecord[],
): Promise<void> {
  for (const e of events) await deps.events.publish(sessionEndEvent(e))
}
