import type { Server as HttpServer, IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { type RawData, type WebSocket, WebSocketServer } from 'ws'
import {
  CLOSE_RATE_LIMITED,
  CLOSE_RESTARTING,
  CLOSE_SESSION_ENDED,
  CLOSE_UNAUTHENTICATED,
  LIVE_AUTH_MAX_BYTES,
  LIVE_AUTH_TIMEOUT_MS,
  LIVE_PATH,
  LIVE_PROTOCOL,
  type LiveChallenge,
  type LiveRefreshNow,
  type LiveWelcome,
} from '../../../passport-frame/src/protocol/live.ts'
import { systemClock } from '../clock.ts'
import { randomSecret } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { errorFields } from '../errors.ts'
import type { ApprovalPrompt, SessionEndEvent } from '../events/bus.ts'
import { guardListener, guardUpgrade, repeatEvery } from '../guard.ts'
import { resolveClientAddress, trustedProxiesOf } from '../services/client-address.ts'
import { pendingPrompts } from '../services/device-approval.ts'
import type { LiveAuthenticator, LiveBinding } from '../services/live-auth.ts'
import { createRateWindow } from '../services/rate-window.ts'
import { MAX_PROOF_LENGTH } from '../tokens/dpop.ts'
import { MAX_TOKEN_LENGTH } from '../tokens/site-token.ts'
import { CONSOLE_LIVE_PATH } from './console-socket.ts'

export { CLOSE_RATE_LIMITED, CLOSE_SESSION_ENDED, CLOSE_UNAUTHENTICATED, LIVE_PATH, LIVE_PROTOCOL }

const SITE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/

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
  /** How long a socket may stay without answering its challenge. */
  authTimeoutMs: number
  /** Upgrade attempts one client address may make per `connectWindowMs` (429 beyond). */
  maxConnectsPerAddress: number
  connectWindowMs: number
}

export const defaultLiveLimits: LiveLimits = {
  maxMessageBytes: 1024,
  maxMessagesPerWindow: 20,
  rateWindowMs: 10_000,
  maxConnectionsPerUser: 50,
  maxConnections: 15_000,
  heartbeatMs: 30_000,
  maxReplay: 100,
  authTimeoutMs: LIVE_AUTH_TIMEOUT_MS,
  // A frame reconnects with backoff; 60 a minute is a whole office behind one address.
  maxConnectsPerAddress: 60,
  connectWindowMs: 60_000,
}

/** Server → frame messages. */
export type LiveMessage =
  | LiveChallenge
  | LiveWelcome
  | LiveRefreshNow
  | { type: 'session_event'; id: number; reason: SessionEndEvent['reason']; site_id: string | null }
  | {
      /**
       * Only that a request is open: what it says of itself (site, browser, address, message) the
       * frame fetches sealed (`POST /api/frame/approval/details`, docs/sign-in.md), so no frame of
       * this socket (a TLS-terminating box, a logging proxy) reads it.
       */
      type: 'approval_request'
      id: string
      expires_at: number
      /** Whether the request came from the address this device is connected from (proximity hint). */
      same_network: boolean
    }
  | { type: 'approval_closed'; id: string; outcome: 'approved' | 'denied' | 'cancelled' | 'expired' }

const approvalRequest = (p: ApprovalPrompt, conn: Connection): LiveMessage => ({
  type: 'approval_request',
  id: p.id,
  expires_at: p.expiresAt,
  same_network: p.address === conn.address,
})

/**
 * The heartbeat pings one slice of the sockets each tenth of its period: every socket still once
 * a period, never all at once (16,000 pings in one tick, then their pongs, held an instance's
 * event loop long enough to delay its requests by over a second: bench/README.md, "scale").
 */
const HEARTBEAT_SLICES = 10

interface Connection {
  ws: WebSocket
  binding: LiveBinding
  alive: boolean
  /** Which tick of the heartbeat's period pings this socket. */
  slot: number
  /** The TCP peer (a proxy's address behind one), compared with a sign-in request's. */
  address: string
}

/**
 * The live channel: WebSockets at `/live` on the passport's own HTTP server (or on a server of
 * its own, given an authenticator that asks the passport over HTTP).
 *
 * The upgrade is refused before any WebSocket exists unless the `Origin` is the passport's
 * (only its frame may connect: 403) and the request names a site and the sub-protocol. The
 * socket then hears nothing but a challenge until the frame answers it with its token and a
 * DPoP proof by the key that token is bound to (see `protocol/live.ts`): no request, ticket or
 * credential in the URL opens it, and a token without the frame's key opens nothing. Then the
 * server replays the events of that session it missed since the last event id the frame saw,
 * and pushes each new one the moment it is published: a session that ended, or this site's
 * access on it. After an ending event the connection is closed. It also carries "sign in with
 * another device" requests to every connection of the user (the ones still open are sent on
 * connect) and their closing, so every device can take them down.
 */
export function attachLiveServer(input: {
  server: HttpServer
  deps: Pick<AppDeps, 'config' | 'store' | 'events' | 'presence' | 'log' | 'clock' | 'metrics'>
  authenticator: LiveAuthenticator
  limits?: Partial<LiveLimits>
  /** Upgrade paths another listener on the same server answers (the sign-in socket). */
  otherPaths?: readonly string[]
}): LiveServerHandle {
  const { server, deps, authenticator } = input
  const limits = { ...defaultLiveLimits, ...input.limits }
  const wss = new WebSocketServer({
    noServer: true,
    // The challenge's answer carries a token and a proof; later messages are held to
    // `maxMessageBytes` by the message handler.
    maxPayload: Math.max(limits.maxMessageBytes, LIVE_AUTH_MAX_BYTES),
    perMessageDeflate: false, // compression off: no compression bombs, no CRIME-style leaks
    handleProtocols: (protocols) => (protocols.has(LIVE_PROTOCOL) ? LIVE_PROTOCOL : false),
  })
  const bySession = new Map<string, Set<Connection>>()
  const byUser = new Map<string, Set<Connection>>()
  let total = 0
  let draining = false
  let slots = 0
  /** Sockets still answering their challenge: they hold a descriptor too. */
  let unauthenticated = 0
  const connectsByAddress = createRateWindow(
    systemClock,
    limits.maxConnectsPerAddress,
    limits.connectWindowMs,
  )

  const reject = (
    socket: Duplex,
    status: 400 | 403 | 404 | 429 | 503,
    reason: string,
    origin?: string,
    retryAfterSeconds?: number,
  ) => {
    deps.log('ws_upgrade_rejected', { reason, status, ...(origin ? { origin: origin.slice(0, 100) } : {}) })
    const text = {
      400: 'Bad Request',
      403: 'Forbidden',
      404: 'Not Found',
      429: 'Too Many Requests',
      503: 'Service Unavailable',
    }[status]
    const retry = retryAfterSeconds ? `Retry-After: ${retryAfterSeconds}\r\n` : ''
    socket.end(`HTTP/1.1 ${status} ${text}\r\n${retry}Connection: close\r\nContent-Length: 0\r\n\r\n`)
    socket.destroy()
  }

  /** A socket whose send throws is dropped; the others still get the message. */
  const sendTo = guardListener(
    deps.log,
    'live_send',
    (ws: WebSocket, message: LiveMessage) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message))
    },
    (ws) => ws.terminate(),
  )
  const send = (conn: Connection, message: LiveMessage) => {
    if (message.type !== 'welcome') deps.metrics?.pushed('live', message.type)
    sendTo(conn.ws, message)
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
  // "Refresh now" for one device on one site: only its sockets on that site hear it.
  const unsubscribeCommands = deps.events.subscribeCommands((command) => {
    for (const conn of bySession.get(command.sessionId) ?? []) {
      if (conn.binding.siteId !== command.siteId) continue
      send(conn, { type: 'refresh_now', request_id: command.requestId })
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

  /**
   * An authenticated socket. `resumeFrom` is the last event id the frame saw; a frame with no
   * history (null) starts from now: whether its sign-in ended before, it learns below.
   */
  const onConnection = async (
    ws: WebSocket,
    binding: LiveBinding,
    resumeFrom: number | null,
    address: string,
  ) => {
    const conn: Connection = { ws, binding, alive: true, address, slot: slots++ % HEARTBEAT_SLICES }
    join(bySession, binding.sessionId, conn)
    join(byUser, binding.userId, conn)
    total += 1
    const released = deps.presence.connected({
      sessionId: binding.sessionId,
      siteId: binding.siteId,
      userId: binding.userId,
      connectedAt: deps.clock.now(),
    })
    deps.events.publishActivity({ sessionId: binding.sessionId, userId: binding.userId, type: 'socket' })

    // One fixed window per socket, kept as two numbers: a rate-window map and its closures for
    // each of tens of thousands of idle sockets cost memory for nothing (issue 15's bench).
    // The system clock, not the app's: a test's frozen clock would never open a new window.
    let windowStart = 0
    let windowMessages = 0
    const messageAllowed = () => {
      const now = systemClock.now()
      if (now - windowStart >= limits.rateWindowMs) {
        windowStart = now
        windowMessages = 0
      }
      windowMessages += 1
      return windowMessages <= limits.maxMessagesPerWindow
    }
    // A throw in any of these ends this socket only (ws would rethrow it from the TCP stream).
    const on = <A extends unknown[]>(name: string, fn: (...args: A) => void) =>
      guardListener(deps.log, `live_${name}`, fn, () => ws.terminate())
    ws.on(
      'message',
      on('message', (data: RawData) => {
        if (messageBytes(data) > limits.maxMessageBytes) {
          deps.log('ws_closed', { reason: 'message_too_large', user: binding.userId })
          ws.close(1009, 'message too large')
          return
        }
        if (!messageAllowed()) {
          deps.log('ws_closed', { reason: 'rate_limited', user: binding.userId })
          ws.close(CLOSE_RATE_LIMITED, 'too many messages')
        }
      }),
    )
    ws.on(
      'pong',
      on('pong', () => {
        conn.alive = true
      }),
    )
    ws.on(
      'close',
      on('close', () => {
        total -= 1
        leave(bySession, binding.sessionId, conn)
        leave(byUser, binding.userId, conn)
        released()
        deps.events.publishActivity({ sessionId: binding.sessionId, userId: binding.userId, type: 'socket' })
      }),
    )

    // Registered first, then the replay: an event published in between is both live and in
    // the log, and the frame drops the second copy by id (exactly once).
    const latest = await deps.store.events.latestId()
    const missed =
      resumeFrom === null
        ? []
        : await deps.store.events.since(binding.sessionId, resumeFrom, limits.maxReplay)
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

  /**
   * The first message must answer the challenge; until it does, the socket hears nothing else.
   * It is not yet in any index, so no event or prompt can reach it.
   */
  const authenticate = (ws: WebSocket, siteId: string, resumeFrom: number | null, address: string) => {
    unauthenticated += 1
    let answered = false
    const settle = () => {
      if (answered) return false
      answered = true
      unauthenticated -= 1
      clearTimeout(timer)
      return true
    }
    const fail = (reason: string) => {
      deps.log('ws_upgrade_rejected', { reason, site: siteId })
      ws.close(CLOSE_UNAUTHENTICATED, 'authenticate first')
    }
    const timer = setTimeout(
      guardListener(
        deps.log,
        'live_auth_timeout',
        () => settle() && fail('auth_timeout'),
        () => ws.terminate(),
      ),
      limits.authTimeoutMs,
    )
    ws.on('close', () => settle())
    // Invalid frames (bad opcode, unmasked, bad UTF-8, oversized) arrive here: drop the socket.
    ws.on('error', () => ws.terminate())
    const nonce = randomSecret()
    sendTo(ws, { type: 'challenge', nonce })

    const connectionFailed = (err: unknown) => {
      deps.log('server_error', { listener: 'live_connection', ...errorFields(err) })
      ws.close(1011, 'server error')
    }
    ws.once(
      'message',
      guardListener(
        deps.log,
        'live_auth',
        (data: RawData, isBinary: boolean) => {
          if (!settle()) return
          const answer = isBinary ? null : parseAuth(data)
          if (!answer) return fail('malformed_auth')
          authenticator.authenticate({ ...answer, nonce, siteId }).then((binding) => {
            if (ws.readyState !== ws.OPEN) return
            if (!binding) return fail('invalid_proof_or_token')
            if ((byUser.get(binding.userId)?.size ?? 0) >= limits.maxConnectionsPerUser) {
              deps.log('ws_closed', { reason: 'too_many_connections', user: binding.userId })
              ws.close(CLOSE_RATE_LIMITED, 'too many connections')
              return
            }
            onConnection(ws, binding, resumeFrom, address).catch(connectionFailed)
          }, connectionFailed)
        },
        () => ws.terminate(),
      ),
    )
  }

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Any bytes may arrive as the target (`//[` makes `new URL` throw): a bad one is a 400.
    const url = URL.parse(req.url ?? '/', 'http://localhost')
    if (!url) return reject(socket, 400, 'bad_request_target')
    if (input.otherPaths?.includes(url.pathname)) return
    // The console's socket has its own listener (console-socket.ts).
    if (url.pathname === CONSOLE_LIVE_PATH && server.listenerCount('upgrade') > 1) return
    if (url.pathname !== LIVE_PATH) return reject(socket, 404, 'unknown_path')
    // Shutting down: the frame tries again, and the load balancer sends it to another instance.
    if (draining) return reject(socket, 503, 'draining')
    // Full: refuse before any work, so sign-in and refresh keep their file descriptors.
    if (total + unauthenticated >= limits.maxConnections) return reject(socket, 503, 'server_full')
    const address = resolveClientAddress(
      req.socket.remoteAddress,
      req.headers['x-forwarded-for'] as string | undefined,
      trustedProxiesOf(deps.config.trustedProxies),
    )
    const gate = connectsByAddress.take(address)
    if (!gate.allowed) return reject(socket, 429, 'too_many_connects', undefined, gate.retryAfterSeconds)
    const origin = req.headers.origin
    if (origin !== deps.config.issuer) return reject(socket, 403, 'origin_not_allowed', origin)
    const siteId = url.searchParams.get('site') ?? ''
    const resumeParam = url.searchParams.get('last_event_id')
    const resumeFrom = resumeParam === null || resumeParam === '' ? null : Number(resumeParam)
    const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim())
    if (!protocols.includes(LIVE_PROTOCOL)) return reject(socket, 400, 'missing_protocol')
    if (!SITE_ID.test(siteId)) return reject(socket, 400, 'bad_site')
    if (resumeFrom !== null && (!Number.isSafeInteger(resumeFrom) || resumeFrom < 0)) {
      return reject(socket, 400, 'bad_resume_id')
    }
    wss.handleUpgrade(req, socket, head, (ws) => authenticate(ws, siteId, resumeFrom, address))
  }
  server.on('upgrade', guardUpgrade(deps.log, onUpgrade))

  const beat = guardListener(
    deps.log,
    'live_heartbeat',
    (conn: Connection) => {
      if (!conn.alive) return conn.ws.terminate()
      conn.alive = false
      conn.ws.ping()
    },
    (conn) => conn.ws.terminate(),
  )
  let tick = 0
  const stopHeartbeat = repeatEvery(deps.log, 'live_heartbeat', limits.heartbeatMs / HEARTBEAT_SLICES, () => {
    const slot = tick++ % HEARTBEAT_SLICES
    for (const set of bySession.values()) for (const conn of set) if (conn.slot === slot) beat(conn)
  })

  return {
    close: () => {
      stopHeartbeat()
      unsubscribe()
      unsubscribeApprovals()
      unsubscribeCommands()
      // Every socket, also those still challenged or being checked (a check that answers later
      // finds its socket no longer open and leaves it): an upgraded socket left open keeps the
      // HTTP server's close() waiting until the browser goes (a test's afterEach hung).
      for (const ws of wss.clients) ws.terminate()
      wss.close()
    },
    connectionCount: () => total,
    refuseNew: () => {
      draining = true
    },
    closeForRestart: () => {
      draining = true
      for (const ws of wss.clients) ws.close(CLOSE_RESTARTING, 'server restarting')
    },
  }
}

export interface LiveServerHandle {
  /** Ends every socket at once (no close handshake) and stops listening for events. */
  close(): void
  connectionCount(): number
  /** Graceful shutdown, first step: new upgrades get 503 (the frame tries again elsewhere). */
  refuseNew(): void
  /**
   * Graceful shutdown, once the listener is closed: every open socket (authenticated or still
   * answering its challenge) is closed with `CLOSE_RESTARTING`, on which the frame reconnects at
   * once, through the load balancer to another instance, and resumes by event id.
   */
  closeForRestart(): void
}

/** Bytes of a message however `ws` hands it over (one buffer, fragments, or an ArrayBuffer). */
function messageBytes(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, part) => sum + part.length, 0)
  return data instanceof ArrayBuffer ? data.byteLength : data.length
}

/** The frame's answer to the challenge: `{ type: 'auth', token, proof }`, or null. */
function parseAuth(data: RawData): { token: string; proof: string } | null {
  let message: unknown
  try {
    message = JSON.parse(
      Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8'),
    )
  } catch {
    return null
  }
  const m = message as { type?: unknown; token?: unknown; proof?: unknown } | null
  if (
    typeof m !== 'object' ||
    m === null ||
    m.type !== 'auth' ||
    typeof m.token !== 'string' ||
    typeof m.proof !== 'string' ||
    m.token.length === 0 ||
    m.token.length > MAX_TOKEN_LENGTH ||
    m.proof.length > MAX_PROOF_LENGTH
  ) {
    return null
  }
  return { token: m.token, proof: m.proof }
}
