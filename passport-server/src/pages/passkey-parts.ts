import type { PasskeyView } from '../services/passkeys.ts'
import { escapeHtml, hiddenField } from './html.ts'
import type { AuthorizeParams } from './login-page.ts'

/**
 * The passkey parts of the passport's pages. Each works only with `/passkey.js` (built from
 * `passport-frame/src/pages/passkey.ts`): the buttons stay hidden until that script has checked
 * the browser can use passkeys, so a page without JavaScript shows only its forms.
 */

/** The page script's exact URL, for the page's `script-src` (nothing else of the origin runs). */
export function passkeyScriptUrl(issuer: string): string {
  return `${issuer}/passkey.js`
}

/**
 * "Sign in with a passkey": the script fills `response` and posts this form like the password
 * form, so the result is the same top-level navigation back to the site.
 */
export function passkeySignInForm(input: { params: AuthorizeParams; csrf: string }): string {
  const p = input.params
  return `<form id="passkey-sign-in" method="post" action="/login/passkey" hidden>
${hiddenField('csrf', input.csrf)}${hiddenField('client_id', p.clientId)}${hiddenField('redirect_uri', p.redirectUri)}${hiddenField('state', p.state)}${hiddenField('code_challenge', p.codeChallenge)}${hiddenField('response_mode', p.responseMode)}${hiddenField('response', '')}
<button type="button" class="secondary" id="passkey-button">Sign in with a passkey</button>
<p class="error" role="alert" id="passkey-error" hidden></p>
</form>`
}

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10)

/**
 * The account page's "Passkeys": each with a Remove, and "Add a passkey". `sealed`: the HTML
 * carries no passkey; `/sign-in.js` fetches the list sealed (`POST /account/passkeys/sealed`) and
 * draws the same rows (`passport-frame/src/sign-in/account-sealed.ts`).
 */
export function passkeyAccountSection(input: {
  passkeys: PasskeyView[]
  csrf: string
  sealed?: boolean
}): string {
  const rows = input.passkeys
    .map(
      (p) => `<li class="passkey" data-passkey="${escapeHtml(p.id)}">
<strong>${escapeHtml(p.name)}</strong><br>
<span class="site">${p.deviceType === 'multiDevice' ? (p.backedUp ? 'synced' : 'can be synced') : 'on one device'} · last used ${p.lastUsedAt ? day(p.lastUsedAt) : 'never'}</span>
<form method="post" action="/account/passkeys/remove">${hiddenField('csrf', input.csrf)}${hiddenField('passkey', p.id)}<button type="submit" class="secondary">Remove this passkey</button></form></li>`,
    )
    .join('\n')
  const list = input.sealed
    ? `<ul class="passkeys" id="passkey-list" data-sealed="passkeys" data-csrf="${escapeHtml(input.csrf)}"><li class="site" id="passkeys-status">Loading your passkeys…</li></ul>`
    : rows
      ? `<ul class="passkeys">${rows}</ul>`
      : '<p class="site">No passkey yet.</p>'
  return `<h2 id="passkeys">Passkeys</h2>
${list}
<form id="passkey-add" method="post" action="/account/passkeys/register" hidden>
${hiddenField('csrf', input.csrf)}${hiddenField('response', '')}
<button type="button" id="passkey-add-button">Add a passkey</button>
<p class="error" role="alert" id="passkey-error" hidden></p>
</form>`
}
