import type { Server as HttpServer, IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { type WebSocket, WebSocketServer } from 'ws'
import type { AppDeps } from '../deps.ts'
import type { ApprovalPrompt, SessionEndEvent } from '../events/bus.ts'
import { pendingPrompts } from '../services/device-approval.ts'
import type { LiveBinding, LiveTicketValidator } from '../services/live-tickets.ts'

/** Sub-protocol of the live channel; the registration code rides along as `code.<value>`. */
export const LIVE_PROTOCOL = 'passport.v1'
export const LIVE_PATH = '/live'

export interface LiveLimits {
  /** Largest message a client may send (bytes); the server closes with 1009 above it. */
  maxMessageBytes: number
  /** Messages a client may send per `rateWindowMs` before it is closed with 1008. */
  maxMessagesPerWindow: number
  rateWindowMs: number
  /** Open connections per user across all their devices and sites. */
  maxConnectionsPerUser: number
  /**
   * Open connections per process. Each costs a file descriptor: keep this well under the
   * process's fd limit (LimitNOFILE) so HTTP (sign-in, refresh) never starves; raise both together.
   */
  maxConnections: number
  /** Ping interval; a connection that missed a whole interval's pong is dropped. */
  heartbeatMs: number
  /** Most events replayed to a resuming connection. */
  maxReplay: number
}

export const defaultLiveLimits: LiveLimits = {
  maxMessageBytes: 1024,
  maxMessagesPerWindow: 20,
  rateWindowMs: 10_000,
  maxConnectionsPerUser: 50,
  maxConnections: 15_000,
  heartbeatMs: 30_000,
  maxReplay: 100,
}

/** Close codes the frame understands. */
export const CLOSE_SESSION_ENDED = 4000
export const CLOSE_RATE_LIMITED = 1008

/** Server → frame messages. */
export type LiveMessage =
  | { type: 'welcome'; last_event_id: number }
  | { type: 'session_event'; id: number; reason: SessionEndEvent['reason']; site_id: string | null }
  | {
      type: 'approval_request'
      id: string
      site_name: string
      device: string
      address: string
      binding_message: string | null
      expires_at: number
      /** Whether the request came from the address this device is connected from (proximity hint). */
      same_network: boolean
    }
  | { type: 'approval_closed'; id: string; outcome: 'approved' | 'denied' | 'cancelled' | 'expired' }

const approvalRequest = (p: ApprovalPrompt, conn: Connection): LiveMessage => ({
  type: 'approval_request',
  id: p.id,
  site_name: p.siteName,
  device: p.device,
  address: p.address,
  binding_message: p.bindingMessage,
  expires_at: p.expiresAt,
  same_network: p.address === conn.address,
})

interface Connection {
  ws: WebSocket
  binding: LiveBinding
  alive: boolean
  /** The TCP peer (a proxy's address behind one), compared with a sign-in request's. */
  address: string
}

/**
 * The live channel: token-authenticated WebSockets at `/live` on the passport's own HTTP server
 * (or on a server of its own, given a validator that asks the passport over HTTP).
 *
 * The upgrade is refused before any WebSocket exists unless the `Origin` is the passport's
 * (only its frame may connect: 403) and a single-use ticket with its registration code
 * validates (401). Then the server replays the events of that session it missed since the
 * last event id the frame saw, and pushes each new one the moment it is published: a session
 * that ended, or this site's access on it. After an ending event the connection is closed.
 * It also carries "sign in with another device" requests to every connection of the user (the
 * ones still open are sent on connect) and their closing, so every device can take them down.
 */
export function attachLiveServer(input: {
  server: HttpServer
  deps: Pick<AppDeps, 'config' | 'store' | 'events' | 'log' | 'clock'>
  validator: LiveTicketValidator
  limits?: Partial<LiveLimits>
}): { close(): void; connectionCount(): number } {
  const { server, deps, validator } = input
  const limits = { ...defaultLiveLimits, ...input.limits }
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxMessageBytes,
    perMessageDeflate: false, // compression off: no compression bombs, no CRIME-style leaks
    handleProtocols: (protocols) => (protocols.has(LIVE_PROTOCOL) ? LIVE_PROTOCOL : false),
  })
  const bySession = new Map<string, Set<Connection>>()
  const byUser = new Map<string, Set<Connection>>()
  let total = 0

  const reject = (socket: Duplex, status: 401 | 403 | 404 | 429 | 503, reason: string, origin?: string) => {
    deps.log('ws_upgrade_rejected', { reason, status, ...(origin ? { origin: origin.slice(0, 100) } : {}) })
    const text = {
      401: 'Unauthorized',
      403: 'Forbidden',
      404: 'Not Found',
      429: 'Too Many Requests',
      503: 'Service Unavailable',
    }[status]
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    socket.destroy()
  }

  const send = (conn: Connection, message: LiveMessage) => {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify(message))
  }

  const concerns = (event: { siteId?: string | null }, binding: LiveBinding) =>
    event.siteId === undefined || event.siteId === null || event.siteId === binding.siteId

  const deliver = (
    conn: Connection,
    event: { id: number; reason: SessionEndEvent['reason']; siteId?: string | null },
  ) => {
    send(conn, { type: 'session_event', id: event.id, reason: event.reason, site_id: event.siteId ?? null })
    conn.ws.close(CLOSE_SESSION_ENDED, 'session ended')
  }

  const unsubscribe = deps.events.subscribe((event) => {
    for (const conn of bySession.get(event.sessionId) ?? []) {
      if (concerns(event, conn.binding)) deliver(conn, event)
    }
  })
  const unsubscribeApprovals = deps.events.subscribeApprovals((notice) => {
    if (notice.userId === null) return
    for (const conn of byUser.get(notice.userId) ?? []) {
      send(
        conn,
        notice.type === 'approval_request'
          ? approvalRequest(notice.prompt, conn)
          : { type: 'approval_closed', id: notice.approvalId, outcome: notice.outcome },
      )
    }
  })
  const join = (index: Map<string, Set<Connection>>, key: string, conn: Connection) => {
    const set = index.get(key) ?? new Set()
    set.add(conn)
    index.set(key, set)
  }
  const leave = (index: Map<string, Set<Connection>>, key: string, conn: Connection) => {
    const set = index.get(key)
    set?.delete(conn)
    if (set?.size === 0) index.delete(key)
  }

  const onConnection = async (ws: WebSocket, binding: LiveBinding, resumeFrom: number, address: string) => {
    const conn: Connection = { ws, binding, alive: true, address }
    join(bySession, binding.sessionId, conn)
    join(byUser, binding.userId, conn)
    total += 1

    let windowStart = Date.now()
    let count = 0
    ws.on('message', () => {
      const now = Date.now()
      if (now - windowStart > limits.rateWindowMs) {
        windowStart = now
        count = 0
      }
      if (++count > limits.maxMessagesPerWindow) {
        deps.log('ws_closed', { reason: 'rate_limited', user: binding.userId })
        ws.close(CLOSE_RATE_LIMITED, 'too many messages')
      }
    })
    ws.on('pong', () => {
      conn.alive = true
    })
    ws.on('close', () => {
      total -= 1
      leave(bySession, binding.sessionId, conn)
      leave(byUser, binding.userId, conn)
    })
    ws.on('error', () => ws.terminate())

    // Registered first, then the replay: an event published in between is both live and in
    // the log, and the frame drops the second copy by id (exactly once).
    const missed = await deps.store.events.since(binding.sessionId, resumeFrom, limits.maxReplay)
    const latest = await deps.store.events.latestId()
    send(conn, { type: 'welcome', last_event_id: latest })
    const ending = missed.find((e) => concerns(e, binding))
    if (ending) return deliver(conn, ending)
    // Ended before the point the frame resumes from (it already knows, or never will from us):
    // close so that it re-checks validity instead of holding a channel for a dead session.
    const token = await deps.store.tokens.get(binding.jti)
    const session = await deps.store.sessions.get(binding.sessionId)
    if (!token || token.revokedAt !== null || !session || session.endedAt !== null) {
      ws.close(CLOSE_SESSION_ENDED, 'session ended')
      return
    }
    // Requests opened while this device had no connection.
    for (const prompt of await pendingPrompts(deps, binding.userId)) send(conn, approvalRequest(prompt, conn))
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (url.pathname !== LIVE_PATH) return reject(socket, 404, 'unknown_path')
    // Full: refuse before any work, so sign-in and refresh keep their file descriptors.
    if (total >= limits.maxConnections) return reject(socket, 503, 'server_full')
    const origin = req.headers.origin
    if (origin !== deps.config.issuer) return reject(socket, 403, 'origin_not_allowed', origin)
    const ticket = url.searchParams.get('ticket') ?? ''
    const siteId = url.searchParams.get('site') ?? ''
    const resumeFrom = Number(url.searchParams.get('last_event_id') ?? '0')
    const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim())
    const code = protocols.find((p) => p.startsWith('code.'))?.slice(5) ?? ''
    if (!ticket || !code || !protocols.includes(LIVE_PROTOCOL)) return reject(socket, 401, 'missing_ticket')
    if (!Number.isSafeInteger(resumeFrom) || resumeFrom < 0) return reject(socket, 401, 'bad_resume_id')
    validator.validate({ ticket, registrationCode: code }).then(
      (binding) => {
        if (!binding) return reject(socket, 401, 'invalid_ticket')
        // A ticket works only for the site it was issued for (the frame names its site).
        if (binding.siteId !== siteId) return reject(socket, 401, 'ticket_for_another_site')
        if ((byUser.get(binding.userId)?.size ?? 0) >= limits.maxConnectionsPerUser) {
          return reject(socket, 429, 'too_many_connections')
        }
        wss.handleUpgrade(req, socket, head, (ws) => {
          onConnection(ws, binding, resumeFrom, req.socket.remoteAddress ?? 'unknown').catch(() =>
            ws.close(1011, 'server error'),
          )
        })
      },
      () => reject(socket, 401, 'validator_unavailable'),
    )
  })

  const heartbeat = setInterval(() => {
    for (const set of bySession.values()) {
      for (const conn of set) {
        if (!conn.alive) {
          conn.ws.terminate()
          continue
        }
        conn.alive = false
        conn.ws.ping()
      }
    }
  }, limits.heartbeatMs)
  heartbeat.unref()

  return {
    close: () => {
      clearInterval(heartbeat)
      unsubscribe()
      unsubscribeApprovals()
      for (const set of bySession.values()) for (const conn of set) conn.ws.terminate()
      wss.close()
    },
    connectionCount: () => total,
  }
}
