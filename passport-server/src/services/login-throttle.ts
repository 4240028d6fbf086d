import type { Clock } from '../clock.ts'
import { createRateWindow } from './rate-window.ts'

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
 * In memory, per process: with several instances each counts alone (the limits per instance
 * still hold). Bounded: the oldest entries go first when a map is full.
 */
export const ACCOUNT_FREE_FAILURES = 5
export const ACCOUNT_LOCK_START_MS = 60_000
export const ACCOUNT_LOCK_MAX_MS = 15 * 60_000
export const ADDRESS_MAX_FAILURES = 30
export const ADDRESS_WINDOW_MS = 10 * 60_000
const MAX_ENTRIES = 100_000

interface AccountState {
  failures: number
  lockedUntil: number
}

export type ThrottleDecision =
  | { allowed: true }
  | { allowed: false; scope: 'account' | 'address'; retryAfterSeconds: number }

function remember<V>(map: Map<string, V>, key: string, value: V) {
  map.delete(key)
  if (map.size >= MAX_ENTRIES) map.delete(map.keys().next().value as string)
  map.set(key, value)
}

export function createLoginThrottle(clock: Clock) {
  const accounts = new Map<string, AccountState>()
  const addresses = createRateWindow(clock, ADDRESS_MAX_FAILURES, ADDRESS_WINDOW_MS)
  const accountKey = (username: string) => username.trim().toLowerCase()

  return {
    /** Whether this attempt may even be checked. */
    check(username: string, address: string): ThrottleDecision {
      const now = clock.now()
      const byAddress = addresses.check(address)
      if (!byAddress.allowed) {
        return { allowed: false, scope: 'address', retryAfterSeconds: byAddress.retryAfterSeconds }
      }
      const account = accounts.get(accountKey(username))
      if (account && account.lockedUntil > now) {
        return {
          allowed: false,
          scope: 'account',
          retryAfterSeconds: Math.ceil((account.lockedUntil - now) / 1000),
        }
      }
      return { allowed: true }
    },
    /** Records a failed attempt; returns true when it (re)locked the account. */
    failed(username: string, address: string): boolean {
      const now = clock.now()
      addresses.hit(address)
      const key = accountKey(username)
      const account = accounts.get(key) ?? { failures: 0, lockedUntil: 0 }
      // Attempts during a lock are refused unchecked; they do not lengthen it (no lock-out DoS).
      if (account.lockedUntil > now) return false
      account.failures += 1
      remember(accounts, key, account)
      const over = account.failures - ACCOUNT_FREE_FAILURES
      if (over < 0) return false
      account.lockedUntil = now + Math.min(ACCOUNT_LOCK_START_MS * 2 ** over, ACCOUNT_LOCK_MAX_MS)
      return true
    },
    succeeded(username: string): void {
      accounts.delete(accountKey(username))
    },
  }
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>

const throttles = new WeakMap<object, LoginThrottle>()

/**
 * The one throttle of an app (keyed by its deps): the password form and the SCRAM sign-in
 * socket count failures together, so neither is a way around the other's limits.
 */
export function loginThrottleOf(deps: { clock: Clock }): LoginThrottle {
  let throttle = throttles.get(deps)
  if (!throttle) {
    throttle = createLoginThrottle(deps.clock)
    throttles.set(deps, throttle)
  }
  return throttle
}
