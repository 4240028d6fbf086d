import type { Server as HttpServer, IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { type RawData, type WebSocket, WebSocketServer } from 'ws'
import {
  SIGN_IN_MAX_BYTES,
  SIGN_IN_PATH,
  SIGN_IN_PROTOCOL,
} from '../../../passport-frame/src/protocol/sign-in.ts'
import { systemClock } from '../clock.ts'
import type { AppDeps } from '../deps.ts'
import { errorFields } from '../errors.ts'
import { guardListener, guardUpgrade } from '../guard.ts'
import { resolveClientAddress, trustedProxiesOf } from '../services/client-address.ts'
import { createRateWindow } from '../services/rate-window.ts'
import { createSignInExchange } from './sign-in-exchange.ts'

export { SIGN_IN_PATH }

/** Sign-in sockets one process holds at once; beyond it upgrades get 503. */
const MAX_SOCKETS = 2_000
/** A sign-in socket lives this long at most (the page opens a new one when it needs one). */
const SOCKET_LIFETIME_MS = 5 * 60_000
/** Upgrades one address may make per minute. */
const MAX_CONNECTS_PER_ADDRESS = 30

/**
 * The SCRAM sign-in socket at `SIGN_IN_PATH` on the passport's own HTTP server (protocol in
 * `protocol/sign-in.ts`, state machine in `sign-in-exchange.ts`). Same machinery as the live
 * channel: refused before any WebSocket exists unless the `Origin` is the passport's own (only
 * its sign-in page may open it: 403) and the sub-protocol is named; no compression; one
 * message in flight at a time; bounded size, count, rate and lifetime.
 */
export function attachSignInSocket(input: { server: HttpServer; deps: AppDeps }): {
  close(): void
  connectionCount(): number
} {
  const { server, deps } = input
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: SIGN_IN_MAX_BYTES,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(SIGN_IN_PROTOCOL) ? SIGN_IN_PROTOCOL : false),
  })
  const sockets = new Set<WebSocket>()
  const connects = createRateWindow(systemClock, MAX_CONNECTS_PER_ADDRESS, 60_000)

  const reject = (socket: Duplex, status: 400 | 403 | 429 | 503, reason: string, origin?: string) => {
    deps.log('ws_upgrade_rejected', {
      reason,
      status,
      path: SIGN_IN_PATH,
      ...(origin ? { origin: origin.slice(0, 100) } : {}),
    })
    const text = {
      400: 'Bad Request',
      403: 'Forbidden',
      429: 'Too Many Requests',
      503: 'Service Unavailable',
    }[status]
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    socket.destroy()
  }

  const onSocket = (ws: WebSocket, address: string) => {
    sockets.add(ws)
    const exchange = createSignInExchange(deps, address)
    const lifetime = setTimeout(() => ws.close(1000, 'sign-in socket lifetime'), SOCKET_LIFETIME_MS)
    let busy = false
    ws.on('close', () => {
      clearTimeout(lifetime)
      sockets.delete(ws)
    })
    ws.on('error', () => ws.terminate())
    ws.on(
      'message',
      guardListener(
        deps.log,
        'sign_in_message',
        (data: RawData, isBinary: boolean) => {
          // One message at a time: a page never has two steps in flight.
          if (busy || isBinary) return ws.close(1008, 'one text message at a time')
          busy = true
          const text = Buffer.isBuffer(data)
            ? data.toString('utf8')
            : Buffer.from(data as ArrayBuffer).toString('utf8')
          exchange.handle(text).then(
            ({ reply, close }) => {
              busy = false
              if (ws.readyState !== ws.OPEN) return
              ws.send(JSON.stringify(reply))
              if (close) ws.close(1000, 'done')
            },
            (err: unknown) => {
              deps.log('server_error', { listener: 'sign_in_socket', ...errorFields(err) })
              if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'error', code: 'server_error' }))
              ws.close(1011, 'server error')
            },
          )
        },
        () => ws.terminate(),
      ),
    )
  }

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = URL.parse(req.url ?? '/', 'http://localhost')
    // Other paths belong to the live channel's listener.
    if (!url || url.pathname !== SIGN_IN_PATH) return
    if (sockets.size >= MAX_SOCKETS) return reject(socket, 503, 'server_full')
    const address = resolveClientAddress(
      req.socket.remoteAddress,
      req.headers['x-forwarded-for'] as string | undefined,
      trustedProxiesOf(deps.config.trustedProxies),
    )
    if (!connects.take(address).allowed) return reject(socket, 429, 'too_many_connects')
    const origin = req.headers.origin
    if (origin !== deps.config.issuer) return reject(socket, 403, 'origin_not_allowed', origin)
    const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim())
    if (!protocols.includes(SIGN_IN_PROTOCOL)) return reject(socket, 400, 'missing_protocol')
    wss.handleUpgrade(req, socket, head, (ws) => onSocket(ws, address))
  }
  server.on('upgrade', guardUpgrade(deps.log, onUpgrade))

  return {
    close: () => {
      for (const ws of sockets) ws.terminate()
      wss.close()
    },
    connectionCount: () => sockets.size,
  }
}
