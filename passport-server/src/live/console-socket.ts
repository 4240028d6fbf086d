import type { Server as HttpServer, IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { parse as parseCookies } from 'hono/utils/cookie'
import { type WebSocket, WebSocketServer } from 'ws'
import {
  CLOSE_NOT_ADMIN,
  CONSOLE_LIVE_PATH,
  CONSOLE_LIVE_PROTOCOL,
  type ConsoleMessage,
} from '../../../passport-frame/src/protocol/console.ts'
import type { AppDeps } from '../deps.ts'
import { guardListener, guardUpgrade, logSafely } from '../guard.ts'
import { adminOfCookie } from '../services/admins.ts'
import { consoleSessionRow, listConsoleSessions } from '../services/console-view.ts'
import { SESSION_COOKIE } from '../services/sessions.ts'

/**
 * The console's live socket at `/admin/live`: a snapshot of every live session, then one
 * message per change, pushed the moment it happens (no polling): a session that ended (the
 * bus's session events, from every instance), a site ended on a device, a sign-in, a token
 * minted or refreshed, a live socket opened or closed (session activity, from every instance). Only the
 * passport's own origin and an admin's passport session open it; everyone else gets 403
 * before any WebSocket exists.
 *
 * Messages: `ConsoleMessage` (protocol/console.ts).
 */
export { CLOSE_NOT_ADMIN, CONSOLE_LIVE_PATH, CONSOLE_LIVE_PROTOCOL }

export function attachConsoleSocket(input: {
  server: HttpServer
  deps: Pick<AppDeps, 'config' | 'store' | 'events' | 'presence' | 'log' | 'clock'>
}): { close(): void } {
  const { server, deps } = input
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 1024,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(CONSOLE_LIVE_PROTOCOL) ? CONSOLE_LIVE_PROTOCOL : false),
  })
  const sockets = new Set<{ ws: WebSocket; adminSessionId: string; adminUserId: string }>()

  const reject = (socket: Duplex, status: 400 | 403, reason: string) => {
    deps.log('ws_upgrade_rejected', { reason, status, path: CONSOLE_LIVE_PATH })
    socket.end(
      `HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : 'Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    )
    socket.destroy()
  }

  const send = guardListener(
    deps.log,
    'console_send',
    (ws: WebSocket, message: ConsoleMessage) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message))
    },
    (ws) => ws.terminate(),
  )
  const broadcast = (message: ConsoleMessage) => {
    for (const s of sockets) send(s.ws, message)
  }

  // Changes for the same session in one burst (a sign-in mints, touches, connects) go out once.
  const pending = new Set<string>()
  let flushing = false
  const changed = (sessionId: string) => {
    if (sockets.size === 0) return
    pending.add(sessionId)
    if (flushing) return
    flushing = true
    setImmediate(() => {
      flushing = false
      const ids = [...pending]
      pending.clear()
      for (const id of ids) {
        consoleSessionRow(deps, id).then(
          (row) =>
            broadcast(
              row
                ? { type: 'session', now: deps.clock.now(), row }
                : { type: 'session_removed', now: deps.clock.now(), id },
            ),
          (err: unknown) =>
            logSafely(deps.log, 'server_error', { listener: 'console_row', cause: String(err) }),
        )
      }
    })
  }

  const unsubscribe = deps.events.subscribe((event) => {
    for (const s of sockets) {
      if (event.type === 'session_ended' && event.sessionId === s.adminSessionId)
        s.ws.close(CLOSE_NOT_ADMIN, 'signed out')
    }
    if (event.type === 'session_ended') {
      broadcast({ type: 'session_removed', now: deps.clock.now(), id: event.sessionId, reason: event.reason })
    } else {
      changed(event.sessionId)
    }
  })
  const unwatch = deps.events.subscribeActivity((activity) => changed(activity.sessionId))

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (req.headers.origin !== deps.config.issuer) return reject(socket, 403, 'origin_not_allowed')
    const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim())
    if (!protocols.includes(CONSOLE_LIVE_PROTOCOL)) return reject(socket, 400, 'missing_protocol')
    const cookies = parseCookies(req.headers.cookie ?? '', SESSION_COOKIE)
    const admin = await adminOfCookie(deps, cookies[SESSION_COOKIE])
    if (!admin) return reject(socket, 403, 'not_admin')
    wss.handleUpgrade(req, socket, head, (ws) => {
      const entry = { ws, adminSessionId: admin.session.id, adminUserId: admin.user.id }
      sockets.add(entry)
      ws.on('close', () => sockets.delete(entry))
      ws.on('error', () => ws.terminate())
      // Nothing is read from the console: any message closes the socket.
      ws.on('message', () => ws.close(1003, 'no messages expected'))
      listConsoleSessions(deps).then(
        (sessions) => send(ws, { type: 'snapshot', now: deps.clock.now(), sessions }),
        () => ws.close(1011, 'server error'),
      )
    })
  }
  const guarded = guardUpgrade(deps.log, onUpgrade)
  const listener = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = URL.parse(req.url ?? '/', 'http://localhost')?.pathname
    if (path === CONSOLE_LIVE_PATH) guarded(req, socket, head)
  }
  server.on('upgrade', listener)

  return {
    close: () => {
      server.off('upgrade', listener)
      unsubscribe()
      unwatch()
      for (const s of sockets) s.ws.terminate()
      wss.close()
    },
  }
}
