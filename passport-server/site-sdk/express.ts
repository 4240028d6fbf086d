import type { Request, RequestHandler, Response } from 'express'
import {
  createPassportSession,
  type PassportRequestState,
  type PassportSessionOptions,
} from './passport-session.ts'

/** What `passportSession()` puts on the request as `req.passport`: the state, and `logout()`. */
export interface PassportContext extends PassportRequestState {
  /** Signs this browser out here and at the passport (every site); its open tabs are told. */
  logout(): Promise<void>
}

declare global {
  namespace Express {
    interface Request {
      passport: PassportContext
    }
  }
}

/**
 * Express middleware for a server-rendered site: a first-party session signed in at the
 * passport before the page is rendered (see `passport-session.ts` for the flow; the same
 * routes under `basePath` as the Hono middleware). Put it before any body parser, or the
 * back-channel logout body is read from `req.body`.
 *
 * @example
 * app.use(passportSession({ issuer, siteId: 'docs', clientSecret, cookieSecret }))
 * app.get('/', (req, res) => res.send(req.passport.user ? `Signed in as ${req.passport.user.username}` : 'Signed out'))
 */
export function passportSession(options: PassportSessionOptions): RequestHandler {
  const engine = createPassportSession(options)
  return (req, res, next) => {
    const url = `${req.protocol}://${req.get('host')}${req.originalUrl}`
    void (async () => {
      const answer = await engine.handle({ method: req.method, url, header: (name) => req.get(name) }, () =>
        readBody(req),
      )
      if (answer.kind === 'respond') {
        for (const [name, value] of answer.headers) res.append(name, value)
        res.status(answer.status).end(answer.body ?? undefined)
        return
      }
      if (answer.kind === 'events')
        return holdEventStream(res, (write, close) => engine.openEvents(answer, write, close))
      for (const [name, value] of answer.headers) res.append(name, value)
      let sessionId = answer.sessionId
      req.passport = {
        ...answer.state,
        logout: async () => {
          for (const [name, value] of await engine.logout(url, sessionId)) res.append(name, value)
          sessionId = null
        },
      }
      next()
    })().catch(next)
  }
}

function holdEventStream(
  res: Response,
  open: (write: (chunk: string) => void, close: () => void) => () => void,
): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-store',
    'X-Accel-Buffering': 'no',
  })
  const stop = open(
    (chunk) => void res.write(chunk),
    () => res.end(),
  )
  res.on('close', stop)
}

/** The raw form body (or the one a body parser already read). */
async function readBody(req: Request): Promise<string> {
  if (req.body && typeof req.body === 'object') {
    return new URLSearchParams(req.body as Record<string, string>).toString()
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > 16_384) throw new Error('back-channel logout body too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
