import type { EndReason } from '../../../passport-frame/src/protocol/codes.ts'

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

/**
 * Fan-out of session events to whoever holds live connections. The in-process bus serves one
 * instance; a Redis-backed bus with the same interface serves several.
 */
export interface EventBus {
  publish(event: SessionEndEvent): Promise<void>
  subscribe(listener: (event: SessionEndEvent) => void): () => void
}

export function createInProcessBus(): EventBus {
  const listeners = new Set<(event: SessionEndEvent) => void>()
  return {
    publish: async (event) => {
      for (const listener of listeners) listener(event)
    },
    subscribe: (listener) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}
