import type { Context } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import { randomSecret, sameSecret } from '../auth/random.ts'

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
