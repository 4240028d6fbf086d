import type { Server as HttpServer } from 'node:http'
import path from 'node:path'
import { serve } from '@hono/node-server'
import type { Clock } from '../passport-server/src/clock.ts'
import { resolveConfig } from '../passport-server/src/config.ts'
import {
  type MasterKey,
  masterKeyFrom,
  readOrCreateMasterKeyFile,
} from '../passport-server/src/crypto/master-key.ts'
import { consoleLogger, silentLogger } from '../passport-server/src/deps.ts'
import type { Logger } from '../passport-server/src/errors.ts'
import { guardServer, installLastResortHandlers } from '../passport-server/src/guard.ts'
import { fileLogger, teeLogger } from '../passport-server/src/observability/file-log.ts'
import type { ManagementOptions } from '../passport-server/src/observability/management.ts'
import { managementFromEnv } from '../passport-server/src/observability/management-env.ts'
import { createDeps, listen, type PassportServer } from '../passport-server/src/server.ts'
import { createDemoSiteApp } from './server/demo-site.ts'
import { createDocsSiteApp } from './server/docs-site.ts'
import { createHostileSiteApp } from './server/hostile-site.ts'
import { DEMO_USERS, seedDemo } from './server/seed.ts'

const root = path.resolve(import.meta.dirname, '..')

export interface DemoPorts {
  passport: number
  news: number
  shop: number
  docs: number
  /** evil.localhost, for tests; not started when undefined. */
  evil?: number
}

export interface RunningDemo {
  urls: { passport: string; news: string; shop: string; docs: string; evil?: string }
  /** The passport now running (a new one after `startPassport`). */
  readonly passport: PassportServer
  /** Stops the passport alone, the sites keep serving: an outage, for tests. */
  stopPassport(): Promise<void>
  /** Starts it again on the same port and store. */
  startPassport(): Promise<void>
  close(): Promise<void>
}

function listenApp(fetch: (req: Request) => Response | Promise<Response>, port: number, log: Logger) {
  return new Promise<ReturnType<typeof serve>>((resolve) => {
    // Guarded once listening: a port already taken still fails the start loudly.
    const server = serve({ fetch, port, hostname: '127.0.0.1' }, () => {
      guardServer(log, server as HttpServer, 'demo_site')
      resolve(server)
    })
  })
}

/**
 * The demo's master key: made on first start as `master.key` (mode 0600) in the data folder, so
 * that `npm start` needs no set-up. Fine for a demo; a real passport keeps its key apart from
 * the data (README, "Running it for real").
 */
export function demoMasterKey(dataDir: string): MasterKey {
  return readOrCreateMasterKeyFile(path.join(dataDir, 'master.key'))
}

/** The passport and the demo sites in one process, each on its own port and hostname. */
export async function startDemo(input: {
  ports: DemoPorts
  dataDir: string
  quiet?: boolean
  /** The passport's clock (tests move it); the system clock by default. */
  clock?: Clock
  /** The key the store's secrets are sealed under; by default `master.key` in the data folder. */
  masterKey?: MasterKey
  /** PBKDF2 iterations of the demo users' SCRAM credentials (`PASSPORT_SCRAM_ITERATIONS`). */
  scramIterations?: number
  /** The passport's management listener (metrics): loopback, no secret, in the demo. */
  management?: ManagementOptions | null
  /** Also writes the passport's JSON log lines to this file (even when quiet): the e2e log check. */
  logFile?: string
  /** News and Shop registered with `--fedcm true` (`PASSPORT_DEMO_FEDCM=1`; docs/fedcm.md). */
  fedcm?: boolean
}): Promise<RunningDemo> {
  const { ports } = input
  const urls = {
    passport: `http://passport.localhost:${ports.passport}`,
    news: `http://news.localhost:${ports.news}`,
    shop: `http://shop.localhost:${ports.shop}`,
    docs: `http://docs.localhost:${ports.docs}`,
    ...(ports.evil ? { evil: `http://evil.localhost:${ports.evil}` } : {}),
  }
  const config = resolveConfig({
    issuer: urls.passport,
    assetsDir: path.join(root, 'dist/passport'),
    ...(input.scramIterations ? { scramIterations: input.scramIterations } : {}),
  })
  const consoleLog = input.quiet ? silentLogger : consoleLogger
  const log = input.logFile ? teeLogger(consoleLog, fileLogger(input.logFile)) : consoleLog
  const listenOptions = input.management ? { management: input.management } : {}
  const openDeps = () =>
    createDeps({
      config,
      storeFile: path.join(input.dataDir, 'passport.sqlite'),
      masterKey: input.masterKey ?? demoMasterKey(input.dataDir),
      log,
      ...(input.clock ? { clock: input.clock } : {}),
    })
  const deps = await openDeps()
  const seeded = await seedDemo(
    deps,
    { news: urls.news, shop: urls.shop, docs: urls.docs },
    {
      news: `http://127.0.0.1:${ports.news}/backchannel-logout`,
      shop: `http://127.0.0.1:${ports.shop}/backchannel-logout`,
      docs: `http://127.0.0.1:${ports.docs}/passport/backchannel-logout`,
    },
    { fedcm: input.fedcm === true },
  )
  const first = await listen(deps, ports.passport, '127.0.0.1', listenOptions)
  let passport: PassportServer | null = first
  const distDir = path.join(root, 'dist/sites')
  const site = (id: 'news' | 'shop', sdk: 'script' | 'module') =>
    createDemoSiteApp({
      id,
      origin: urls[id],
      passportOrigin: urls.passport,
      passportInternalUrl: first.internalUrl, // the same after a restart: same port
      clientSecret: seeded[id].clientSecret,
      authkey: seeded[id].authkey,
      sdk,
      distDir,
      fedcm: input.fedcm === true,
    })
  const servers = [
    await listenApp(site('news', 'script').fetch, ports.news, log),
    await listenApp(site('shop', 'module').fetch, ports.shop, log),
    await listenApp(
      createDocsSiteApp({
        origin: urls.docs,
        passportOrigin: urls.passport,
        passportInternalUrl: first.internalUrl,
        clientSecret: seeded.docs.clientSecret,
        distDir,
      }).fetch,
      ports.docs,
      log,
    ),
  ]
  if (ports.evil) {
    const hostile = createHostileSiteApp({
      passportOrigin: urls.passport,
      newsAuthkey: seeded.news.authkey,
      distDir,
    })
    servers.push(await listenApp(hostile.fetch, ports.evil, log))
  }
  return {
    urls,
    get passport() {
      if (!passport) throw new Error('the passport is stopped')
      return passport
    },
    stopPassport: async () => {
      await passport?.close()
      passport = null
    },
    startPassport: async () => {
      passport ??= await listen(await openDeps(), ports.passport, '127.0.0.1', listenOptions)
    },
    close: async () => {
      for (const s of servers) s.close()
      await passport?.close()
      passport = null
    },
  }
}

const masterKeyOption = (key: MasterKey | null) => (key ? { masterKey: key } : {})

if (import.meta.main) {
  const env = process.env
  installLastResortHandlers(consoleLogger)
  const demo = await startDemo({
    ports: {
      passport: Number(env.PASSPORT_PORT ?? 8080),
      news: Number(env.NEWS_PORT ?? 8081),
      shop: Number(env.SHOP_PORT ?? 8082),
      docs: Number(env.DOCS_PORT ?? 8083),
      ...(env.EVIL_PORT ? { evil: Number(env.EVIL_PORT) } : {}),
    },
    dataDir: path.resolve(env.PASSPORT_DATA_DIR ?? 'data'),
    quiet: env.PASSPORT_QUIET === '1',
    ...(env.PASSPORT_SCRAM_ITERATIONS ? { scramIterations: Number(env.PASSPORT_SCRAM_ITERATIONS) } : {}),
    management: managementFromEnv(env),
    ...(env.PASSPORT_LOG_FILE ? { logFile: path.resolve(env.PASSPORT_LOG_FILE) } : {}),
    fedcm: env.PASSPORT_DEMO_FEDCM === '1',
    ...masterKeyOption(masterKeyFrom({ key: env.PASSPORT_MASTER_KEY, file: env.PASSPORT_MASTER_KEY_FILE })),
  })
  console.log(`
Passport demo is up:
  passport  ${demo.urls.passport}
  News      ${demo.urls.news}
  Shop      ${demo.urls.shop}
  Docs      ${demo.urls.docs}  (server-rendered: its backend signs in)${demo.urls.evil ? `\n  evil      ${demo.urls.evil}` : ''}

${demo.passport.managementUrl ? `Metrics:  ${demo.passport.managementUrl}/metrics (loopback only)\n` : ''}Demo users: ${DEMO_USERS.map((u) => `${u.username} / ${u.password}`).join(', ')}
Open News, sign in, then open Shop or Docs. Ctrl-C stops.
`)
  const stop = () => void demo.close().then(() => process.exit(0))
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}
