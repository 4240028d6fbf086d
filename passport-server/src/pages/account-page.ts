import { escapeHtml, renderPage } from './html.ts'

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

/** "Your devices": every live sign-in of the user, each with a "Sign out" button but this one's. */
export function renderAccountPage(input: {
  username: string
  devices: DeviceRow[]
  csrf: string
  notice?: string
}) {
  const rows = input.devices
    .map(
      (d) => `<li class="device" data-session="${escapeHtml(d.id)}">
<strong>${escapeHtml(d.device || 'Unknown browser')}</strong>${d.current ? ' <em>(this device)</em>' : ''}<br>
<span class="site">Sites: ${escapeHtml(d.sites.join(', ') || 'none yet')} · signed in ${when(d.signedInAt)} UTC with ${escapeHtml(d.method)} · last active ${d.lastActivityAt ? `${when(d.lastActivityAt)} UTC` : 'unknown'}</span>
${
  d.current
    ? ''
    : `<form method="post" action="/account/sessions/end"><input type="hidden" name="csrf" value="${escapeHtml(input.csrf)}"><input type="hidden" name="session" value="${escapeHtml(d.id)}"><button type="submit">Sign out this device</button></form>`
}</li>`,
    )
    .join('\n')
  return renderPage({
    title: 'Your devices · Passport',
    body: `<h1>Your devices</h1><p class="site">Signed in as <strong>${escapeHtml(input.username)}</strong></p>
${input.notice ? `<p class="notice" role="status">${escapeHtml(input.notice)}</p>` : ''}
<ul class="devices">${rows}</ul>`,
  })
}
