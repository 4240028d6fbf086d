import { Hono } from 'hono'
import type { AppDeps } from '../deps.ts'

export function wellKnownRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  app.get('/.well-known/jwks.json', (c) => {
    c.header('Cache-Control', 'no-store')
    return c.json(deps.keys.jwks)
  })
  return app
}
