import type { SiteRecord } from '../store/types.ts'

/** What the frame learns about its site from the page that serves it. */
export interface FrameSiteConfig {
  id: string
  origins: string[]
  /** The server's clock when the page was made (ms): DPoP proofs are dated by it. */
  serverTime: number
  /** A DPoP nonce for the frame's first proofs (later ones come in `DPoP-Nonce` headers). */
  dpopNonce: string
  /** The site opted in to FedCM: the frame looks for storage access and the shared state. */
  fedcm?: boolean
}

/**
 * The frame document. Its `frame-ancestors` is exactly the site's registered origins, so a
 * browser refuses to render it inside any other site (and inside any double framing).
 */
export function renderFramePage(
  site: SiteRecord,
  issuer: string,
  fresh: { serverTime: number; dpopNonce: string },
): { html: string; csp: string } {
  // The live channel: a WebSocket to the passport's own host (ws: or wss: to match http/https).
  const liveOrigin = issuer.replace(/^http/, 'ws')
  const config: FrameSiteConfig = {
    id: site.id,
    origins: site.origins,
    ...fresh,
    ...(site.fedcm ? { fedcm: true } : {}),
  }
  // A FedCM site's frame fetches its shared state (`frame-shared.js`) as soon as frame.js runs:
  // fetched with frame.js instead, it is there by then (issue 17: the second site in a new tab).
  const sharedPreload = site.fedcm ? '<link rel="modulepreload" href="/frame-shared.js">' : ''
  // JSON inside <script type="application/json"> must not be able to close the element.
  const json = JSON.stringify(config).replace(/</g, '\\u003c')
  return {
    html: `<!doctype html><html><head><meta charset="utf-8"><title>Passport</title><script type="application/json" id="passport-site">${json}</script><script type="module" src="/frame.js"></script>${sharedPreload}</head><body></body></html>`,
    csp: `default-src 'none'; script-src 'self'; connect-src 'self' ${liveOrigin}; frame-ancestors ${site.origins.join(' ')}; base-uri 'none'; form-action 'none'`,
  }
}
