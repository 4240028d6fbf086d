import type { Context } from 'hono'

/**
 * Sends one of the passport's own HTML pages: its CSP, never cached, and `same-origin`
 * referrers. (`no-referrer` would make the browser send `Origin: null` with a form post, hiding
 * the very header the CSRF check reads; `same-origin` still tells other sites nothing.)
 */
export function sendPage(
  c: Context,
  page: { html: string; csp: string },
  status: 200 | 400 | 401 | 403 | 404 | 429 = 200,
) {
  c.header('Content-Security-Policy', page.csp)
  c.header('Cache-Control', 'no-store')
  c.header('Referrer-Policy', 'same-origin')
  return c.html(page.html, status)
}
