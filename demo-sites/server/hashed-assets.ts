import { serveStatic } from '@hono/node-server/serve-static'
import type { MiddlewareHandler } from 'hono'

/** A year: vite names every built file by a hash of its content, so a name never changes meaning. */
export const HASHED_ASSET_CACHE = 'public, max-age=31536000, immutable'

/**
 * A demo site's built files (`/assets/*`), kept by the browser for a year without asking again.
 * With no cache header a browser guessed a short freshness from `Last-Modified` and a returning
 * tab revalidated the page's scripts before running them: 15–40 ms before a returning Shop page
 * had its passport frame (issue 17's benchmark, bench/README.md "fedcm"), the delay a real site
 * with the usual long-lived hashed files does not have.
 */
export function hashedAssets(distDir: string): MiddlewareHandler {
  const serve = serveStatic({ root: distDir })
  // Set on the file's own answer: serveStatic builds it before any hook could add a header.
  return async (c, next) => {
    const res = await serve(c, next)
    if (res?.ok) res.headers.set('Cache-Control', HASHED_ASSET_CACHE)
    return res
  }
}
