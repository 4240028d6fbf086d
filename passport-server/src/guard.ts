import type { Server as HttpServer, IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { errorFields, type Logger } from './errors.ts'

/**
 * One wrapper per kind of listener, so that a throw in one of them costs at most that request,
 * that socket or that round, never the process (@see issue 14: an upgrade to `//[` made
 * `new URL()` throw in the upgrade listener and every site of the demo stopped answering).
 * Node ends the process on an exception thrown from an event listener or timer, and on a
 * rejected promise nobody handles; each wrapper catches both, logs, and carries on.
 */

/** Logs from inside a guard: a logger that throws (stdout gone) must not undo the guard. */
export function logSafely(log: Logger, event: string, fields: Record<string, unknown>): void {
  try {
    log(event, fields)
  } catch {}
}

/**
 * Guards an `upgrade` listener. Node detaches its own error handling from the socket before it
 * emits `upgrade`, so a peer that resets while the handler is still working would otherwise
 * raise an unhandled `error` event; and a throw (sync or in the returned promise) would escape.
 * Either answers that one socket with 500 and closes it.
 */
export function guardUpgrade(
  log: Logger,
  handler: (req: IncomingMessage, socket: Duplex, head: Buffer) => void | Promise<void>,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const fail = (socket: Duplex, err: unknown) => {
    logSafely(log, 'server_error', { listener: 'upgrade', ...errorFields(err) })
    // Still a raw socket unless ws took it over; either way it is closed at once.
    if (socket.writable)
      socket.end('HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    socket.destroy()
  }
  return (req, socket, head) => {
    socket.on('error', () => socket.destroy())
    try {
      const done = handler(req, socket, head)
      if (done) done.catch((err: unknown) => fail(socket, err))
    } catch (err) {
      fail(socket, err)
    }
  }
}

/**
 * Guards a listener that serves one connection (a WebSocket's `message`, `pong`, `close`, a
 * send or ping to it): a throw is logged and `onThrow`, given the same arguments, ends that
 * connection only.
 */
export function guardListener<A extends unknown[]>(
  log: Logger,
  listener: string,
  fn: (...args: A) => void,
  onThrow: (...args: A) => void,
): (...args: A) => void {
  return (...args) => {
    try {
      fn(...args)
    } catch (err) {
      logSafely(log, 'server_error', { listener, ...errorFields(err) })
      onThrow(...args)
    }
  }
}

/**
 * Runs `task` every `intervalMs`, never two rounds at once (a slow store never piles them up),
 * without holding the process open. A round that throws or rejects is logged as `<name>_failed`
 * and the next round runs as usual. Returns the stop function.
 */
export function repeatEvery(
  log: Logger,
  name: string,
  intervalMs: number,
  task: () => void | Promise<void>,
): () => void {
  let running = false
  const timer = setInterval(() => {
    if (running) return
    running = true
    runGuarded(log, name, task).finally(() => {
      running = false
    })
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}

/** Runs `task` now; resolves when it is done, whether it succeeded or not (a failure is logged). */
export async function runGuarded(log: Logger, name: string, task: () => void | Promise<void>): Promise<void> {
  try {
    await task()
  } catch (err) {
    logSafely(log, `${name}_failed`, errorFields(err))
  }
}

/**
 * An HTTP server with no `error` listener dies on the first accept failure (EMFILE when out of
 * file descriptors): log it, keep serving the connections it has.
 */
export function guardServer(log: Logger, server: HttpServer, name: string): void {
  server.on('error', (err) => logSafely(log, 'server_error', { listener: name, ...errorFields(err) }))
}

/**
 * The last net, for a listener nobody guarded (a dependency's, a future one): a rejected promise
 * nobody handled is logged and the process keeps serving (the work it belonged to failed, the
 * rest did not). An uncaught exception is logged and the process exits, as Node advises: the
 * state after one is unknown, and a supervisor restarts a clean process.
 */
export function installLastResortHandlers(log: Logger, exit: (code: number) => void = process.exit): void {
  process.on('unhandledRejection', (reason) => logSafely(log, 'sys_unhandled_rejection', errorFields(reason)))
  process.on('uncaughtException', (err) => {
    logSafely(log, 'sys_crash', errorFields(err))
    exit(1)
  })
}
