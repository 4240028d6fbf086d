import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll } from 'vitest'
import { freePort } from '../test-support.ts'

/**
 * Test-only Redis helpers. Unit tests use the machine's shared Redis (never flushed, never
 * reconfigured: each run works under a prefix of its own and deletes its keys after); fault
 * tests start a Redis of their own that they may restart and kill.
 */
const MACHINE_REDIS_URL = 'redis://127.0.0.1:6379'

/** Whether a Redis answers PING at `url` within half a second. */
async function answers(url: string): Promise<boolean> {
  const probe = new Redis(url, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 500,
  })
  probe.on('error', () => {})
  try {
    await probe.connect()
    return (await probe.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

/**
 * The machine's Redis (127.0.0.1:6379) when one runs there, as on the project's machines and
 * CI; else a Redis this test process starts for itself (stopped when the process exits), so
 * `npm test` needs no Redis set up beforehand, only `redis-server` installed.
 */
export const SHARED_REDIS_URL = (await answers(MACHINE_REDIS_URL))
  ? MACHINE_REDIS_URL
  : await (async () => {
      const own = await startOwnRedis()
      // Imported while the test file is collected: this hook is that file's.
      afterAll(() => own.stop())
      return own.url
    })()

export function uniquePrefix(): string {
  return `passport-test:${randomBytes(6).toString('hex')}:`
}

/** Deletes every key under `prefix` (SCAN, never KEYS or FLUSH*). */
export async function deleteKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: false })
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      if (keys.length > 0) await redis.del(...keys)
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  what = 'condition',
) {
  const until = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

export interface OwnRedis {
  url: string
  port: number
  /** Stops the server (SIGKILL after a second at most); resolves once it is gone. */
  stop(): Promise<void>
  /** Starts it again on the same port (empty: no persistence). */
  start(): Promise<void>
  /** Kills the connections whose name starts with `passport-` (CLIENT KILL), as a fault. */
  killClients(): Promise<number>
  /** Freezes the server (SIGSTOP): connected, answering nothing. `thaw` resumes it. */
  freeze(): void
  thaw(): void
}

/** A Redis of the test's own (`--save '' --appendonly no`, loopback), on a free port. */
export async function startOwnRedis(): Promise<OwnRedis> {
  const port = await freePort()
  const url = `redis://127.0.0.1:${port}`
  let child: ChildProcess | null = null
  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    )
    // Never outlives the test run, whatever happens to it.
    const started = child
    process.once('exit', () => started.kill('SIGKILL'))
    const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    probe.on('error', () => {})
    try {
      await waitFor(
        async () => {
          try {
            await probe.connect()
            return (await probe.ping()) === 'PONG'
          } catch {
            probe.disconnect()
            return false
          }
        },
        5_000,
        `redis-server on ${port}`,
      )
    } finally {
      probe.disconnect()
    }
  }
  const stop = async () => {
    const running = child
    child = null
    if (!running || running.exitCode !== null) return
    const gone = new Promise<void>((resolve) => running.once('exit', () => resolve()))
    running.kill('SIGTERM')
    const timer = setTimeout(() => running.kill('SIGKILL'), 1_000)
    await gone
    clearTimeout(timer)
  }
  await start()
  return {
    url,
    port,
    stop,
    start,
    freeze: () => void (child as ChildProcess | null)?.kill('SIGSTOP'),
    thaw: () => void (child as ChildProcess | null)?.kill('SIGCONT'),
    async killClients() {
      const admin = new Redis(url)
      try {
        const list = (await admin.client('LIST')) as string
        let killed = 0
        for (const line of list.split('\n')) {
          const id = /\bid=(\d+)/.exec(line)?.[1]
          if (id && /\bname=passport-/.test(line)) {
            killed += Number(await admin.client('KILL', 'ID', id))
          }
        }
        return killed
      } finally {
        admin.disconnect()
      }
    },
  }
}
