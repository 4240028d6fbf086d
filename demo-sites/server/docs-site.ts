import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Hono } from 'hono'
import { type PassportSessionEnv, passportSession } from '../../passport-server/site-sdk/hono.ts'
import { renderSignedIn, renderSignedOut } from '../docs/sign-in-html.ts'
import { SIGNED_OUT_MESSAGES } from '../shared/messages.ts'
import { hashedAssets } from './hashed-assets.ts'

export interface DocsSiteOptions {
  /** Public origin of this site, e.g. http://docs.localhost:8083. */
  origin: string
  passportOrigin: string
  /** Where this backend reaches the passport (Node does not resolve *.localhost). */
  passportInternalUrl: string
  clientSecret: string
  /** Built pages (vite output: dist/sites). */
  distDir: string
}

/**
 * The Docs page as built (`dist/sites/docs/index.html`) with its stylesheets inline, so that the
 * first HTML renders at once with no request to wait for; `render` fills in the sign-in section.
 * The hop benchmark's peer serves the same page, so that the two hops differ only in how they
 * sign in. `styles`: the CSP hashes of the inline stylesheets.
 */
export function docsPage(distDir: string): {
  render(section: string, signedIn: boolean): string
  styles: string[]
} {
  const styles: string[] = []
  const template = readFileSync(path.join(distDir, 'docs', 'index.html'), 'utf8').replace(
    /<link rel="stylesheet"[^>]*href="(\/assets\/[^"]+\.css)"[^>]*>/g,
    (_tag, href: string) => {
      const css = readFileSync(path.join(distDir, href), 'utf8')
      styles.push(`'sha256-${createHash('sha256').update(css).digest('base64')}'`)
      return `<style>${css}</style>`
    },
  )
  return {
    styles,
    render: (section, signedIn) =>
      template.replace(
        '<section id="app" aria-live="polite"><!-- docs-sign-in --></section>',
        `<section id="app" aria-live="polite" data-signed-in="${signedIn ? 'true' : 'false'}">${section}</section>`,
      ),
  }
}

/**
 * The demo site "Docs": server-rendered, no passport script. The site SDK's session middleware
 * signs the browser in before the page is rendered, so the first HTML already says who it is.
 */
export function createDocsSiteApp(options: DocsSiteOptions): Hono<PassportSessionEnv> {
  const app = new Hono<PassportSessionEnv>()
  const { render, styles } = docsPage(options.distDir)
  const csp = [
    "default-src 'self'",
    `style-src 'self' ${styles.join(' ')}`,
    "script-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data:",
    // "Sign in" is a form to this site that redirects to the passport: form-action covers redirects.
    `form-action 'self' ${options.passportOrigin}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ')

  app.use('/assets/*', hashedAssets(options.distDir))
  app.use(
    passportSession({
      issuer: options.passportOrigin,
      internalUrl: options.passportInternalUrl,
      siteId: 'docs',
      clientSecret: options.clientSecret,
      // Sessions live in this process's memory: a fresh secret per start is enough.
      cookieSecret: randomBytes(32).toString('base64url'),
      baseUrl: options.origin,
    }),
  )
  app.get('/', (c) => {
    const { user, reason } = c.get('passport')
    const section = user ? renderSignedIn(user) : renderSignedOut(reason ? SIGNED_OUT_MESSAGES[reason] : '')
    c.header('Content-Security-Policy', csp)
    c.header('Cache-Control', 'no-store')
    return c.html(render(section, Boolean(user)))
  })
  return app
}
