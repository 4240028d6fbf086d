import { randomBytes } from 'node:crypto'
import { errorFields, type Logger } from '../errors.ts'
import { logSafely } from '../guard.ts'
import type { Redis } from '../redis/client.ts'
import type { LivePresence } from './presence.ts'

/** How long an instance's record outlives its last heartbeat (a crashed instance's sockets go then). */
export const PRESENCE_TTL_MS = 30_000
/** How often each instance rewrites its whole record and pushes its expiry back. */
export const PRESENCE_HEARTBEAT_MS = 10_000
/** Instances silent this long leave the index (their records expired long before). */
const FORGET_INSTANCE_MS = 10 * 60_000

/**
 * Live-socket presence shared over Redis: which devices hold a live socket on any instance.
 *
 * Each instance owns one hash, `<prefix>presence:<instance>`: field = session id, value = JSON
 * `{siteId: open sockets}` of the sockets *it* holds. Its own memory is the truth; Redis holds a
 * copy, written field by field as sockets open and close (batched per tick) and rewritten whole
 * on every heartbeat and on every reconnection (so a Redis restart, or a write lost while it was
 * away, heals itself). The hash expires `PRESENCE_TTL_MS` after the last heartbeat: a crashed or
 * cut-off instance's sockets stop counting within 30 s. Instances are found through the sorted
 * set `<prefix>presence:instances`; a member whose hash expired simply adds nothing.
 *
 * Readers add up every instance's fields for the sessions asked. With Redis away they get what
 * this instance knows (its own sockets), not an error: "Your devices" shows less, nothing breaks.
 */
export function createRedisPresence(input: {
  redis: Redis
  keyPrefix: string
  log: Logger
  instanceId?: string
  heartbeatMs?: number
  ttlMs?: number
}): LivePresence & { close(): void } {
  const { redis, log } = input
  const ttlMs = input.ttlMs ?? PRESENCE_TTL_MS
  const instanceId = input.instanceId ?? randomBytes(9).toString('base64url')
  const indexKey = `${input.keyPrefix}presence:instances`
  const keyOf = (id: string) => `${input.keyPrefix}presence:${id}`
  const ownKey = keyOf(instanceId)
  /** sessionId -> siteId -> open sockets on this instance. */
  const open = new Map<string, Map<string, number>>()
  const dirty = new Set<string>()
  let flushTimer: NodeJS.Timeout | null = null

  const fieldOf = (sessionId: string) => {
    const sites = open.get(sessionId)
    return sites && sites.size > 0 ? JSON.stringify(Object.fromEntries(sites)) : null
  }
  const failed = (what: string) => (err: unknown) => {
    logSafely(log, 'presence_write_failed', { what, ...errorFields(err) })
  }

  /** The changed sessions' fields, in one round trip (skipped while Redis is away: the rewrite on reconnect carries them). */
  const flush = () => {
    flushTimer = null
    if (dirty.size === 0 || redis.status !== 'ready') return
    const batch = redis.multi()
    for (const sessionId of dirty) {
      const value = fieldOf(sessionId)
      if (value === null) batch.hdel(ownKey, sessionId)
      else batch.hset(ownKey, sessionId, value)
    }
    dirty.clear()
    batch.pexpire(ownKey, ttlMs)
    batch.exec().catch(failed('changes'))
  }
  const changed = (sessionId: string) => {
    dirty.add(sessionId)
    flushTimer ??= setTimeout(flush, 0)
  }

  /** This instance's whole record, atomically replaced, and its place in the index. */
  const rewrite = () => {
    if (redis.status !== 'ready') return
    const now = Date.now()
    dirty.clear()
    const batch = redis.multi().del(ownKey)
    const fields: string[] = []
    for (const sessionId of open.keys()) {
      const value = fieldOf(sessionId)
      if (value !== null) fields.push(sessionId, value)
    }
    if (fields.length > 0) batch.hset(ownKey, ...fields).pexpire(ownKey, ttlMs)
    batch
      .zadd(indexKey, now, instanceId)
      .zremrangebyscore(indexKey, '-inf', now - FORGET_INSTANCE_MS)
      .exec()
      .catch(failed('heartbeat'))
  }
  const heartbeat = setInterval(rewrite, input.heartbeatMs ?? PRESENCE_HEARTBEAT_MS)
  heartbeat.unref()
  redis.on('ready', rewrite)
  if (redis.status === 'ready') rewrite()

  const localSites = (sessionId: string) => new Map(open.get(sessionId) ?? [])

  /** Every live instance's field for each session (null entries: instance or session absent). */
  const readAll = async (sessionIds: string[]): Promise<Map<string, number>[] | null> => {
    if (redis.status !== 'ready' || sessionIds.length === 0) return null
    try {
      const instances = await redis.zrangebyscore(indexKey, Date.now() - ttlMs, '+inf')
      if (!instances.includes(instanceId)) instances.push(instanceId)
      const batch = redis.pipeline()
      for (const id of instances) batch.hmget(keyOf(id), ...sessionIds)
      const replies = (await batch.exec()) ?? []
      const bySession = sessionIds.map(() => new Map<string, number>())
      for (const [id, reply] of replies.map((r, i) => [instances[i], r] as const)) {
        const [err, values] = reply
        if (err) throw err
        ;(values as (string | null)[]).forEach((value, i) => {
          // This instance's own sockets come from memory, never from its possibly stale copy.
          if (value === null || id === instanceId) return
          const sites = bySession[i] as Map<string, number>
          for (const [site, n] of Object.entries(JSON.parse(value) as Record<string, number>)) {
            sites.set(site, (sites.get(site) ?? 0) + n)
          }
        })
      }
      sessionIds.forEach((sessionId, i) => {
        const sites = bySession[i] as Map<string, number>
        for (const [site, n] of open.get(sessionId) ?? []) sites.set(site, (sites.get(site) ?? 0) + n)
      })
      return bySession
    } catch (err) {
      logSafely(log, 'presence_read_failed', errorFields(err))
      return null
    }
  }

  return {
    connected(info) {
      const sites = open.get(info.sessionId) ?? new Map<string, number>()
      open.set(info.sessionId, sites)
      sites.set(info.siteId, (sites.get(info.siteId) ?? 0) + 1)
      changed(info.sessionId)
      let released = false
      return () => {
        // Idempotent: a close reported twice must not hide another tab's socket.
        if (released) return
        released = true
        const left = (sites.get(info.siteId) ?? 1) - 1
        if (left > 0) sites.set(info.siteId, left)
        else sites.delete(info.siteId)
        if (sites.size === 0 && open.get(info.sessionId) === sites) open.delete(info.sessionId)
        changed(info.sessionId)
      }
    },
    async countsBySession(sessionIds) {
      const ids = [...new Set(sessionIds)]
      const all = (await readAll(ids)) ?? ids.map(localSites)
      const counts = new Map<string, number>()
      ids.forEach((id, i) => {
        let total = 0
        for (const n of all[i]?.values() ?? []) total += n
        if (total > 0) counts.set(id, total)
      })
      return counts
    },
    async countsBySessionSite(sessionId) {
      const all = await readAll([sessionId])
      const sites = all?.[0] ?? localSites(sessionId)
      for (const [site, n] of sites) if (n <= 0) sites.delete(site)
      return sites
    },
    close() {
      clearInterval(heartbeat)
      if (flushTimer) clearTimeout(flushTimer)
      redis.off('ready', rewrite)
      // Leaving cleanly: our sockets are closed, so our record goes now rather than in 30 s.
      if (redis.status === 'ready') {
        redis.multi().del(ownKey).zrem(indexKey, instanceId).exec().catch(failed('close'))
      }
    },
  }
}
