import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { type PassportSessionEnv, passportSession } from './hono.ts'
import { sessionMiddlewareCases } from './session-middleware-cases.ts'

sessionMiddlewareCases('Hono', async (options, port) => {
  const app = new Hono<PassportSessionEnv>()
  app.use(passportSession(options))
  app.post('/bye', async (c) => {
    await c.get('passport').logout()
    return c.text('bye')
  })
  app.get('*', (c) => {
    const user = c.get('passportUser')
    return c.text(user ? `user:${user.username}` : `signed out:${c.get('passport').reason ?? ''}`)
  })
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () => resolve(s))
  })
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        ;(server as unknown as { closeAllConnections(): void }).closeAllConnections()
      }),
  }
})
