import type { ChildProcess } from 'node:child_process'
import { spawnSync } from 'node:child_process'
import http from 'node:http'
import os from 'node:os'

/**
 * The plumbing the multi-process benchmarks share: a parent calls named operations in its
 * children over Node's IPC channel; every child exits when its parent goes away, when told to,
 * and after a hard deadline in any case. Plus the load generators' one HTTP request.
 */

export interface Child<R extends string = string> {
  role: R
  pid: number
  call<T>(op: string, args?: unknown): Promise<T>
  stop(): Promise<void>
}

/** Whether there are two cores to pin server and load generator apart with `taskset`. */
export function canPin(): boolean {
  return os.availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0
}

/** Parent side: request/response calls to a spawned child, each with a timeout. */
export function attachChild<R extends string>(
  proc: ChildProcess,
  role: R,
  callTimeoutMs = 120_000,
): Child<R> {
  let next = 0
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()
  let exited = false
  proc.on('message', (raw) => {
    const { id, result, error } = raw as { id: number; result?: unknown; error?: string }
    const p = pending.get(id)
    if (!p) return
    pending.delete(id)
    if (error) p.reject(new Error(`${role}: ${error}`))
    else p.resolve(result)
  })
  proc.on('exit', (code, signal) => {
    exited = true
    for (const p of pending.values()) p.reject(new Error(`${role} child exited (${code ?? signal})`))
    pending.clear()
  })
  const call = <T>(op: string, args?: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (exited) return reject(new Error(`${role} child is gone`))
      const id = next++
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new Error(`${role}: ${op} timed out`))
      }, callTimeoutMs)
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer)
          resolve(v as T)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      })
      proc.send({ id, op, args })
    })
  return {
    role,
    pid: proc.pid ?? 0,
    call,
    stop: async () => {
      if (exited) return
      const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
      await Promise.race([call('stop').catch(() => {}), new Promise((r) => setTimeout(r, 5000))])
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5000)
      await gone
      clearTimeout(killer)
    },
  }
}

type Handler = (args: never) => unknown

/** Child side: answers the parent's calls with `handlers` (plus `usage` and `stop`). */
export function serveIpc(
  handlers: Record<string, Handler>,
  options: { usage: () => unknown; hardDeadlineMs?: number; cleanup?: () => Promise<void> | void },
) {
  let stopping = false
  const stop = async (code: number) => {
    if (stopping) return
    stopping = true
    try {
      await options.cleanup?.()
    } finally {
      process.exit(code)
    }
  }
  setTimeout(() => void stop(3), options.hardDeadlineMs ?? 10 * 60_000).unref()
  process.on('disconnect', () => void stop(0))
  process.on('message', (raw) => {
    const { id, op, args } = raw as { id: number; op: string; args: unknown }
    if (op === 'stop') {
      process.send?.({ id, result: null }, () => void stop(0))
      return
    }
    const handler = op === 'usage' ? options.usage : handlers[op]
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`unknown op ${op}`)
        return (handler as (a: unknown) => unknown)(args)
      })
      .then(
        (result) => process.send?.({ id, result }),
        (err: unknown) => process.send?.({ id, error: String((err as Error)?.stack ?? err) }),
      )
  })
}

/**
 * One POST over a keep-alive agent, the answer read whole (the load generators' request); its
 * headers too, for the ones a client keeps (`DPoP-Nonce`).
 */
export function post(
  agent: http.Agent,
  url: URL,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { ...headers, 'Content-Length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString(),
            headers: res.headers,
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}
