import type { Server as HttpServer } from 'node:http'
import type { Logger } from './errors.ts'
import type { LiveServerHandle } from './live/live-server.ts'
import type { DrainState } from './routes/health.ts'

export interface ShutdownOptions {
  /**
   * How long the instance keeps serving after `/readyz` turned 503, so that the load balancer's
   * health check sees it before the listener closes (`PASSPORT_DRAIN_DELAY_MS`; default 0: a
   * connection refused meanwhile is sent to another instance by the balancer's retry).
   */
  delayMs?: number
  /** Longest wait for the requests in flight (default 10 s); their connections are then cut. */
  graceMs?: number
}

export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000

/** Counts the HTTP requests being answered right now. */
export function trackRequests(server: HttpServer): { inFlight(): number } {
  let count = 0
  server.on('request', (_req, res) => {
    count += 1
    res.once('close', () => {
      count -= 1
    })
  })
  return { inFlight: () => count }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * The graceful stop of one instance (SIGTERM, a rolling restart), in this order:
 *
 * 1. `/readyz` answers 503 (`draining`) and new WebSocket upgrades get 503: the load balancer
 *    stops sending work here; `delayMs` gives its health check time to notice.
 * 2. The listener closes (new connections are refused, so the balancer retries them on another
 *    instance; idle keep-alive connections are closed), and every live socket is closed with
 *    `CLOSE_RESTARTING`: the frames reconnect at once, elsewhere, and resume by event id.
 * 3. Requests in flight are answered, for at most `graceMs`; whatever is left is then cut.
 * 4. The background jobs stop, then `release` closes the bus and the store.
 *
 * Nothing here signs anybody out: the sessions are in the store, and the frames come back.
 */
export async function shutdownGracefully(
  input: {
    http: HttpServer
    live: LiveServerHandle
    drain: DrainState
    requests: { inFlight(): number }
    stopJobs: () => void
    release: () => Promise<void>
    log: Logger
  },
  options: ShutdownOptions = {},
): Promise<void> {
  const { http, live, drain, requests, log } = input
  const graceMs = options.graceMs ?? DEFAULT_SHUTDOWN_GRACE_MS
  const started = Date.now()
  drain.draining = true
  live.refuseNew()
  log('sys_shutdown', { phase: 'draining', delay_ms: options.delayMs ?? 0 })
  if (options.delayMs) await sleep(options.delayMs)

  const closed = new Promise<void>((resolve) => http.close(() => resolve()))
  live.closeForRestart()
  const deadline = Date.now() + graceMs
  // Answered requests leave their keep-alive connection idle: closed as they go.
  while ((requests.inFlight() > 0 || live.connectionCount() > 0) && Date.now() < deadline) {
    http.closeIdleConnections()
    await sleep(25)
  }
  const cut = requests.inFlight()
  http.closeAllConnections()
  live.close() // sockets that did not finish their close handshake
  input.stopJobs()
  await Promise.race([closed, sleep(1_000)])
  await input.release()
  log('sys_shutdown', { phase: 'stopped', ms: Date.now() - started, requests_cut: cut })
}
