import type { Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { sameSecret } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { errorBody } from '../errors.ts'
import { guardServer } from '../guard.ts'

export interface ManagementOptions {
  /** Address to bind; loopback by default (`PASSPORT_MANAGEMENT_HOST`). */
  host: string
  /** Port (`PASSPORT_MANAGEMENT_PORT`); 0 picks a free one (tests). */
  port: number
  /**
   * Bearer secret every request must carry (`PASSPORT_METRICS_TOKEN`); empty: none, for a
   * listener only the operator's own machine or network reaches.
   */
  token: string
}

/** Most sessions one presence question may name. */
export const MAX_PRESENCE_SESSIONS = 1000

/**
 * The management listener's routes, apart from the public app: they must never be reachable
 * through the public origin, whatever a proxy forwards.
 *
 * - `GET /metrics`: Prometheus text format (the app's own registry).
 * - `POST /manage/presence` `{"session_ids": [...]}`: open live sockets per site of each session
 *   (`{"sessions": {"<id>": {"news": 1}}}`, absent = none), for the CLI's `session list`, which
 *   holds no sockets itself. Answered from `deps.presence`: this instance's sockets, or every
 *   instance's where presence is shared.
 */
export function managementApp(
  deps: Pick<AppDeps, 'metrics' | 'presence'>,
  options: Pick<ManagementOptions, 'token'>,
): Hono {
  const app = new Hono()
  app.use(async (c, next) => {
    c.header('Cache-Control', 'no-store')
    c.header('X-Content-Type-Options', 'nosniff')
    if (options.token !== '') {
      const presented = /^Bearer (\S{1,512})$/.exec(c.req.header('Authorization') ?? '')?.[1] ?? ''
      // Constant time for equal lengths; a wrong length is refused as fast as any other miss.
      if (!sameSecret(presented, options.token)) {
        c.header('WWW-Authenticate', 'Bearer realm="passport-management"')
        return c.json(errorBody('invalid_token'), 401)
      }
    }
    return next()
  })
  app.get('/metrics', async (c) => {
    const registry = deps.metrics?.registry
    if (!registry) return c.json(errorBody('not_found', 'metrics are off'), 404)
    return c.body(await registry.metrics(), 200, { 'Content-Type': registry.contentType })
  })
  app.post('/manage/presence', async (c) => {
    let body: unknown
    try {
      body = await c.req.json()
    } catch {
      return c.json(errorBody('invalid_request', 'expected {"session_ids": [...]}'), 400)
    }
    const ids = (body as { session_ids?: unknown } | null)?.session_ids
    if (
      !Array.isArray(ids) ||
      ids.length > MAX_PRESENCE_SESSIONS ||
      !ids.every((id) => typeof id === 'string' && id.length > 0 && id.length <= 128)
    ) {
      return c.json(errorBody('invalid_request', `session_ids: 0-${MAX_PRESENCE_SESSIONS} session ids`), 400)
    }
    const sessions: Record<string, Record<string, number>> = {}
    for (const id of new Set(ids as string[])) {
      const sites = await deps.presence.countsBySessionSite(id)
      if (sites.size > 0) sessions[id] = Object.fromEntries(sites)
    }
    return c.json({ sessions })
  })
  app.notFound((c) => c.json(errorBody('not_found'), 404))
  app.onError((_err, c) => c.json(errorBody('server_error'), 500))
  return app
}

/** Starts the management listener. Resolves once it listens. */
export async function listenManagement(
  deps: Pick<AppDeps, 'metrics' | 'presence' | 'log'>,
  options: ManagementOptions,
): Promise<{ url: string; close(): Promise<void> }> {
  const app = managementApp(deps, options)
  const server = serve({ fetch: app.fetch, port: options.port, hostname: options.host }) as HttpServer
  server.headersTimeout = 15_000
  server.requestTimeout = 30_000
  await new Promise<void>((resolve, reject) => {
    server.once('listening', () => resolve())
    server.once('error', reject)
  })
  guardServer(deps.log, server, 'management')
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  deps.log('sys_startup', { role: 'management', port: address.port, bearer: options.token !== '' })
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
