import type { EndReason, Passport, PassportState } from '../../passport-frame/src/embed/index.ts'
import { SIGNED_OUT_MESSAGES } from './messages.ts'

interface Me {
  user: string
  name: string
}

/**
 * The demo page: asks the SDK for the site-bound token, asks its own backend who that is, and
 * shows "Signed in as …" or a "Sign in" button. All text goes through textContent.
 */
export function mountDemo(passport: Passport, root: HTMLElement): void {
  const status = document.createElement('p')
  status.id = 'status'
  status.setAttribute('role', 'status')
  const message = document.createElement('p')
  message.id = 'message'
  message.className = 'message'
  const button = document.createElement('button')
  button.type = 'button'
  root.replaceChildren(status, message, button)

  let signedOutLocally = false
  let offered = false
  const showSignedOut = (reason: EndReason | null) => {
    status.textContent = 'You are not signed in.'
    message.textContent = signedOutLocally ? 'You signed out.' : reason ? SIGNED_OUT_MESSAGES[reason] : ''
    message.hidden = message.textContent === ''
    button.textContent = 'Sign in'
    // The browser's own "Continue as" dialog where the site uses FedCM; else the passport's page.
    button.onclick = () => void passport.login({ mode: 'fedcm' })
    button.disabled = false
    // No FedCM (Firefox): the frame's own "Continue with Passport", once per page.
    if (!offered && !('IdentityCredential' in window) && 'requestStorageAccess' in document) {
      offered = true
      passport.showContinueButton()
    }
  }
  const showSignedIn = (me: Me) => {
    status.textContent = `Signed in as ${me.user}`
    message.textContent = `Welcome back, ${me.name}.`
    message.hidden = false
    button.textContent = 'Sign out'
    button.disabled = false
    button.onclick = async () => {
      button.disabled = true
      signedOutLocally = true
      await passport.logout().catch(() => undefined)
    }
  }

  let generation = 0
  const refresh = async (state: PassportState) => {
    const mine = ++generation
    if (state.status === 'loading') {
      status.textContent = 'Checking your sign-in…'
      return
    }
    if (state.status === 'signed_out') return showSignedOut(state.reason)
    // The token with a proof by the frame's key: Shop's tokens are DPoP-bound (useless without it).
    const url = new URL('/api/me', location.href).href
    let headers: { Authorization: string; DPoP: string }
    try {
      headers = await passport.authHeaders('GET', url)
    } catch {
      return // the SDK moved to signed_out and told onChange
    }
    const res = await fetch(url, { headers })
    if (mine !== generation) return
    if (res.ok) return showSignedIn((await res.json()) as Me)
    // Our backend says no: ask the passport why (it also drops the dead token and emits the change).
    const check = await passport.check().catch(() => null)
    if (check?.valid) showSignedOut(null)
  }

  passport.onChange((state) => void refresh(state))
  void refresh(passport.state)
}
