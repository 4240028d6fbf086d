/**
 * Which devices have a live socket open right now ("Your devices", the console, `session list`).
 * Each instance records the sockets it holds; the in-process presence answers for one instance,
 * a shared one (Redis) for all of them behind the load balancer.
 */
export interface LiveSocketInfo {
  sessionId: string
  siteId: string
  userId: string
  connectedAt: number
}

export interface LivePresence {
  /** Records one authenticated live socket; call the returned function when it closes. */
  connected(info: LiveSocketInfo): () => void
  /** Open sockets per session (all instances), for the sessions given; absent = none. */
  countsBySession(sessionIds: string[]): Promise<Map<string, number>>
  /** Open sockets per site of one session (all instances); absent = none. */
  countsBySessionSite(sessionId: string): Promise<Map<string, number>>
}

export function createInProcessPresence(): LivePresence {
  // sessionId -> siteId -> open sockets
  const open = new Map<string, Map<string, number>>()
  return {
    connected(info) {
      const sites = open.get(info.sessionId) ?? new Map<string, number>()
      open.set(info.sessionId, sites)
      sites.set(info.siteId, (sites.get(info.siteId) ?? 0) + 1)
      let released = false
      return () => {
        // Idempotent: a close reported twice must not hide another tab's socket.
        if (released) return
        released = true
        const left = (sites.get(info.siteId) ?? 1) - 1
        if (left > 0) sites.set(info.siteId, left)
        else sites.delete(info.siteId)
        if (sites.size === 0 && open.get(info.sessionId) === sites) open.delete(info.sessionId)
      }
    },
    async countsBySession(sessionIds) {
      const counts = new Map<string, number>()
      for (const id of sessionIds) {
        let total = 0
        for (const n of open.get(id)?.values() ?? []) total += n
        if (total > 0) counts.set(id, total)
      }
      return counts
    },
    async countsBySessionSite(sessionId) {
      return new Map(open.get(sessionId) ?? [])
    },
  }
}
