import { type EndReason, SIGNED_OUT_MESSAGES } from '../shared/messages.ts'
import { renderSignedOut } from './sign-in-html.ts'

// The page arrives already rendered by the server. While signed in, it listens to its own
// backend for the end of the sign-in (the backend hears of it by back-channel logout) and
// shows why, at once, without a reload.
const root = document.getElementById('app') as HTMLElement
if (root.dataset.signedIn === 'true') {
  const events = new EventSource('/passport/events')
  events.addEventListener('signed_out', (event) => {
    events.close()
    const reason = (JSON.parse((event as MessageEvent<string>).data) as { reason: EndReason | null }).reason
    root.dataset.signedIn = 'false'
    root.innerHTML = renderSignedOut(reason ? SIGNED_OUT_MESSAGES[reason] : '')
  })
}
