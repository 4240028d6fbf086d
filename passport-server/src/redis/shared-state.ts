import { randomBytes } from 'node:crypto'
import type { Clock } from '../clock.ts'
import type { ResolvedConfig } from '../config.ts'
import type { AppDeps } from '../deps.ts'
import type { Logger } from '../errors.ts'
import { createInProcessBus } from '../events/bus.ts'
import { createRedisBus } from '../events/redis-bus.ts'
import { createInProcessPresence } from '../live/presence.ts'
import { createRedisPresence } from '../live/redis-presence.ts'
import { createRedisCounters } from '../services/redis-counters.ts'
import { closeRedis, openRedis } from './client.ts'

/**
 * What instances share, chosen by `config.redisUrl`: with it, the event bus, live-socket
 * presence and the shared counters are in Redis (three connections: the bus's publisher and
 * subscriber, and one for presence and counters); without it, all in this process.
 *
 * The bus's `close()` releases every connection (the pinned interfaces give presence and
 * counters no close of their own).
 */
export function createSharedState(input: {
  config: ResolvedConfig
  log: Logger
  clock: Clock
  /** This instance's id in Redis (the bus channel, the presence record); random by default. */
  instanceId?: string
}): Pick<AppDeps, 'events' | 'presence' | 'counters'> {
  const { config, log } = input
  if (config.redisUrl === '') return { events: createInProcessBus(log), presence: createInProcessPresence() }
  const instanceId = input.instanceId ?? randomBytes(9).toString('base64url')
  const keyPrefix = config.redisKeyPrefix
  const bus = createRedisBus({ url: config.redisUrl, keyPrefix, log, instanceId })
  const redis = openRedis(config.redisUrl, log, 'shared')
  const presence = createRedisPresence({ redis, keyPrefix, log, instanceId })
  return {
    events: {
      ...bus,
      async close() {
        presence.close()
        await Promise.all([bus.close(), closeRedis(redis)])
      },
    },
    presence,
    counters: createRedisCounters({ redis, keyPrefix, clock: input.clock, log }),
  }
}
