import {
  bindingData,
  newPasswordProblem,
  parseSignInServerMessage,
  SIGN_IN_GS2_HEADER,
  SIGN_IN_PATH,
  SIGN_IN_PROTOCOL,
  type SignInServerMessage,
} from '../protocol/sign-in.ts'
import { checkServerFinal, clientFinal, clientFirstBare, clientNonce, newCredential } from './scram.ts'
import { fetchEncryptionKey, openSealed, wrapContentKey } from './sealed.ts'

/**
 * "Change password" on the account page, with neither password on the wire (docs/sign-in.md):
 *
 * 1. the current password is proven by a SCRAM exchange for the passport itself (`site: ''`)
 *    over the sign-in socket; its one-time result, sealed to this page's key, is `reauth`;
 * 2. the new credential (random salt, PBKDF2 at the passport's iterations, StoredKey, ServerKey)
 *    is made here; the new password goes no further than WebCrypto;
 * 3. both go sealed (purpose `password`) to `POST /account/password/sealed`, whose answer
 *    (`{changed, signed_out}`) comes back sealed too.
 *
 * The passport cannot judge a password it never sees: the page refuses a weak one
 * (`newPasswordProblem`) before anything is sent.
 */
const problems: Record<string, string> = {
  too_short: 'The new password is too short: use at least 8 characters.',
  too_long: 'The new password is too long.',
  same_as_username: 'The new password must not contain your username.',
  same_as_current: 'The new password is the same as the current one.',
  mismatch: 'The two new passwords are not the same.',
  invalid_proof: 'Your current password is not right. Nothing was changed.',
  throttled:
    'Too many password attempts from here or for this account. Nothing was changed; try again later.',
  login_required: 'You are no longer signed in at the passport. Sign in again.',
  failed: 'The password could not be changed. Nothing was changed; reload the page and try again.',
}

/** One SCRAM exchange for the passport itself on a socket of its own; the sealed one-time result. */
async function proveCurrentPassword(
  username: string,
  password: string,
  issuer: string,
): Promise<{ result: string } | { code: string; retryAfter?: number }> {
  const ws = new WebSocket(`${issuer.replace(/^http/, 'ws')}${SIGN_IN_PATH}`, SIGN_IN_PROTOCOL)
  const queue: (SignInServerMessage | null)[] = []
  let waiting: ((m: SignInServerMessage | null) => void) | null = null
  const push = (m: SignInServerMessage | null) => {
    const taker = waiting
    waiting = null
    if (taker) taker(m)
    else queue.push(m)
  }
  ws.onmessage = (e) => push(typeof e.data === 'string' ? parseSignInServerMessage(e.data) : null)
  ws.onclose = () => push(null)
  ws.onerror = () => push(null)
  const next = () =>
    queue.length > 0
      ? Promise.resolve(queue.shift() ?? null)
      : new Promise<SignInServerMessage | null>((resolve) => {
          waiting = resolve
        })
  try {
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve()
      ws.addEventListener('close', () => reject(new Error('socket')))
    })
    const nonce = clientNonce()
    const bare = clientFirstBare(username, nonce)
    const jwkAsked = fetchEncryptionKey(issuer)
    ws.send(JSON.stringify({ type: 'client_first', site: '', message: `${SIGN_IN_GS2_HEADER}${bare}` }))
    const first = await next()
    if (first?.type === 'error')
      return { code: first.code, ...(first.retry_after ? { retryAfter: first.retry_after } : {}) }
    if (first?.type !== 'server_first') return { code: 'failed' }
    const final = await clientFinal({
      password,
      clientFirstBare: bare,
      clientNonce: nonce,
      serverFirst: first.message,
      channelBinding: `${SIGN_IN_GS2_HEADER}${bindingData(first.address, '')}`,
    })
    if (!final) return { code: 'failed' }
    const { key, wrapped } = await wrapContentKey(await jwkAsked, issuer, 'sign_in')
    ws.send(JSON.stringify({ type: 'client_final', message: final.message, seal: wrapped }))
    const last = await next()
    if (last?.type === 'error')
      return { code: last.code, ...(last.retry_after ? { retryAfter: last.retry_after } : {}) }
    // The passport proves it holds this account's ServerKey before the page trusts its answer.
    if (last?.type !== 'server_final' || !checkServerFinal(last.message, final.serverSignature)) {
      return { code: 'failed' }
    }
    return openSealed<{ result: string }>(last.result, key)
  } finally {
    ws.close()
  }
}

export function setUpPasswordChange(form: HTMLFormElement): void {
  const input = (id: string) => form.querySelector<HTMLInputElement>(`#${id}`)
  const current = input('current-password')
  const fresh = input('new-password')
  const repeat = input('repeat-password')
  const button = form.querySelector<HTMLButtonElement>('#password-change-button')
  const error = form.querySelector<HTMLElement>('#password-error')
  const status = form.querySelector<HTMLElement>('#password-status')
  const username = form.dataset.username ?? ''
  const iterations = Number(form.dataset.iterations)
  if (!current || !fresh || !repeat || !button || !error || !status || !(iterations > 0)) return
  const say = (box: HTMLElement, text: string) => {
    error.hidden = true
    status.hidden = true
    box.textContent = text
    box.hidden = false
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const problem =
      fresh.value !== repeat.value
        ? 'mismatch'
        : newPasswordProblem(fresh.value, { username, current: current.value })
    if (problem) return say(error, problems[problem] ?? problems.failed ?? '')
    button.disabled = true
    say(status, 'Checking your current password…')
    try {
      const issuer = location.origin
      const proof = await proveCurrentPassword(username, current.value, issuer)
      if (!('result' in proof)) {
        const wait =
          proof.code === 'throttled' && proof.retryAfter
            ? ` (about ${Math.ceil(proof.retryAfter / 60)} min)`
            : ''
        return say(error, `${problems[proof.code] ?? problems.failed} (${proof.code})${wait}`)
      }
      say(status, 'Saving the new password…')
      const credential = await newCredential(fresh.value, iterations)
      const jwk = await fetchEncryptionKey(issuer)
      const { key, wrapped } = await wrapContentKey(jwk, issuer, 'password', undefined, {
        reauth: proof.result,
        credential,
      })
      const res = await fetch('/account/password/sealed', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ seal: wrapped }),
        cache: 'no-store',
      })
      if (!res.ok) {
        const code = res.status === 401 ? 'login_required' : 'failed'
        return say(error, `${problems[code]} (${res.status})`)
      }
      const answer = await openSealed<{ changed: boolean; signed_out: number }>(
        ((await res.json()) as { sealed: string }).sealed,
        key,
      )
      form.reset()
      say(
        status,
        `Password changed.${answer.signed_out > 0 ? ` Your ${answer.signed_out} other device(s) were signed out.` : ''}`,
      )
    } catch {
      say(error, problems.failed ?? '')
    } finally {
      button.disabled = false
    }
  })
  form.hidden = false
}
