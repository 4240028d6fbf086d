/**
 * Digging aid (not part of `npm run bench`): what a frame API request's shared counters cost on
 * the real Redis (BENCH_SCALE_REDIS_URL, default redis://127.0.0.1:6379), in process, 16 requests
 * in flight over 768 keys, MICRO_OPS (20,000) per variant and round, MICRO_ROUNDS (4) rounds:
 *
 * - `two`: the proof's claim (`SET NX PX`), then its key's window (the INCR script): two commands,
 *   one round trip after the other (what a frame request cost before issue 15's cut);
 * - `one`: both in one script (`claimThenIncrement`, what it costs now).
 *
 * Prints passport CPU µs (user + system of this process), wall µs and Redis CPU µs (`INFO cpu`;
 * shared with whatever else uses that Redis) per request. Pin it: `taskset -c 0 node
 * bench/counters-micro.ts`. Its keys (`passport-bench-counters-<pid>:`) are deleted at the end.
 */
import { fixedClock } from '../passport-server/src/clock.ts'
import { closeRedis, openRedis } from '../passport-server/src/redis/client.ts'
import { createSharedRateWindow } from '../passport-server/src/services/rate-window.ts'
import { createRedisCounters } from '../passport-server/src/services/redis-counters.ts'
import { dropRedisKeys } from './scale.ts'

const ops = Number(process.env.MICRO_OPS ?? 20_000)
const rounds = Number(process.env.MICRO_ROUNDS ?? 4)
const url = process.env.BENCH_SCALE_REDIS_URL ?? 'redis://127.0.0.1:6379'
const redis = openRedis(url, () => {}, 'bench-counters')
await new Promise((resolve) => redis.once('ready', resolve))
const prefix = `passport-bench-counters-${process.pid}:`
const counters = createRedisCounters({
  redis,
  keyPrefix: prefix,
  clock: fixedClock(Date.now()),
  log: () => {},
})
// A limit never reached: the cost of counting, not of refusing.
const perKey = createSharedRateWindow(counters, 'frame_key', 1e9, 60_000)

let jti = 0
const variants = {
  two: async (i: number) => {
    const claim = await counters.claimOnce(`dpop_jti:k${i % 768}.${jti++}`, 600_000)
    if (claim === 'claimed') await perKey.take(`k${i % 768}`)
  },
  one: async (i: number) => {
    await perKey.takeAfterClaim(`dpop_jti:k${i % 768}.${jti++}`, 600_000, `k${i % 768}`)
  },
}

async function redisCpuUs() {
  const info = await redis.info('cpu')
  const get = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0)
  return (get('used_cpu_user') + get('used_cpu_sys')) * 1e6
}

async function measure(op: (i: number) => Promise<void>) {
  const r0 = await redisCpuUs()
  const u0 = process.resourceUsage()
  const t0 = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < ops) await op(next++)
    }),
  )
  const wallUs = (performance.now() - t0) * 1000
  const u1 = process.resourceUsage()
  const r1 = await redisCpuUs()
  const cpuUs = u1.userCPUTime + u1.systemCPUTime - u0.userCPUTime - u0.systemCPUTime
  return `${(cpuUs / ops).toFixed(1)} µs CPU, ${(wallUs / ops).toFixed(1)} µs wall, Redis ${((r1 - r0) / ops).toFixed(1)} µs`
}

for (let r = 0; r < rounds; r++) {
  const two = await measure(variants.two)
  const one = await measure(variants.one)
  process.stdout.write(`round ${r}: two commands ${two}; one script ${one} (per request)\n`)
}
await dropRedisKeys(url, prefix)
await closeRedis(redis)
