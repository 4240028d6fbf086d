/**
 * The site SDK as an ES module.
 *
 * @example
 * import { createPassport } from 'https://passport.example.com/passport.mjs'
 * const passport = createPassport({ authkey, passportOrigin: 'https://passport.example.com' })
 */
import { loadExtras } from './extras-loader.ts'

export type { EndReason, ErrorCode } from '../protocol/codes.ts'
export {
  type CheckResult,
  createPassport,
  type Passport,
  PassportClientError,
  type PassportOptions,
  type PassportState,
} from './passport.ts'

/**
 * Fetches the SDK's occasional parts (`authHeaders()`, `check()`, `refresh()`, the FedCM sign-in)
 * now, while the frame loads, instead of on their first use. For a page that calls one of them as
 * soon as it is signed in (a DPoP site's first API call needs `authHeaders()`): without it that
 * call waits for the fetch after the token has come (issue 17). The script-tag SDK's equivalent
 * is `<link rel="modulepreload" href="https://passport.example.com/passport-extras.mjs">`.
 *
 * @example
 * const passport = createPassport({ authkey, passportOrigin })
 * preloadExtras()
 */
export function preloadExtras(): void {
  // The module SDK's loader takes its chunk from beside itself: no origin to name.
  loadExtras('').catch(() => {}) // a failed fetch is fetched again on first use
}
