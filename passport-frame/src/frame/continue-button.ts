/**
 * "Continue with Passport" inside the passport frame, for browsers without FedCM (Firefox;
 * issue 17 §4, docs/fedcm.md). Fetched on demand (`/frame-continue.js`) only when the site asks
 * for it (`passport.showContinueButton()`).
 *
 * The frame is partitioned under the site: before access it cannot see the passport session, so
 * it names no one (a name read from the session would need the access this button asks for). The
 * click is a gesture on the passport's own origin, the only kind `requestStorageAccess()` accepts;
 * after the browser's own prompt the frame sends the passport's `SameSite=None` cookie and takes
 * a token from the session, as the FedCM path does after its grant.
 */
export interface ContinueButtonDeps {
  /** Default: this frame's `document`. */
  doc?: Pick<Document, 'createElement' | 'body' | 'getElementById' | 'requestStorageAccess'>
  /** Default `doc.requestStorageAccess()`: rejects when the browser or the user says no. */
  requestAccess?: () => Promise<void>
  /** A token from the passport session, now reachable; rejects when there is no session. */
  signIn: () => Promise<unknown>
  /** Asks the page to show or hide the frame. */
  setVisible: (visible: boolean) => void
  /** Clickjacking brake, as the approval prompt's: the button works only after this long on screen. */
  armDelayMs?: number
  now?: () => number
}

const BUTTON: Partial<CSSStyleDeclaration> = {
  width: '100%',
  padding: '10px',
  border: '0',
  borderRadius: '8px',
  background: '#2557d6',
  color: '#fff',
  font: '600 15px/1.2 system-ui,sans-serif',
  cursor: 'pointer',
}

export default function showContinueButton(deps: ContinueButtonDeps): { remove(): void } {
  const doc = deps.doc ?? document
  const now = deps.now ?? (() => Date.now())
  const shownAt = now()
  const armDelayMs = deps.armDelayMs ?? 600
  doc.getElementById('passport-continue')?.remove() // asked again: one button, not two
  const box = doc.createElement('div')
  box.id = 'passport-continue'
  Object.assign(box.style, { padding: '14px 16px', font: '15px/1.45 system-ui,sans-serif', color: '#1d2330' })
  const text = doc.createElement('p')
  text.textContent = 'Sign in to this site with your Passport account.'
  const button = doc.createElement('button')
  button.type = 'button'
  button.textContent = 'Continue with Passport'
  Object.assign(button.style, BUTTON)
  const later = doc.createElement('button')
  later.type = 'button'
  later.textContent = 'Not now'
  Object.assign(later.style, { ...BUTTON, background: '#e8ebf2', color: '#1d2330', marginTop: '8px' })
  const note = doc.createElement('p')
  note.setAttribute('role', 'status')
  box.append(text, button, later, note)
  doc.body.append(box)
  deps.setVisible(true)

  const remove = () => {
    box.remove()
    deps.setVisible(false)
  }
  button.addEventListener('click', async () => {
    if (now() - shownAt < armDelayMs || button.disabled) return
    button.disabled = true
    note.textContent = ''
    try {
      await (deps.requestAccess ?? (() => doc.requestStorageAccess()))()
    } catch {
      note.textContent = 'Your browser did not allow the Passport here.'
      button.disabled = false
      return
    }
    if (
      await deps.signIn().then(
        () => true,
        () => false,
      )
    )
      return remove()
    note.textContent = 'You are not signed in to the Passport in this browser: use Sign in.'
    button.disabled = false
  })
  later.addEventListener('click', remove)
  return { remove }
}
