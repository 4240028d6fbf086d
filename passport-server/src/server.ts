import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import type { Hono } from 'hono'
import { createApp } from './app.ts'
import type { MasterKey } from './auth/master-key.ts'
import { type Clock, systemClock } from './clock.ts'
import type { ResolvedConfig } from './config.ts'
import type { AppDeps } from './deps.ts'
import type { Logger } from './errors.ts'
import { createInProcessBus } from './events/bus.ts'
import { startEventLogTail } from './events/log-tail.ts'
import { guardServer, repeatEvery } from './guard.ts'
import { attachLiveServer } from './live/live-server.ts'
import { createInProcessPresence } from './live/presence.ts'
import { startBackchannelLogout } from './services/backchannel-logout.ts'
import { startExpirySweeper } from './services/expiry-sweeper.ts'
import { createHttpLiveAuthenticator, createStoreLiveAuthenticator } from './services/live-auth.ts'
import { withSealedSecrets } from './store/sealed-secrets.ts'
import { openSqliteStore } from './store/sqlite.ts'
import { KEY_RELOAD_MS, loadOrCreateKeys, replaceKeys } from './tokens/keys.ts'

export interface PassportServer {
  /** Where it listens (internal address, e.g. http://127.0.0.1:8080). */
  internalUrl: string
  /** The Node HTTP server itself (its timeouts and limits, for tests). */
  http: HttpServer
  app: Hono
  deps: AppDeps
  /** Open live-channel WebSockets (for tests and monitoring). */
  liveConnectionCount(): number
  close(): Promise<void>
}

/**
 * Opens the store and keys and returns the dependencies `createApp` needs. The store's secrets
 * (signing keys, the authkey key) are sealed under `masterKey`, which is never stored in it.
 */
export async function createDeps(input: {
  config: ResolvedConfig
  storeFile: string
  masterKey: MasterKey
  log: Logger
  clock?: Clock
}): Promise<AppDeps> {
  const store = withSealedSecrets(openSqliteStore(input.storeFile), input.masterKey)
  const clock = input.clock ?? systemClock
  return {
    config: input.config,
    store,
    keys: await loadOrCreateKeys(store.secrets, clock.now()),
    clock,
    events: createInProcessBus(input.log),
    presence: createInProcessPresence(),
    log: input.log,
  }
}

/**
 * Listens with timeouts that cut slow clients (slowloris) well before Node's defaults. Sites
 * and browsers reach it through `*.localhost` names, which Node does not resolve, so it binds
 * an address.
 */
export async function listen(deps: AppDeps, port: number, hostname: string): Promise<PassportServer> {
  const app = createApp(deps)
  const server = serve({ fetch: app.fetch, port, hostname }) as HttpServer
  server.headersTimeout = 15_000
  server.requestTimeout = 30_000
  server.maxHeadersCount = 200
  await new Promise<void>((resolve, reject) => {
    server.once('listening', () => resolve())
    server.once('error', reject)
  })
  // Listening: from now on an error (an accept failure) is logged, never the end of the process.
  guardServer(deps.log, server, 'http')
  const address = server.address() as AddressInfo
  deps.log('sys_startup', { issuer: deps.config.issuer, port: address.port })
  // Picks up keys rotated by the CLI or another instance, and retires old ones, without a restart.
  const stopKeyReload = repeatEvery(deps.log, 'key_reload', KEY_RELOAD_MS, async () => {
    replaceKeys(deps.keys, await loadOrCreateKeys(deps.store.secrets, deps.clock.now()))
  })
  const live = attachLiveServer({
    server,
    deps,
    authenticator: createStoreLiveAuthenticator(deps),
    limits: { maxConnections: deps.config.liveMaxConnections },
  })
  const stopSweeper = startExpirySweeper(deps)
  const stopTail = await startEventLogTail(deps)
  const stopBackchannel = startBackchannelLogout(deps)
  return {
    internalUrl: `http://${hostname}:${address.port}`,
    http: server,
    app,
    deps,
    liveConnectionCount: () => live.connectionCount(),
    close: async () => {
      stopKeyReload()
      stopSweeper()
      stopTail()
      stopBackchannel()
      live.close()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await deps.store.close()
    },
  }
}

/**
 * Only the live channel, apart from the passport (`PASSPORT_ROLE=live`): a WebSocket server on
 * its own port, put behind the same public origin as the passport (the proxy routes `/live`
 * here), that authenticates each socket's answer by asking the passport
 * (`POST /internal/live/validate` with the shared secret) and hears session endings from the
 * store's event log, which it reads (tailed every 250 ms). Anything but an upgrade gets 404.
 */
export async function listenLiveOnly(
  deps: AppDeps,
  port: number,
  hostname: string,
  passport: { url: string; secret: string },
): Promise<{ internalUrl: string; close(): Promise<void> }> {
  const server = createServer((_req, res) => {
    res.writeHead(404, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' })
    res.end('{"error":"not_found"}')
  })
  server.headersTimeout = 15_000
  server.requestTimeout = 30_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, hostname, () => resolve())
  })
  const live = attachLiveServer({
    server,
    deps,
    authenticator: createHttpLiveAuthenticator({ passportUrl: passport.url, secret: passport.secret }),
    limits: { maxConnections: deps.config.liveMaxConnections },
  })
  const stopTail = await startEventLogTail(deps)
  const address = server.address() as AddressInfo
  deps.log('sys_startup', { role: 'live', port: address.port })
  return {
    internalUrl: `http://${hostname}:${address.port}`,
    close: async () => {
      stopTail()
      live.close()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await deps.store.close()
    },
  }
}
