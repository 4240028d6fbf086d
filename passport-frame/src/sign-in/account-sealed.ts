import type { ApprovalPrompt } from '../protocol/approval.ts'
import { fetchEncryptionKey, openSealed, type SealedPurpose, wrapContentKey } from './sealed.ts'

/**
 * The account page's sealed reads (docs/sign-in.md, "Sealed payloads"): a one-time content key
 * wrapped to the passport's `enc` key for `purpose`, posted to `/account/<purpose>/sealed`, and
 * the answer opened with it. Nothing between this page and the passport's code reads the list.
 */
export async function fetchSealed<T>(purpose: SealedPurpose): Promise<T> {
  const issuer = location.origin
  const jwk = await fetchEncryptionKey(issuer)
  const { key, wrapped } = await wrapContentKey(jwk, issuer, purpose)
  const res = await fetch(`/account/${purpose}/sealed`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ seal: wrapped }),
    cache: 'no-store',
  })
  if (!res.ok) throw new Error(`${purpose} ${res.status}`)
  const { sealed } = (await res.json()) as { sealed: string }
  return openSealed<T>(sealed, key)
}

/** A passkey as `POST /account/passkeys/sealed` answers it (PasskeyView). */
interface SealedPasskey {
  id: string
  name: string
  createdAt: number
  lastUsedAt: number | null
  backedUp: boolean
  deviceType: string
}

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10)

/** A post form of the account page's (CSRF value and hidden fields), as the server renders it. */
export function postForm(
  action: string,
  fields: Record<string, string>,
  button: string,
  secondary = false,
): HTMLFormElement {
  const form = document.createElement('form')
  form.method = 'post'
  form.action = action
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement('input')
    input.type = 'hidden'
    input.name = name
    input.value = value
    form.append(input)
  }
  const submit = document.createElement('button')
  submit.type = 'submit'
  submit.textContent = button
  if (secondary) submit.className = 'secondary'
  form.append(submit)
  return form
}

function fallback(status: HTMLElement | null, what: string) {
  if (!status) return
  status.textContent = `${what} could not be loaded. `
  const link = document.createElement('a')
  link.href = '/account?devices=plain'
  link.textContent = 'Show them as a plain page'
  status.append(link)
}

/** "Passkeys": the same rows as the server's plain page (`passkeyAccountSection`), by DOM text calls. */
export async function showSealedPasskeys(list: HTMLElement): Promise<void> {
  const csrf = list.dataset.csrf ?? ''
  try {
    const answer = await fetchSealed<{ passkeys: SealedPasskey[]; can_add: boolean }>('passkeys')
    const { passkeys } = answer
    const note = (text: string) => {
      const li = document.createElement('li')
      li.className = 'site'
      li.textContent = text
      return li
    }
    // Adding one needs a recent sign-in (`reauth_required`): say so before the user tries.
    const later = answer.can_add
      ? []
      : [note('Adding a passkey needs a sign-in in the last 10 minutes: sign out and in again first.')]
    if (passkeys.length === 0) {
      list.replaceChildren(note('No passkey yet.'), ...later)
      return
    }
    list.replaceChildren(
      ...passkeys.map((p) => {
        const li = document.createElement('li')
        li.className = 'passkey'
        li.dataset.passkey = p.id
        const name = document.createElement('strong')
        name.textContent = p.name
        const detail = document.createElement('span')
        detail.className = 'site'
        const sync =
          p.deviceType === 'multiDevice' ? (p.backedUp ? 'synced' : 'can be synced') : 'on one device'
        detail.textContent = `${sync} · last used ${p.lastUsedAt ? day(p.lastUsedAt) : 'never'}`
        li.append(
          name,
          document.createElement('br'),
          detail,
          postForm('/account/passkeys/remove', { csrf, passkey: p.id }, 'Remove this passkey', true),
        )
        return li
      }),
      ...later,
    )
  } catch {
    fallback(document.getElementById('passkeys-status'), 'Your passkeys')
  }
}

/**
 * "Sign-in requests": who asks (site, browser, address, the client's message), with the field
 * for the two digits the other device shows, and the deny; as the server's plain page draws them.
 */
export async function showSealedApprovals(box: HTMLElement): Promise<void> {
  const csrf = box.dataset.csrf ?? ''
  try {
    const { approvals } = await fetchSealed<{ approvals: ApprovalPrompt[] }>('approvals')
    if (approvals.length === 0) return box.replaceChildren()
    const heading = document.createElement('h2')
    heading.textContent = 'Sign-in requests'
    const list = document.createElement('ul')
    list.className = 'approvals'
    for (const p of approvals) {
      const li = document.createElement('li')
      li.className = 'approval'
      li.dataset.approval = p.id
      const title = document.createElement('strong')
      title.textContent = `Sign-in request for ${p.siteName}`
      const who = document.createElement('span')
      who.className = 'site'
      who.textContent = `from ${p.device || 'an unknown browser'} at ${p.address}${p.bindingMessage ? ` · "${p.bindingMessage}"` : ''}`
      const approve = postForm('/account/approvals/decide', { csrf, approval: p.id }, 'Approve')
      const label = document.createElement('label')
      label.htmlFor = `code-${p.id}`
      label.textContent = 'If this is you, type the number shown on that device:'
      const code = document.createElement('input')
      Object.assign(code, { id: `code-${p.id}`, name: 'code', inputMode: 'numeric', autocomplete: 'off' })
      Object.assign(code, { required: true, minLength: 2, maxLength: 2, pattern: '[0-9]{2}' })
      approve.lastElementChild?.before(label, code)
      const deny = postForm(
        '/account/approvals/decide',
        { csrf, approval: p.id, deny: '1' },
        'Deny, I did not ask for this',
        true,
      )
      li.append(title, document.createElement('br'), who, approve, deny)
      list.append(li)
    }
    box.replaceChildren(heading, list)
  } catch {
    const status = document.createElement('p')
    status.className = 'site'
    box.replaceChildren(status)
    fallback(status, 'Sign-in requests')
  }
}
