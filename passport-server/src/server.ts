import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import type { Hono } from 'hono'
import { createApp } from './app.ts'
import { type Clock, systemClock } from './clock.ts'
import type { ResolvedConfig } from './config.ts'
import type { MasterKey } from './crypto/master-key.ts'
import type { AppDeps } from './deps.ts'
import type { Logger } from './errors.ts'
import { guardServer, repeatEvery } from './guard.ts'
import { attachConsoleSocket } from './live/console-socket.ts'
import { attachLiveServer } from './live/live-server.ts'
import { attachSignInSocket, SIGN_IN_PATH } from './live/sign-in-socket.ts'
import { listenManagement, type ManagementOptions } from './observability/management.ts'
import { createMetrics } from './observability/metrics.ts'
import { withRequestId } from './observability/request-context.ts'
import { createSharedState } from './redis/shared-state.ts'
import { createDrainState } from './routes/health.ts'
import { startBackchannelLogout } from './services/backchannel-logout.ts'
import { startExpirySweeper } from './services/expiry-sweeper.ts'
import { createHttpLiveAuthenticator, createStoreLiveAuthenticator } from './services/live-auth.ts'
import { startEventLogTail } from './services/log-tail.ts'
import { type ShutdownOptions, shutdownGracefully, trackRequests } from './shutdown.ts'
import { openStore } from './store/open-store.ts'
import { withSealedSecrets } from './store/sealed-secrets.ts'
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
  /** Where the management listener (metrics, presence) listens, if it was asked for. */
  managementUrl: string | null
  /** Stops at once: every connection and socket cut (tests, the demo). */
  close(): Promise<void>
  /** Stops gracefully (SIGTERM): drains, tells the frames to reconnect elsewhere, finishes requests. */
  shutdown(options?: ShutdownOptions): Promise<void>
}

/**
 * Opens the store and keys and returns the dependencies `createApp` needs. The store is
 * PostgreSQL when `config.databaseUrl` is set, else SQLite in `storeFile`. Its secrets
 * (signing keys, the authkey key) are sealed under `masterKey`, which is never stored in it.
 */
export async function createDeps(input: {
  config: ResolvedConfig
  storeFile: string
  masterKey: MasterKey
  log: Logger
  clock?: Clock
}): Promise<AppDeps> {
  const opened = await openStore(input.config, input.storeFile, input.log)
  const store = withSealedSecrets(opened, input.masterKey)
  const clock = input.clock ?? systemClock
  const metrics = createMetrics()
  // Counted from the log events the code already writes (sign-ins, failures, pushes); each line
  // written during a request carries its id.
  const log = withRequestId(metrics.tapLog(input.log))
  return {
    config: input.config,
    store,
    keys: await loadOrCreateKeys(store.secrets, clock.now()),
    clock,
    // Event bus, live-socket presence and shared counters: Redis with `redisUrl`, else in process.
    ...createSharedState({ config: input.config, log, clock }),
    log,
    metrics,
  }
}

/**
 * Listens with timeouts that cut slow clients (slowloris) well before Node's defaults. Sites
 * and browsers reach it through `*.localhost` names, which Node does not resolve, so it binds
 * an address.
 */
export async function listen(
  deps: AppDeps,
  port: number,
  hostname: string,
  options: { management?: ManagementOptions } = {},
): Promise<PassportServer> {
  const drain = createDrainState()
  const app = createApp(deps, { drain })
  const server = serve({ fetch: app.fetch, port, hostname }) as HttpServer
  const requests = trackRequests(server)
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
  // Which engine, never the database URL (it may hold a password).
  const store = deps.config.databaseUrl === '' ? 'sqlite' : 'postgres'
  deps.log('sys_startup', { issuer: deps.config.issuer, port: address.port, store })
  // Picks up keys rotated by the CLI or another instance, and retires old ones, without a restart.
  const stopKeyReload = repeatEvery(deps.log, 'key_reload', KEY_RELOAD_MS, async () => {
    replaceKeys(deps.keys, await loadOrCreateKeys(deps.store.secrets, deps.clock.now()))
  })
  const live = attachLiveServer({
    server,
    deps,
    authenticator: createStoreLiveAuthenticator(deps),
    limits: { maxConnections: deps.config.liveMaxConnections },
    otherPaths: [SIGN_IN_PATH],
  })
  const signInSocket = attachSignInSocket({ server, deps })
  const consoleSocket = attachConsoleSocket({ server, deps })
  const stopSweeper = startExpirySweeper(deps)
  const stopTail = await startEventLogTail(deps)
  const stopBackchannel = startBackchannelLogout(deps)
  deps.metrics?.setLiveSockets(() => live.connectionCount())
  const stopMetrics = deps.metrics?.watch(deps)
  const management = options.management ? await listenManagement(deps, options.management) : null
  const stopJobs = () => {
    stopMetrics?.()
    stopKeyReload()
    stopSweeper()
    stopTail()
    stopBackchannel()
  }
  return {
    internalUrl: `http://${hostname}:${address.port}`,
    http: server,
    app,
    deps,
    liveConnectionCount: () => live.connectionCount(),
    managementUrl: management?.url ?? null,
    shutdown: (shutdownOptions) =>
      shutdownGracefully(
        {
          http: server,
          live,
          drain,
          requests,
          stopJobs,
          release: async () => {
            signInSocket.close()
            consoleSocket.close()
            await management?.close()
            await deps.events.close()
            await deps.store.close()
          },
          log: deps.log,
        },
        shutdownOptions,
      ),
    close: async () => {
      stopJobs()
      await management?.close()
      consoleSocket.close()
      live.close()
      signInSocket.close()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await deps.events.close()
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
): Promise<{
  internalUrl: string
  close(): Promise<void>
  shutdown(options?: ShutdownOptions): Promise<void>
}> {
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
    // As the passport's (no routes here, so no requests to wait for): the frames reconnect elsewhere.
    shutdown: (options) =>
      shutdownGracefully(
        {
          http: server,
          live,
          drain: createDrainState(),
          requests: { inFlight: () => 0 },
          stopJobs: stopTail,
          release: async () => {
            await deps.events.close()
            await deps.store.close()
          },
          log: deps.log,
        },
        options,
      ),
    close: async () => {
      stopTail()
      live.close()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await deps.events.close()
      await deps.store.close()
    },
  }
}
