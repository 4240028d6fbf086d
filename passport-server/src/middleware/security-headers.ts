import type { MiddlewareHandler } from 'hono'

/** CSP for anything that is not an HTML page: nothing may load, nothing may frame it. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'"

/**
 * Headers every response gets unless its route set its own: no framing, no sniffing, no
 * referrer (a URL must never carry a credential to a third party, but belt and braces).
 */
export function securityHeaders(): MiddlewareHandler {
  return async (c, next) => {
    await next()
    const h = c.res.headers
    if (!h.has('Content-Security-Policy')) h.set('Content-Security-Policy', API_CSP)
    h.set('X-Content-Type-Options', 'nosniff')
    if (!h.has('Referrer-Policy')) h.set('Referrer-Policy', 'no-referrer')
    h.set('Cross-Origin-Resource-Policy', h.get('Cross-Origin-Resource-Policy') ?? 'same-origin')
  }
}

/** A CSP source expression for an inline script or style, by content hash. */
export async function cspHash(content: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(content))
  return `'sha256-${Buffer.from(digest).toString('base64')}'`
}
