import type { RequesterView } from '../services/device-approval.ts'
import { escapeHtml, hiddenField, renderPage } from './html.ts'

/**
 * Waits for the decision without a reload: a long poll on the passport's own origin; on approval
 * it posts the "continue" form (which is also there for a browser without script).
 */
const WAIT_SCRIPT = `(async()=>{const f=document.getElementById('continue');for(;;){let s='pending';try{const r=await fetch('/login/device/wait',{cache:'no-store'});s=r.ok?(await r.json()).status:'gone'}catch{await new Promise(r=>setTimeout(r,2000));continue}if(s==='approved'){f.submit();return}if(s!=='pending'){location.reload();return}}})()`

const endings: Record<Exclude<RequesterView['status'], 'pending' | 'approved'>, string> = {
  denied: 'The sign-in was denied on your other device.',
  cancelled: 'The sign-in request was cancelled: a wrong number was entered, or it was withdrawn.',
  expired: 'The sign-in request expired before it was approved.',
  used: 'This sign-in request was already used.',
}

/** The new device's page: the code to find on the other device, then the outcome. */
export function renderDeviceWaitPage(input: {
  view: RequesterView
  siteName: string
  csrf: string
  /** Where "start again" goes: the site that asked for the sign-in. */
  siteOrigin: string
}): { html: string; csp: string } {
  const { view } = input
  const csrf = hiddenField('csrf', input.csrf)
  if (view.status === 'pending' || view.status === 'approved') {
    return renderPage({
      title: 'Approve on your other device · Passport',
      formAction: [input.siteOrigin],
      script: WAIT_SCRIPT,
      body: `<h1>Approve on your other device</h1><p class="site">to continue to <strong>${escapeHtml(input.siteName)}</strong></p>
<p>On a device where you are signed in, a sign-in request is waiting. Type this number there:</p>
<p class="code" id="approval-code" aria-label="Number to type">${escapeHtml(view.code)}</p>
<p class="site">The request ends in two minutes.</p>
<form method="post" action="/login/device/complete" id="continue">${csrf}<button type="submit">Continue</button></form>
<form method="post" action="/login/device/cancel">${csrf}<button type="submit" class="secondary">Cancel this request</button></form>`,
    })
  }
  return renderPage({
    title: 'Sign-in not approved · Passport',
    body: `<h1>Not signed in</h1><p class="error" role="alert">${escapeHtml(endings[view.status])}</p>
<p><a href="${escapeHtml(input.siteOrigin)}">Back to ${escapeHtml(input.siteName)}</a> to start again.</p>`,
  })
}
