import type { Clock } from '../clock.ts'
import { type CounterStore, createMemoryCounters } from './counters.ts'
import { createSharedRateWindow } from './rate-window.ts'

/**
 * Brute-force and credential-stuffing brakes for the password form (attacks G1, G2).
 *
 * - Per account (by the username typed, known or not, so it reveals nothing): after 5
 *   consecutive failures the account is locked for 1 minute, doubling with each further
 *   failure up to 15 minutes; a success clears it. While locked even the right password gets
 *   the same generic answer. Never a permanent lock: waiting always ends it.
 * - Per client address: more than 30 failures in 10 minutes, across any accounts, is answered
 *   429 until the window has passed.
 *
 * Kept in the deployment's counters (`counters.ts`): in memory for one instance, in Redis shared
 * by all instances when there are several (both limits must be global, or N instances would give
 * an attacker N times the guesses); with Redis away each instance enforces them alone.
 */
export const ACCOUNT_FREE_FAILURES = 5
export const ACCOUNT_LOCK_START_MS = 60_000
export const ACCOUNT_LOCK_MAX_MS = 15 * 60_000
export const ADDRESS_MAX_FAILURES = 30
export const ADDRESS_WINDOW_MS = 10 * 60_000
/** An account's failures are counted for a day from the first of them (then the count starts over). */
export const FAILURES_REMEMBERED_MS = 24 * 3600_000

export type ThrottleDecision =
  | { allowed: true }
  | { allowed: false; scope: 'account' | 'address'; retryAfterSeconds: number }

export function createLoginThrottle(clock: Clock, counters: CounterStore = createMemoryCounters(clock)) {
  const addresses = createSharedRateWindow(counters, 'login_address', ADDRESS_MAX_FAILURES, ADDRESS_WINDOW_MS)
  const accountKey = (username: string) => username.trim().toLowerCase()
  const lockKey = (username: string) => `login_lock:${accountKey(username)}`
  const failuresKey = (username: string) => `login_failures:${accountKey(username)}`

  return {
    /** Whether this attempt may even be checked. */
    async check(username: string, address: string): Promise<ThrottleDecision> {
      const byAddress = await addresses.check(address)
      if (!byAddress.allowed) {
        return { allowed: false, scope: 'address', retryAfterSeconds: byAddress.retryAfterSeconds }
      }
      const lockedMs = await counters.blockedForMs(lockKey(username))
      if (lockedMs > 0)
        return { allowed: false, scope: 'account', retryAfterSeconds: Math.ceil(lockedMs / 1000) }
      return { allowed: true }
    },
    /** Records a failed attempt; returns true when it (re)locked the account. */
    async failed(username: string, address: string): Promise<boolean> {
      await addresses.hit(address)
      // Attempts during a lock are refused unchecked; they do not lengthen it (no lock-out DoS).
      if ((await counters.blockedForMs(lockKey(username))) > 0) return false
      const { count } = await counters.increment(failuresKey(username), FAILURES_REMEMBERED_MS)
      const over = count - ACCOUNT_FREE_FAILURES
      if (over < 0) return false
      await counters.block(
        lockKey(username),
        Math.min(ACCOUNT_LOCK_START_MS * 2 ** over, ACCOUNT_LOCK_MAX_MS),
      )
      return true
    },
    async succeeded(username: string): Promise<void> {
      await Promise.all([counters.clear(failuresKey(username)), counters.clear(lockKey(username))])
    },
  }
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>
