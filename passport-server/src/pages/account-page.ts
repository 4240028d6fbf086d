import { MIN_NEW_PASSWORD_LENGTH } from '../../../passport-frame/src/protocol/sign-in.ts'
import type { ApprovalPrompt } from '../events/bus.ts'
import type { PasskeyView } from '../services/passkeys.ts'
import { escapeHtml, hiddenField, renderPage } from './html.ts'
import { passkeyAccountSection } from './passkey-parts.ts'

export interface DeviceRow {
  /** The session's id (a hash of its cookie; it grants nothing by itself). */
  id: string
  device: string
  sites: string[]
  signedInAt: number
  lastActivityAt: number | null
  method: string
  current: boolean
}

const when = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 16)

/** Reloads the page when a sign-in request for this user opens or closes (a long poll). */
const WATCH_SCRIPT = `(async()=>{for(;;){try{const r=await fetch('/account/approvals/wait',{cache:'no-store'});if(!r.ok)return;if((await r.json()).changed){location.reload();return}}catch{await new Promise(r=>setTimeout(r,5000))}}})()`

/**
 * One request: who asks, a field for the two digits the new device shows (never the code or
 * numbers to pick from, so approving without looking passes 1 time in 100), and the deny.
 */
function renderPrompt(p: ApprovalPrompt, csrf: string): string {
  const hidden = hiddenField('csrf', csrf) + hiddenField('approval', p.id)
  const field = `code-${escapeHtml(p.id)}`
  return `<li class="approval" data-approval="${escapeHtml(p.id)}">
<strong>Sign-in request for ${escapeHtml(p.siteName)}</strong><br>
<span class="site">from ${escapeHtml(p.device || 'an unknown browser')} at ${escapeHtml(p.address)}${p.bindingMessage ? ` · "${escapeHtml(p.bindingMessage)}"` : ''}</span>
<form method="post" action="/account/approvals/decide">${hidden}
<label for="${field}">If this is you, type the number shown on that device:</label>
<input id="${field}" name="code" inputmode="numeric" autocomplete="off" required minlength="2" maxlength="2" pattern="[0-9]{2}">
<button type="submit">Approve</button></form>
<form method="post" action="/account/approvals/decide">${hidden}${hiddenField('deny', '1')}<button type="submit" class="secondary">Deny, I did not ask for this</button></form></li>`
}

/**
 * "Change password": driven by `/sign-in.js` (`passport-frame/src/sign-in/account-password.ts`),
 * which proves the current password by SCRAM and sends the new credential sealed, so neither
 * password leaves the page. Hidden until the script shows it; without JavaScript, a sentence
 * says what to do instead (no form that would post a password in clear).
 */
function passwordSection(username: string, sealed: boolean, iterations: number): string {
  const noScript =
    '<p class="site">Changing your password needs JavaScript on this page: neither password is ever sent to the passport, the page proves and derives them itself. Turn JavaScript on, or ask your administrator to set a new one.</p>'
  if (!sealed) return `<h2 id="password">Change password</h2>${noScript}`
  return `<h2 id="password">Change password</h2>
<form id="password-change" data-username="${escapeHtml(username)}" data-iterations="${iterations}" novalidate hidden>
<label for="current-password">Current password</label>
<input id="current-password" type="password" autocomplete="current-password" required>
<label for="new-password">New password (at least ${MIN_NEW_PASSWORD_LENGTH} characters)</label>
<input id="new-password" type="password" autocomplete="new-password" required minlength="${MIN_NEW_PASSWORD_LENGTH}">
<label for="repeat-password">New password again</label>
<input id="repeat-password" type="password" autocomplete="new-password" required minlength="${MIN_NEW_PASSWORD_LENGTH}">
<button type="submit" id="password-change-button">Change password</button>
<p class="error" role="alert" id="password-error" hidden></p>
<p class="notice" role="status" id="password-status" hidden></p>
</form>
<noscript>${noScript}</noscript>`
}

/**
 * "Your devices": every live sign-in of the user, each with a "Sign out" button but this one's,
 * and any sign-in request from another device waiting for an answer.
 */
export function renderAccountPage(input: {
  username: string
  devices: DeviceRow[]
  approvals: ApprovalPrompt[]
  csrf: string
  notice?: string
  /** The user's passkeys and the page script that adds them (`passkeyScriptUrl`). */
  passkeys?: { list: PasskeyView[]; script: string }
  /**
   * How "Your devices" reaches the page. `sealed` (the default): the HTML carries no device;
   * `/sign-in.js` fetches the list from `POST /account/devices/sealed`, sealed to a one-time key
   * of the page's (docs/sign-in.md, "Sealed payloads"), and a `<noscript>` link offers the
   * `plain` page. `plain` (`/account?devices=plain`, the no-JavaScript fallback): the list is
   * in the HTML.
   */
  devicesMode?: 'sealed' | 'plain'
  /** PBKDF2 iterations for a new password made on the page (`scramIterations`). */
  scramIterations?: number
  /** The absolute URL of `/sign-in.js` (the CSP allows exactly that file). */
  signInScript?: string
}) {
  const sealed = input.devicesMode !== 'plain'
  const rows = input.devices
    .map(
      (d) => `<li class="device" data-session="${escapeHtml(d.id)}">
<strong>${escapeHtml(d.device || 'Unknown browser')}</strong>${d.current ? ' <em>(this device)</em>' : ''}<br>
<span class="site">Sites: ${escapeHtml(d.sites.join(', ') || 'none yet')} · signed in ${when(d.signedInAt)} UTC with ${escapeHtml(d.method)} · last active ${d.lastActivityAt ? `${when(d.lastActivityAt)} UTC` : 'unknown'}</span>
${
  d.current
    ? ''
    : `<form method="post" action="/account/sessions/end">${hiddenField('csrf', input.csrf)}${hiddenField('session', d.id)}<button type="submit">Sign out this device</button></form>`
}</li>`,
    )
    .join('\n')
  const approvals = sealed ? '' : input.approvals.map((p) => renderPrompt(p, input.csrf)).join('\n')
  return renderPage({
    title: 'Your devices · Passport',
    script: WATCH_SCRIPT,
    ...(input.passkeys ? { scriptFiles: [input.passkeys.script] } : {}),
    ...(sealed && input.signInScript ? { scriptFile: input.signInScript } : {}),
    body: `<h1>Your devices</h1><p class="site">Signed in as <strong>${escapeHtml(input.username)}</strong></p>
${input.notice ? `<p class="notice" role="status">${escapeHtml(input.notice)}</p>` : ''}
${
  sealed
    ? `<div id="approvals" data-sealed="approvals" data-csrf="${escapeHtml(input.csrf)}"></div>`
    : approvals
      ? `<h2>Sign-in requests</h2><ul class="approvals">${approvals}</ul>`
      : ''
}
${
  sealed
    ? `<ul class="devices" id="devices" data-sealed="devices" data-csrf="${escapeHtml(input.csrf)}"><li class="site" id="devices-status">Loading your devices…</li></ul>
<noscript><p class="site">Your devices, passkeys and sign-in requests are fetched sealed by this page's script. <a href="/account?devices=plain">Show them without JavaScript</a> (they then travel as a plain page).</p></noscript>`
    : `<ul class="devices">${rows}</ul>`
}
${input.passkeys ? passkeyAccountSection({ passkeys: input.passkeys.list, csrf: input.csrf, sealed }) : ''}
${input.username ? passwordSection(input.username, sealed, input.scramIterations ?? 600_000) : ''}`,
  })
}
