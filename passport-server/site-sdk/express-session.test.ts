import type { Server } from 'node:http'
import express from 'express'
import { passportSession } from './express.ts'
import { sessionMiddlewareCases } from './session-middleware-cases.ts'

sessionMiddlewareCases('Express', async (options, port) => {
  const app = express()
  app.use(passportSession(options))
  app.post('/bye', async (req, res) => {
    await req.passport.logout()
    res.type('text/plain').send('bye')
  })
  app.get('/{*path}', (req, res) => {
    const { user, reason } = req.passport
    res.type('text/plain').send(user ? `user:${user.username}` : `signed out:${reason ?? ''}`)
  })
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(port, '127.0.0.1', () => resolve(s))
  })
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
})
