import { Redis } from 'ioredis'
import type { Logger } from '../errors.ts'
import { logSafely } from '../guard.ts'

export type { Redis } from 'ioredis'

/** Longest a Redis command may take before its caller falls back (a hung Redis stalls nothing). */
export const REDIS_COMMAND_TIMEOUT_MS = 500
/** Longest wait between reconnect attempts while Redis is away. */
const MAX_RECONNECT_DELAY_MS = 1_000

/**
 * One connection to the shared Redis, set up for a passport that must keep working without it:
 *
 * - no offline queue: while disconnected a command fails at once, so the caller uses its
 *   in-process fallback now instead of queueing behind a dead socket (sign-ins never wait on
 *   Redis), and nothing stale is replayed into Redis when it is back;
 * - a short command timeout for the same reason when Redis is reachable but does not answer;
 * - reconnects forever, quickly (at most a second apart), resubscribing its channels;
 * - errors logged once per outage, not once per retry.
 */
export function openRedis(
  url: string,
  log: Logger,
  role: string,
  options: { subscriber?: boolean } = {},
): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(50 * attempt, MAX_RECONNECT_DELAY_MS),
    // The bus subscribes by hand on every connection (it must know when it hears again).
    autoResubscribe: !options.subscriber,
    // Commands issued in the same tick go out in one write (many sign-ins and frame calls at
    // once cost one round trip, not one each); not for a subscriber, which sends few.
    enableAutoPipelining: !options.subscriber,
    lazyConnect: false,
    // Our own name in CLIENT LIST, for an operator looking at who is connected.
    connectionName: `passport-${role}`,
  })
  let down = false
  redis.on('error', (err: Error) => {
    if (down) return
    down = true
    // The message only: a redis:// URL with a password is never logged.
    logSafely(log, 'redis_unavailable', { role, error: err.name, message: err.message.slice(0, 200) })
  })
  redis.on('ready', () => {
    if (!down) return
    down = false
    logSafely(log, 'redis_available', { role })
  })
  redis.on('close', () => {
    if (redis.status !== 'end' && !down) {
      down = true
      logSafely(log, 'redis_unavailable', { role, error: 'closed' })
    }
  })
  return redis
}

/** Quits politely (pending replies first), or cuts the socket if Redis is not there to answer. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return
  if (redis.status !== 'ready') {
    redis.disconnect()
    return
  }
  try {
    await redis.quit()
  } catch {
    redis.disconnect()
  }
}
