import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Hono } from 'hono'
import { hashedAssets } from './hashed-assets.ts'

/**
 * evil.localhost: registered nowhere. Its page embeds the passport frame of News with News's
 * (public) authkey and tries to talk to it; tests assert it learns nothing.
 */
export function createHostileSiteApp(options: {
  passportOrigin: string
  newsAuthkey: string
  distDir: string
}): Hono {
  const app = new Hono()
  const template = readFileSync(path.join(options.distDir, 'hostile', 'index.html'), 'utf8')
  const page = template.replace(
    '<!-- passport-sdk -->',
    `<meta name="passport-origin" content="${options.passportOrigin}"><meta name="passport-authkey" content="${options.newsAuthkey}">`,
  )
  app.get('/', (c) => c.html(page))
  app.use('/assets/*', hashedAssets(options.distDir))
  return app
}
