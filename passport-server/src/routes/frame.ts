import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { Hono } from 'hono'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { renderFramePage } from '../pages/frame-page.ts'
import type { DpopProofs } from '../services/dpop-proofs.ts'

/** Built browser files served from the passport origin (vite output in `config.assetsDir`). */
const PUBLIC_SCRIPTS = {
  '/passport.js': 'passport.js', // the SDK for a classic <script> tag
  '/passport.mjs': 'passport.mjs', // the SDK as an ES module
  '/passport-extras.mjs': 'passport-extras.mjs', // the SDK's occasional parts, loaded on first use
  '/frame.js': 'frame.js', // the frame's own code, loaded only by /frame/:site
  '/frame-approval.js': 'frame-approval.js', // the frame's approval prompt, loaded when one is asked
  '/sign-in.js': 'sign-in.js', // the sign-in page's SCRAM client (passport pages only)
  '/frame-shared.js': 'frame-shared.js', // the shared passport state, loaded by FedCM sites' frames
  '/frame-continue.js': 'frame-continue.js', // "Continue with Passport", loaded when a site shows it
  '/frame-sealed.js': 'frame-sealed.js', // sealed asks (jose), loaded when a request's details are fetched
  '/frame-session.js': 'frame-session.js', // refresh and live channel, once the frame holds a sign-in
} as const
const FRAME_ONLY: ReadonlySet<string> = new Set([
  '/frame.js',
  '/frame-approval.js',
  '/sign-in.js',
  '/frame-shared.js',
  '/frame-continue.js',
  '/frame-sealed.js',
  '/frame-session.js',
])

export function frameRoutes(deps: AppDeps, proofs: DpopProofs): Hono {
  const app = new Hono()
  const cache = new Map<string, string>()

  const loadScript = async (file: string): Promise<string> => {
    const hit = cache.get(file)
    if (hit !== undefined) return hit
    try {
      const text = await readFile(path.join(deps.config.assetsDir, file), 'utf8')
      cache.set(file, text)
      return text
    } catch {
      deps.log('asset_missing', { file })
      throw new PassportError('temporarily_unavailable', 'browser files are not built; run `npm run build`')
    }
  }

  for (const [route, file] of Object.entries(PUBLIC_SCRIPTS)) {
    app.get(route, async (c) => {
      const body = await loadScript(file)
      c.header('Content-Type', 'text/javascript; charset=utf-8')
      c.header('Cache-Control', 'public, max-age=300')
      if (!FRAME_ONLY.has(route)) {
        // Sites load the SDK from their own pages: allow cross-origin use of this public code.
        c.header('Access-Control-Allow-Origin', '*')
        c.header('Cross-Origin-Resource-Policy', 'cross-origin')
      }
      return c.body(body)
    })
  }

  app.get('/frame/:siteId', async (c) => {
    const siteId = c.req.param('siteId')
    const site = siteId.length <= 64 ? await deps.store.sites.get(siteId) : null
    if (!site) throw new PassportError('not_found', 'no such site')
    // The page (never cached) carries the server's time and a DPoP nonce: the frame's first
    // proof is accepted as it is, whatever the device's clock says.
    const page = renderFramePage(site, deps.config.issuer, {
      serverTime: deps.clock.now(),
      dpopNonce: await proofs.currentNonce(),
    })
    // Storage Access Headers: a FedCM site's frame that holds a grant but loads without it
    // active is told to load with it (the passport's cookie and storage, no script call needed).
    if (site.fedcm && c.req.header('Sec-Fetch-Storage-Access') === 'inactive') {
      c.header('Activate-Storage-Access', 'load')
    }
    c.header('Content-Security-Policy', page.csp)
    c.header('Cache-Control', 'no-store')
    return c.html(page.html)
  })

  return app
}
