import {
  bindingData,
  parseSignInServerMessage,
  SIGN_IN_COMPLETE_PATH,
  SIGN_IN_GS2_HEADER,
  SIGN_IN_PATH,
  SIGN_IN_PROTOCOL,
  type SignInServerMessage,
} from '../protocol/sign-in.ts'
import { showSealedDevices } from './account-devices.ts'
import { setUpPasswordChange } from './account-password.ts'
import { showSealedApprovals, showSealedPasskeys } from './account-sealed.ts'
import { checkServerFinal, clientFinal, clientFirstBare, clientNonce } from './scram.ts'
import { fetchEncryptionKey, openSealed, wrapContentKey } from './sealed.ts'

/**
 * The passport sign-in page's script: takes the password form over and signs in with
 * SCRAM-SHA-256 over the sign-in socket, so the password never leaves the page. One socket,
 * opened when the page loads, serves every attempt. On success it posts the sealed one-time
 * result top-level (the password field is emptied and unnamed first), so the session cookie
 * and the redirect to the site happen exactly as with the form.
 *
 * Fallbacks (docs/sign-in.md): no socket (a proxy without WebSockets) → the plain form post,
 * while the passport accepts it; a refused proof with a fallback ticket → the plain form post
 * once, carrying the ticket (an account still on an old hash signs in and is upgraded).
 */
const form = document.getElementById('sign-in') as HTMLFormElement | null
if (form) takeOver(form)
// The account page's "Your devices", fetched sealed (the same bundle: it shares the sealing code).
const devices = document.getElementById('devices')
if (devices?.dataset.sealed === 'devices') void showSealedDevices(devices)
// Its passkeys and the sign-in requests waiting for its approval, sealed the same way.
const passkeyList = document.getElementById('passkey-list')
if (passkeyList?.dataset.sealed === 'passkeys') void showSealedPasskeys(passkeyList)
const approvals = document.getElementById('approvals')
if (approvals?.dataset.sealed === 'approvals') void showSealedApprovals(approvals)
// "Change password": SCRAM for the old one, a page-made credential for the new, both sealed.
const passwordChange = document.getElementById('password-change')
if (passwordChange instanceof HTMLFormElement) setUpPasswordChange(passwordChange)

function takeOver(form: HTMLFormElement) {
  const formAllowed = form.dataset.passwordForm !== 'off'
  const field = (name: string) => form.elements.namedItem(name) as HTMLInputElement | null
  const issuer = location.origin
  const site = field('client_id')?.value ?? ''
  let socket: Promise<WebSocket> | null = null
  let inbox: ((m: SignInServerMessage | null) => void) | null = null
  let busy = false

  const open = (): Promise<WebSocket> => {
    socket ??= new Promise((resolve, reject) => {
      const ws = new WebSocket(`${issuer.replace(/^http/, 'ws')}${SIGN_IN_PATH}`, SIGN_IN_PROTOCOL)
      ws.onopen = () => resolve(ws)
      ws.onerror = () => reject(new Error('socket'))
      ws.onclose = () => {
        socket = null // the next attempt opens a new one
        inbox?.(null)
        inbox = null
      }
      ws.onmessage = (event) => {
        const m = typeof event.data === 'string' ? parseSignInServerMessage(event.data) : null
        inbox?.(m)
        inbox = null
      }
    })
    return socket
  }
  const ask = async (message: object): Promise<SignInServerMessage | null> => {
    const ws = await open()
    const answer = new Promise<SignInServerMessage | null>((resolve) => {
      inbox = resolve
    })
    ws.send(JSON.stringify(message))
    return answer
  }
  // Opened at once, with the passport's encryption key fetched beside it: the first attempt
  // waits for neither.
  open().catch(() => {})
  let encKey = fetchEncryptionKey(issuer)
  encKey.catch(() => {
    encKey = fetchEncryptionKey(issuer) // tried once more at the attempt
  })

  const showError = (text: string) => {
    let p = form.parentElement?.querySelector<HTMLElement>('p.error')
    if (!p) {
      p = document.createElement('p')
      p.className = 'error'
      p.setAttribute('role', 'alert')
      form.before(p)
    }
    p.textContent = text
  }
  const hidden = (name: string, value: string) => {
    const input = document.createElement('input')
    input.type = 'hidden'
    input.name = name
    input.value = value
    form.append(input)
  }
  /** The plain form post (the password is sent): only where the passport accepts it. */
  const postForm = (fallback?: string) => {
    if (fallback) hidden('fallback', fallback)
    HTMLFormElement.prototype.submit.call(form)
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    if (busy) return
    busy = true
    signIn()
      .catch(() => {
        if (formAllowed) return postForm()
        showError('The sign-in could not reach the passport. Try again.')
      })
      .finally(() => {
        busy = false
      })
  })

  async function signIn(): Promise<void> {
    const username = field('username')?.value ?? ''
    const passwordInput = field('password')
    const password = passwordInput?.value ?? ''
    const nonce = clientNonce()
    const bare = clientFirstBare(username, nonce)
    const [first, jwk] = await Promise.all([
      ask({ type: 'client_first', site, message: `${SIGN_IN_GS2_HEADER}${bare}` }),
      encKey,
    ])
    if (!first) throw new Error('socket closed')
    if (first.type === 'error') return refused(first)
    if (first.type !== 'server_first') throw new Error('unexpected message')
    const final = await clientFinal({
      password,
      clientFirstBare: bare,
      clientNonce: nonce,
      serverFirst: first.message,
      channelBinding: `${SIGN_IN_GS2_HEADER}${bindingData(first.address, site)}`,
    })
    if (!final) return showError('The passport answered in a way this page does not accept.')
    const { key, wrapped } = await wrapContentKey(jwk, issuer, 'sign_in')
    const last = await ask({ type: 'client_final', message: final.message, seal: wrapped })
    if (!last) throw new Error('socket closed')
    if (last.type === 'error') return refused(last)
    if (last.type !== 'server_final') throw new Error('unexpected message')
    // The passport proves it holds this account's ServerKey before the page trusts its answer.
    if (!checkServerFinal(last.message, final.serverSignature)) {
      return showError('The passport could not prove itself. Do not retry here; reload the page.')
    }
    const { result } = await openSealed<{ result: string }>(last.result, key)
    if (passwordInput) {
      passwordInput.value = ''
      passwordInput.removeAttribute('name')
    }
    form.action = SIGN_IN_COMPLETE_PATH
    hidden('result', result)
    HTMLFormElement.prototype.submit.call(form)
  }

  function refused(error: Extract<SignInServerMessage, { type: 'error' }>): void {
    if (error.code === 'invalid_proof' && error.fallback && formAllowed) postForm(error.fallback)
    else if (error.code === 'throttled') showError('Too many sign-in attempts from here. Try again later.')
    else if (error.code === 'invalid_proof') showError('Wrong username or password.')
    else showError('This sign-in could not be completed. Reload the page and try again.')
  }
}
