import {
  browserSupportsWebAuthn,
  browserSupportsWebAuthnAutofill,
  startAuthentication,
  startRegistration,
} from '@simplewebauthn/browser'

/**
 * The passport pages' passkey script (`/passkey.js`, built by `vite build --mode passkey`).
 *
 * Sign-in page: offers the passkeys of this site in the username field's autofill (conditional
 * mediation) and behind "Sign in with a passkey". Account page: "Add a passkey". Either way it
 * asks the passport for options (a same-origin POST carrying the form's CSRF value), runs the
 * ceremony, and posts the response in the page's form: the passport answers that post as it
 * answers the password form (a redirect to the site, or the account page again). It never sees
 * or keeps a secret: the challenge is the server's, bound to an HttpOnly cookie.
 */

const field = (form: HTMLFormElement, name: string) =>
  form.elements.namedItem(name) as HTMLInputElement | null

async function fetchOptions(url: string, form: HTMLFormElement): Promise<never> {
  const res = await fetch(url, {
    method: 'POST',
    body: new URLSearchParams({ csrf: field(form, 'csrf')?.value ?? '' }),
    credentials: 'same-origin',
    cache: 'no-store',
  })
  if (!res.ok) {
    const code = ((await res.json().catch(() => null)) as { error?: unknown } | null)?.error
    // A stable code the page explains (`reauth_required`: adding a passkey needs a recent sign-in).
    throw Object.assign(new Error(`options: ${res.status}`), { code })
  }
  return (await res.json()) as never
}

function submitWith(form: HTMLFormElement, response: unknown) {
  const target = field(form, 'response')
  if (!target) return
  target.value = JSON.stringify(response)
  form.submit()
}

function showError(form: HTMLFormElement, message: string) {
  const error = form.querySelector<HTMLElement>('#passkey-error')
  if (!error) return
  error.textContent = message
  error.hidden = false
}

/** A ceremony the user ended (cancel, timeout) or that a newer one replaced: nothing to say. */
const isQuiet = (err: unknown) =>
  err instanceof Error && (err.name === 'AbortError' || err.name === 'NotAllowedError')

function setUpSignIn(form: HTMLFormElement) {
  const button = form.querySelector<HTMLButtonElement>('#passkey-button')
  const conditional = async () => {
    if (!(await browserSupportsWebAuthnAutofill())) return
    try {
      const optionsJSON = await fetchOptions('/login/passkey/options', form)
      submitWith(form, await startAuthentication({ optionsJSON, useBrowserAutofill: true }))
    } catch {
      // Aborted by the button's ceremony, or the autofill was not used: the button remains.
    }
  }
  button?.addEventListener('click', async () => {
    button.disabled = true
    try {
      // Starting this ceremony aborts the autofill one (one WebAuthn request at a time).
      const optionsJSON = await fetchOptions('/login/passkey/options', form)
      submitWith(form, await startAuthentication({ optionsJSON }))
    } catch (err) {
      button.disabled = false
      showError(
        form,
        isQuiet(err)
          ? 'No passkey was used.'
          : 'The passkey could not be used here. Try again, or use your password.',
      )
    }
  })
  form.hidden = false
  // After a refused sign-in the page waits for the button: autofill does not try again by itself.
  if (!document.querySelector('.error[role="alert"]:not([hidden])')) void conditional()
}

function setUpRegistration(form: HTMLFormElement) {
  const button = form.querySelector<HTMLButtonElement>('#passkey-add-button')
  button?.addEventListener('click', async () => {
    button.disabled = true
    try {
      const optionsJSON = await fetchOptions('/account/passkeys/options', form)
      submitWith(form, await startRegistration({ optionsJSON }))
    } catch (err) {
      button.disabled = false
      const exists = err instanceof Error && err.name === 'InvalidStateError'
      const reauth = (err as { code?: unknown }).code === 'reauth_required'
      showError(
        form,
        reauth
          ? 'Adding a passkey needs a sign-in in the last 10 minutes: sign out, sign in again, then add it. (reauth_required)'
          : exists
            ? 'This device already holds a passkey for your account.'
            : isQuiet(err)
              ? 'No passkey was added.'
              : 'The passkey could not be added. Try again.',
      )
    }
  })
  form.hidden = false
}

if (browserSupportsWebAuthn()) {
  const signIn = document.getElementById('passkey-sign-in')
  if (signIn instanceof HTMLFormElement) setUpSignIn(signIn)
  const add = document.getElementById('passkey-add')
  if (add instanceof HTMLFormElement) setUpRegistration(add)
}
