import type { EndReason } from '../../../passport-frame/src/protocol/codes.ts'
import { escapeHtml, hiddenField, renderPage } from './html.ts'
import { passkeySignInForm } from './passkey-parts.ts'

export interface AuthorizeParams {
  clientId: string
  redirectUri: string
  state: string
  codeChallenge: string
  /** Where the answer goes: the query (standard, for site backends) or the fragment (the page SDK). */
  responseMode: ResponseMode
}

export type ResponseMode = 'query' | 'fragment'

const notices: Partial<Record<EndReason, string>> = {
  replaced:
    'You were signed out because your account signed in on another device. Sign in again to continue here.',
}

/**
 * The sign-in form. Every dynamic value is escaped. With `passkeyScript`, that file offers
 * passkeys (autofill in the username field and a button). With JavaScript, `/sign-in.js` takes the
 * form over and signs in with SCRAM over the sign-in socket (the password never leaves the
 * page); without, the form posts as it always did, unless `passwordForm` is off.
 */
export function renderLoginPage(input: {
  siteName: string
  params: AuthorizeParams
  csrf: string
  username?: string
  error?: string
  notice?: EndReason
  redirectOrigin: string
  /** Whether the site allows "Sign in with another device" (its `device` login mode). */
  offerDevice: boolean
  /** The passkey page script's URL (`passkeyScriptUrl`): offers "Sign in with a passkey". */
  passkeyScript?: string
  /** Whether the plain password post is accepted (`PASSPORT_PASSWORD_FORM`); default true. */
  passwordForm?: boolean
}): { html: string; csp: string } {
  const notice = input.notice && notices[input.notice]
  return renderPage({
    title: 'Sign in · Passport',
    // After a successful POST the passport redirects to the site; form-action must allow it.
    formAction: [input.redirectOrigin],
    ...(input.passkeyScript ? { scriptFiles: [input.passkeyScript] } : {}),
    scriptFile: '/sign-in.js',
    body: `<h1>Sign in</h1><p class="site">to continue to <strong>${escapeHtml(input.siteName)}</strong></p>
${notice ? `<p class="notice" role="status">${escapeHtml(notice)}</p>` : ''}
${input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : ''}
<form method="post" action="/login" id="sign-in" data-password-form="${input.passwordForm === false ? 'off' : 'on'}">
${hiddenField('csrf', input.csrf)}${hiddenField('client_id', input.params.clientId)}${hiddenField('redirect_uri', input.params.redirectUri)}${hiddenField('state', input.params.state)}${hiddenField('code_challenge', input.params.codeChallenge)}${hiddenField('response_mode', input.params.responseMode)}
<label for="username">Username</label><input id="username" name="username" autocomplete="username${input.passkeyScript ? ' webauthn' : ''}" required maxlength="64" value="${escapeHtml(input.username ?? '')}" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required maxlength="256">
<button type="submit">Sign in</button>
</form>
${input.passkeyScript ? passkeySignInForm(input) : ''}
${input.offerDevice ? deviceForm(input) : ''}`,
  })
}

function deviceForm(input: { params: AuthorizeParams; csrf: string; username?: string }): string {
  return `<hr>
<form method="post" action="/login/device">
${hiddenField('csrf', input.csrf)}${hiddenField('client_id', input.params.clientId)}${hiddenField('redirect_uri', input.params.redirectUri)}${hiddenField('state', input.params.state)}${hiddenField('code_challenge', input.params.codeChallenge)}${hiddenField('response_mode', input.params.responseMode)}
<label for="device-username">No password here? Approve this sign-in on a device where you are signed in.</label><input id="device-username" name="username" autocomplete="username" required maxlength="64" placeholder="Username" aria-label="Username for sign-in with another device" value="${escapeHtml(input.username ?? '')}">
<button type="submit" class="secondary">Sign in with another device</button>
</form>`
}

export function renderErrorPage(message: string): { html: string; csp: string } {
  return renderPage({
    title: 'Sign-in error · Passport',
    body: `<h1>This sign-in request cannot be completed</h1><p class="error" role="alert">${escapeHtml(message)}</p>`,
  })
}
