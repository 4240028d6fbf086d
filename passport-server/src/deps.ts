import type { Clock } from './clock.ts'
import type { ResolvedConfig } from './config.ts'
import type { Logger } from './errors.ts'
import type { EventBus } from './events/bus.ts'
import type { LivePresence } from './live/presence.ts'
import type { Store } from './store/types.ts'
import type { KeySet } from './tokens/keys.ts'

/** Everything the app needs from outside, passed in by `main.ts` (or a test). */
export interface AppDeps {
  config: ResolvedConfig
  store: Store
  keys: KeySet
  clock: Clock
  events: EventBus
  /** Which devices hold a live socket now (this instance, or all of them when shared). */
  presence: LivePresence
  log: Logger
}

/** Structured log lines on stdout. Callers pass ids and reasons only, never secrets. */
export const consoleLogger: Logger = (event, fields) => {
  process.stdout.write(`${JSON.stringify({ t: new Date().toISOString(), event, ...fields })}\n`)
}

export const silentLogger: Logger = () => {}
