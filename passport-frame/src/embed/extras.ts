import type { EndReason, ErrorCode } from '../protocol/codes.ts'
import type { FrameReply, PageRequest } from '../protocol/messages.ts'
import type { CheckResult, PassportState } from './passport.ts'

/**
 * What a page does now and then (each called once the page's state is known), not on the way to its token: `check()`, `refresh()`,
 * `authHeaders()`, a FedCM sign-in, and making room for what the frame shows. Fetched on first
 * use: next to `passport.mjs`, and from the passport (`/passport-extras.mjs`) by the script-tag
 * SDK, which is why it imports nothing at run time: all it uses comes in `ctx`.
 */
export interface ExtrasContext {
  passportOrigin: string
  siteId: string
  ask: (body: PageBody) => Promise<FrameReply>
  signedIn: (reply: FrameReply) => PassportState
  signedOut: (reason: EndReason | null | undefined) => PassportState
  /** The page's current token (after `signedIn`). */
  token: () => string
  /** Whether an error is the passport's verdict on the sign-in (only that signs a page out). */
  isVerdict: (err: unknown) => err is Error & { reason?: EndReason }
  fail: (code: ErrorCode) => Error
  randomToken: () => string
  pkceChallenge: (verifier: string) => Promise<string>
}
type PageBody = PageRequest extends infer T ? (T extends PageRequest ? Omit<T, 'v' | 'id'> : never) : never

export async function check(ctx: ExtrasContext): Promise<CheckResult> {
  const reply = await ctx.ask({ type: 'check' })
  if (reply.type !== 'check_response') throw ctx.fail('server_error')
  if (!reply.valid) ctx.signedOut(reply.reason)
  return {
    valid: reply.valid,
    reason: reply.reason,
    expiresAt: reply.expiresAt,
    serverTime: reply.serverTime,
  }
}

export async function refresh(ctx: ExtrasContext): Promise<string> {
  try {
    ctx.signedIn(await ctx.ask({ type: 'refresh' }))
    return ctx.token()
  } catch (err) {
    // Only a dead sign-in signs the page out; a network failure leaves the state as it is.
    if (ctx.isVerdict(err)) ctx.signedOut(err.reason)
    throw err
  }
}

export async function authHeaders(
  ctx: ExtrasContext,
  method: string,
  url: string,
): Promise<{ Authorization: string; DPoP: string }> {
  const reply = await ctx.ask({ type: 'proof_request', method, url })
  if (reply.type !== 'proof_response') throw ctx.fail('server_error')
  return { Authorization: `DPoP ${reply.token}`, DPoP: reply.proof }
}

/**
 * FedCM (where the browser has it and the site opted in): the browser asks the passport for the
 * user's account and, once chosen, a one-time code bound to our PKCE challenge (the nonce) and
 * this origin; the frame redeems it like the redirect's code. Null if FedCM gave nothing.
 */
export async function fedcm(
  ctx: ExtrasContext,
  mediation: CredentialMediationRequirement,
): Promise<PassportState | null> {
  const codeVerifier = ctx.randomToken()
  const nonce = await ctx.pkceChallenge(codeVerifier)
  let credential: Credential | null
  try {
    credential = await navigator.credentials.get({
      identity: {
        providers: [
          { configURL: `${ctx.passportOrigin}/fedcm/config.json`, clientId: ctx.siteId, params: { nonce } },
        ],
      },
      mediation,
    } as CredentialRequestOptions)
  } catch {
    return null
  }
  const code = (credential as { token?: unknown } | null)?.token
  if (typeof code !== 'string') return null
  try {
    return ctx.signedIn(
      await ctx.ask({ type: 'code_exchange', code, codeVerifier, redirectUri: location.origin }),
    )
  } catch {
    return null
  }
}

/** A sign-in request from another device: the frame draws it, the page only makes room for it. */
const SHOWN =
  'position:fixed;right:16px;bottom:16px;width:min(380px,calc(100vw - 32px));height:250px;border:0;' +
  'border-radius:12px;box-shadow:0 6px 28px rgba(0,0,0,.28);background:#fff;z-index:2147483647;visibility:visible'

/** Shows the frame (or hides it again, with the page's `hidden` style). */
export function display(iframe: HTMLIFrameElement, visible: boolean, hidden: string): void {
  iframe.style.cssText = visible ? SHOWN : hidden
  iframe.toggleAttribute('aria-hidden', !visible)
  iframe.tabIndex = visible ? 0 : -1
}
