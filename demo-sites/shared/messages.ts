export type EndReason = 'replaced' | 'signed_out' | 'expired' | 'revoked' | 'unknown'

/** What a demo site tells its user when a sign-in ends. */
export const SIGNED_OUT_MESSAGES: Record<EndReason, string> = {
  replaced: 'You were signed out because your account signed in on another device.',
  signed_out: 'You were signed out on another site.',
  expired: 'Your session timed out.',
  revoked: 'Your sign-in was revoked.',
  unknown: 'You were signed out.',
}
