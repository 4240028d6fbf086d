import { createHash } from 'node:crypto'
import type { Clock } from '../clock.ts'
import { errorFields, type Logger } from '../errors.ts'
import { logSafely } from '../guard.ts'
import type { Redis } from '../redis/client.ts'
import { type ClaimResult, type CounterStore, createMemoryCounters } from './counters.ts'

/** A window's step in Lua: INCR, and start its expiry if it has none (one atomic step, so no key lives forever). */
const incrementWindow = (key: string, windowMs: string) => `
local n = redis.call('INCR', ${key})
local ttl = redis.call('PTTL', ${key})
if ttl < 0 then
  redis.call('PEXPIRE', ${key}, ${windowMs})
  ttl = tonumber(${windowMs})
end
return {n, ttl}`

const INCREMENT = incrementWindow('KEYS[1]', 'ARGV[1]')

const PEEK = `
local n = redis.call('GET', KEYS[1])
if not n then return false end
return {tonumber(n), redis.call('PTTL', KEYS[1])}`

/**
 * A DPoP proof's claim (`SET NX PX`) and, only if it was new, its key's window (INCREMENT's step):
 * one command per frame request instead of two round trips one after the other. False: replayed.
 */
const CLAIM_THEN_INCREMENT = `
if not redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return false end
${incrementWindow('KEYS[2]', 'ARGV[2]')}`

const SKIP_AFTER_FAILURE_MS = 2_000

type Scripted = Redis & {
  passportIncrement(key: string, windowMs: number): Promise<[number, number]>
  passportPeek(key: string): Promise<[number, number] | null>
  passportClaimThenIncrement(
    claimKey: string,
    windowKey: string,
    ttlMs: number,
    windowMs: number,
  ): Promise<[number, number] | null>
}

/**
 * The counters several instances share, in Redis: a window is one key (`INCR` + `PEXPIRE` in a
 * script), a block one key with a `PX` expiry, a claim `SET NX PX`. Keys are
 * `<prefix>c:<kind>:<sha256 of the key>`: no username or address is written to Redis as such,
 * and every key expires by itself.
 *
 * Redis answers while it is there. Every operation also runs on this instance's in-memory
 * counters, which answer when Redis is away (not connected, an error, or no answer within
 * 500 ms): they already hold what this instance counted before the outage, so an outage resets
 * nothing this instance saw. (A success clearing an account on another instance clears Redis,
 * not this memory: during an outage an account may lock a little early, never late.)
 *
 * That is the fail-safe direction, chosen on purpose: neither closed (refusing every sign-in
 * while Redis is away would turn a cache outage into a sign-in outage) nor open (no brute-force
 * brake at all), but per instance: each instance still enforces every limit alone, so during the
 * outage an attacker spread over N instances gets at most N times the shared limit. A DPoP
 * proof replayed to the instance that saw it is still refused; one replayed to another instance
 * during the outage is not, but it is still bound to the frame's key and only repeats the same
 * request within its nonce's ten minutes.
 */
export function createRedisCounters(input: {
  redis: Redis
  keyPrefix: string
  clock: Clock
  log: Logger
}): CounterStore {
  const { log } = input
  const redis = input.redis as Scripted
  redis.defineCommand('passportIncrement', { numberOfKeys: 1, lua: INCREMENT })
  redis.defineCommand('passportPeek', { numberOfKeys: 1, lua: PEEK })
  redis.defineCommand('passportClaimThenIncrement', { numberOfKeys: 2, lua: CLAIM_THEN_INCREMENT })
  const local = createMemoryCounters(input.clock)
  const keyOf = (kind: string, key: string) =>
    `${input.keyPrefix}c:${kind}:${createHash('sha256').update(key).digest('base64url').slice(0, 27)}`

  // One log line per outage, not one per request.
  let failing = false
  /** After a failure (a timeout, say) Redis is left alone for a while: a sign-in makes several
   * counter calls, and a hung Redis must cost the first of them only, not each. */
  let skipUntil = 0
  redis.on('ready', () => {
    failing = false
    skipUntil = 0
  })
  /** Runs `op` on Redis; undefined when Redis is away or failed (the caller uses memory). */
  const shared = async <T>(op: () => Promise<T>): Promise<T | undefined> => {
    if (redis.status !== 'ready' || Date.now() < skipUntil) return undefined
    try {
      return await op()
    } catch (err) {
      skipUntil = Date.now() + SKIP_AFTER_FAILURE_MS
      if (!failing) {
        failing = true
        logSafely(log, 'shared_counters_fallback', errorFields(err))
      }
      return undefined
    }
  }

  return {
    async increment(key, windowMs) {
      const [mine, all] = await Promise.all([
        local.increment(key, windowMs),
        shared(() => redis.passportIncrement(keyOf('w', key), windowMs)),
      ])
      return all ? { count: all[0], resetInMs: all[1] } : mine
    },
    async peek(key) {
      const [mine, all] = await Promise.all([
        local.peek(key),
        shared(() => redis.passportPeek(keyOf('w', key))),
      ])
      if (all === undefined) return mine
      return all ? { count: all[0], resetInMs: all[1] } : null
    },
    async block(key, durationMs) {
      await Promise.all([
        local.block(key, durationMs),
        shared(() => redis.set(keyOf('b', key), '1', 'PX', durationMs)),
      ])
    },
    async blockedForMs(key) {
      const [mine, all] = await Promise.all([
        local.blockedForMs(key),
        shared(() => redis.pttl(keyOf('b', key))),
      ])
      return all === undefined ? mine : Math.max(all, 0)
    },
    async clear(key) {
      await Promise.all([local.clear(key), shared(() => redis.del(keyOf('w', key), keyOf('b', key)))])
    },
    async claimOnce(key, ttlMs): Promise<ClaimResult> {
      const mine = await local.claimOnce(key, ttlMs)
      // A replay this instance remembers is one, whatever a Redis restarted empty says.
      if (mine === 'replayed') return mine
      const all = await shared(() => redis.set(keyOf('c', key), '1', 'PX', ttlMs, 'NX'))
      // Redis decides while it answers (this instance's memory being full is no reason to
      // refuse); without it, memory does, `full` included (fail closed).
      if (all === undefined) return mine
      return all === 'OK' ? 'claimed' : 'replayed'
    },
    async claimThenIncrement(claimKey, ttlMs, windowKey, windowMs) {
      // As claimOnce then increment, both kept in memory too (the outage fallback), in one script.
      const mine = await local.claimOnce(claimKey, ttlMs)
      if (mine === 'replayed') return { claim: mine, window: null }
      const all = await shared(() =>
        redis.passportClaimThenIncrement(keyOf('c', claimKey), keyOf('w', windowKey), ttlMs, windowMs),
      )
      if (all === undefined) {
        return { claim: mine, window: mine === 'claimed' ? await local.increment(windowKey, windowMs) : null }
      }
      if (all === null) return { claim: 'replayed', window: null }
      await local.increment(windowKey, windowMs)
      return { claim: 'claimed', window: { count: all[0], resetInMs: all[1] } }
    },
  }
}
