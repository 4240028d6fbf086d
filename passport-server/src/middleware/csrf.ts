import type { Context } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import { randomSecret, sameSecret } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { renderErrorPage } from '../pages/login-page.ts'
import { sendPage } from '../pages/send-page.ts'

/**
 * Double-submit CSRF protection for the passport's own forms: a `SameSite=Strict` cookie whose
 * value the form repeats, plus `Sec-Fetch-Site` and `Origin`, which a cross-site post cannot fake.
 */
export const CSRF_COOKIE = '__Host-passport_csrf'
const TOKEN = /^[A-Za-z0-9_-]{43}$/

/** The CSRF value for a form, reusing this browser's cookie when it has a well-formed one. */
export function issueCsrf(c: Context): string {
  const existing = getCookie(c, CSRF_COOKIE)
  if (existing && TOKEN.test(existing)) return existing
  const value = randomSecret()
  setCookie(c, CSRF_COOKIE, value, {
    path: '/',
    secure: true,
    httpOnly: true,
    sameSite: 'Strict',
    maxAge: 3600,
  })
  return value
}

/** Whether a form post is a same-origin post of one of our forms. */
export function isSameOriginPost(c: Context, formValue: string | undefined, issuer: string): boolean {
  const fetchSite = c.req.header('Sec-Fetch-Site')
  const origin = c.req.header('Origin')
  const cookie = getCookie(c, CSRF_COOKIE)
  if (
    (fetchSite !== undefined && fetchSite !== 'same-origin') ||
    (origin !== undefined && origin !== issuer)
  ) {
    return false
  }
  return !!cookie && !!formValue && sameSecret(cookie, formValue)
}

const refusals = {
  // Login CSRF: a cross-site post must not sign the victim into someone else's account (or start
  // a request in their name).
  sign_in: 'This sign-in form expired or came from another site. Start again from the site.',
  account: 'This form expired or came from another site.',
} as const

/**
 * Checks that a post is a same-origin post of one of the passport's `form` pages; returns the
 * 403 page refusing it (logged), or null when the post is ours.
 */
export function refuseForeignPost(
  deps: Pick<AppDeps, 'config' | 'log'>,
  c: Context,
  csrf: string | undefined,
  form: keyof typeof refusals,
): Response | null {
  if (isSameOriginPost(c, csrf, deps.config.issuer)) return null
  deps.log('malicious_csrf', {
    what: form,
    fetchSite: c.req.header('Sec-Fetch-Site'),
    origin: c.req.header('Origin'),
  })
  return sendPage(c, renderErrorPage(refusals[form]), 403)
}
