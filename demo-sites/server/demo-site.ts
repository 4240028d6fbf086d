import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Hono } from 'hono'
import { backchannelLogout, requirePassport } from '../../passport-server/site-sdk/hono.ts'
import { createSiteVerifier } from '../../passport-server/site-sdk/verify.ts'
import { hashedAssets } from './hashed-assets.ts'

export interface DemoSiteOptions {
  id: string
  /** Public origin of this site, e.g. http://news.localhost:8081. */
  origin: string
  /** Public origin of the passport (what browsers load). */
  passportOrigin: string
  /** Where this backend reaches the passport (Node does not resolve *.localhost). */
  passportInternalUrl: string
  clientSecret: string
  authkey: string
  /** How the page loads the SDK: the one-line script tag, or the ES module bundled into the page. */
  sdk: 'script' | 'module'
  /** Built pages (vite output: dist/sites). */
  distDir: string
  /** Registered with `--fedcm true`: the page signs in through the browser's FedCM dialog. */
  fedcm?: boolean
}

function escapeAttr(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}

/**
 * A demo site's own small backend: serves its page and `GET /api/me`, which turns the
 * passport token into a user through the passport's introspection endpoint.
 */
export function createDemoSiteApp(options: DemoSiteOptions): Hono {
  const app = new Hono()
  // The demo asks the passport on every request (no cache), so a sign-out or a newer sign-in
  // elsewhere shows on the very next click; a real site may keep the 5 s default.
  const verifier = createSiteVerifier({
    issuer: options.passportOrigin,
    internalUrl: options.passportInternalUrl,
    siteId: options.id,
    clientSecret: options.clientSecret,
    revocationCacheMs: 0,
  })
  const template = readFileSync(path.join(options.distDir, options.id, 'index.html'), 'utf8')
  const sdkTags =
    options.sdk === 'script'
      ? // The page calls `authHeaders()` as soon as it is signed in: its code (the SDK's extras)
        // is fetched beside the frame, not after the token (README, "Adding it to a site").
        `<script src="${escapeAttr(options.passportOrigin)}/passport.js" data-authkey="${escapeAttr(options.authkey)}"${options.fedcm ? ' data-fedcm="true"' : ''}></script><link rel="modulepreload" href="${escapeAttr(options.passportOrigin)}/passport-extras.mjs">`
      : `<meta name="passport-origin" content="${escapeAttr(options.passportOrigin)}"><meta name="passport-authkey" content="${escapeAttr(options.authkey)}">${options.fedcm ? '<meta name="passport-fedcm" content="true">' : ''}`
  const page = template.replace('<!-- passport-sdk -->', sdkTags)
  const csp = [
    "default-src 'self'",
    `script-src 'self' ${options.passportOrigin}`,
    `frame-src ${options.passportOrigin}`,
    // FedCM: the browser fetches the passport's config under the page's connect-src.
    `connect-src 'self'${options.fedcm ? ` ${options.passportOrigin}` : ''}`,
    "img-src 'self' data:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ')

  app.get('/', (c) => {
    c.header('Content-Security-Policy', csp)
    c.header('Cache-Control', 'no-store')
    c.header('Link', `<${options.passportOrigin}>; rel=preconnect`)
    return c.html(page)
  })
  app.use('/assets/*', hashedAssets(options.distDir))

  // OIDC back-channel logout: the passport tells this backend when a session ends; the verifier
  // then refuses that session's tokens here at once, whatever else happens.
  app.post('/backchannel-logout', backchannelLogout(verifier))

  // The site backend asks the passport to have this device refresh its token now (what a
  // monitoring job would do shortly before expiry): standard client credentials and the token.
  app.post('/api/refresh-request', requirePassport(verifier), async (c) => {
    c.header('Cache-Control', 'no-store')
    const token = (c.req.header('Authorization') ?? '').replace(/^(Bearer|DPoP) /, '')
    const res = await fetch(new URL('/token/refresh-request', options.passportInternalUrl), {
      method: 'POST',
      headers: {
        Authorization: `Basic ${Buffer.from(`${options.id}:${options.clientSecret}`).toString('base64')}`,
        'Content-Type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token }),
    })
    return c.json(await res.json(), res.status === 202 ? 202 : 502)
  })

  app.get('/api/me', requirePassport(verifier), (c) => {
    c.header('Cache-Control', 'no-store')
    const user = c.get('passportUser')
    return c.json({ user: user.username, name: user.name, sub: user.sub })
  })
  return app
}
