/**
 * The site SDK as an ES module.
 *
 * @example
 * import { createPassport } from 'https://passport.example.com/passport.mjs'
 * const passport = createPassport({ authkey, passportOrigin: 'https://passport.example.com' })
 */
export type { EndReason, ErrorCode } from '../protocol/codes.ts'
export {
  type CheckResult,
  createPassport,
  type Passport,
  PassportClientError,
  type PassportOptions,
  type PassportState,
} from './passport.ts'
