import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import type { Server as HttpServer } from 'node:http'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { serve } from '@hono/node-server'
import { resolveConfig } from '../../passport-server/src/config.ts'
import { parseMasterKey } from '../../passport-server/src/crypto/master-key.ts'
import { silentLogger } from '../../passport-server/src/deps.ts'
import { createDeps } from '../../passport-server/src/server.ts'
import type { RegisteredSite } from '../../passport-server/src/services/registry.ts'
import { createDemoSiteApp } from '../server/demo-site.ts'
import { createDocsSiteApp } from '../server/docs-site.ts'
import { seedDemo } from '../server/seed.ts'

/**
 * Several real passport processes (`node passport-server/src/main.ts`, as `npm run serve`) on
 * one store, behind a real HAProxy running the repository's sample config (deploy/haproxy.cfg,
 * with only its addresses, socket and check timing changed), and the demo sites pointing at it:
 * the browser sees one `passport.localhost`, served by whichever instance HAProxy picks.
 *
 * Everything listens on loopback, on ports 19000-19099 (`CLUSTER_PORT_BASE` moves them), and
 * `close()` stops every process this started, bounded in time. The store is a SQLite file
 * shared by the instances (they hear each other's events from its log) unless the environment
 * names the scale-out pieces (see `clusterBackends`).
 */

const root = path.resolve(import.meta.dirname, '../..')
const HAPROXY = '/usr/sbin/haproxy'
const BACKEND = 'passport_instances'
/** Node 24 (the pinned devDependency), whatever `node` the runner came from. */
const NODE = fs.existsSync(path.join(root, 'node_modules/.bin/node'))
  ? path.join(root, 'node_modules/.bin/node')
  : process.execPath

export const clusterPortBase = Number(process.env.CLUSTER_PORT_BASE) || 19000

export interface ClusterPorts {
  haproxy: number
  news: number
  shop: number
  docs: number
  /** First instance port; instance i listens on `instances + i`. */
  instances: number
}

export const clusterPorts = (base = clusterPortBase): ClusterPorts => ({
  haproxy: base,
  news: base + 1,
  shop: base + 2,
  docs: base + 3,
  instances: base + 10,
})

/**
 * The deploy/haproxy.cfg sample made runnable here: one plain-HTTP loopback bind, the given
 * servers, a private stats socket, quicker checks, and a response header naming the instance
 * that answered (test-only, to see the spread). Throws if the sample no longer has a line this
 * relies on, so the tests never silently run another config than the one the README shows.
 */
export function haproxyConfigFrom(
  sample: string,
  input: { port: number; servers: { name: string; port: number }[]; socket: string; checkMs: number },
): string {
  let text = sample
  const swap = (pattern: RegExp, replacement: string, what: string) => {
    if (!pattern.test(text)) throw new Error(`deploy/haproxy.cfg: no ${what} to adapt`)
    text = text.replace(pattern, replacement)
  }
  // A leftover HAProxy on the same port must make this one fail, not share the port with it.
  swap(/^(\s*stats socket )\S+.*\n/m, `$&    noreuseport\n`, 'stats socket')
  swap(/^(\s*stats socket )\S+/m, `$1${input.socket}`, 'stats socket')
  // Log every connection, even one that sent nothing (a reset shows in the test's report).
  swap(/^\s*option dontlognull\n/m, '', 'dontlognull')
  // The machines running the tests allow 20,000 descriptors per process.
  swap(/^(?<lead>\s*maxconn )\d+$/m, '$<lead>2000', 'global maxconn')
  swap(/^(\s*)bind .*\n(?:\s*bind .*\n)*/m, `$1bind 127.0.0.1:${input.port}\n`, 'bind')
  swap(/^\s*http-request redirect scheme https.*\n/m, '', 'https redirect')
  swap(/inter \S+ fall \d+ rise \d+/, `inter ${input.checkMs}ms fall 2 rise 1`, 'check timing')
  const servers = input.servers.map((s) => `    server ${s.name} 127.0.0.1:${s.port}\n`).join('')
  swap(/^(?:\s*server \S+ \S+.*\n)+/m, servers, 'server lines')
  swap(/^(\s*balance roundrobin\n)/m, '$1    http-response set-header X-Passport-Instance %s\n', 'balance')
  return text
}

/** Talks to HAProxy's runtime API (the stats socket). */
export function haproxyCommand(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = net.connect(socket)
    let out = ''
    const timer = setTimeout(() => {
      conn.destroy()
      reject(new Error(`haproxy: '${command}' timed out`))
    }, 3_000)
    conn.on('data', (chunk) => {
      out += chunk
    })
    conn.on('end', () => {
      clearTimeout(timer)
      resolve(out)
    })
    conn.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    conn.write(`${command}\n`)
  })
}

export interface ServerStat {
  name: string
  /** UP, DOWN, MAINT, … */
  status: string
  /** Streams open on it now: an upgraded live socket is one until it closes. */
  current: number
  /** Streams ever sent to it. */
  total: number
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

async function until<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | null | undefined | false>,
): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe().catch(() => null)
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(50)
  }
}

/** A plain GET on loopback (no keep-alive): status and body, or a thrown error. */
export function getLocal(port: number, pathname: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, agent: false, timeout: 3_000 }, (res) => {
      let body = ''
      res.on('data', (chunk) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
  })
}

/** Where the instances keep their state: SQLite by default, or PostgreSQL + Redis (env). */
export interface ClusterBackends {
  kind: 'sqlite' | 'postgres'
  /** Environment for every instance (store and bus). */
  env: Record<string, string>
  /** The SQLite file (when no database URL) and the config settings, for the in-process seeding. */
  storeFile: string
  config: { databaseUrl?: string; redisUrl?: string; redisKeyPrefix?: string }
  release(): Promise<void>
}

/**
 * The real scale-out path by default (issue 15: tested against real PostgreSQL and Redis, which
 * run on these machines): a database of its own (`passport_cluster_<random>`) on the PostgreSQL
 * at `CLUSTER_PG_URL` (default the shared one, postgres://root@127.0.0.1:5432/test), dropped at
 * the end, and a Redis bus (`CLUSTER_REDIS_URL`, default redis://127.0.0.1:6379) under a prefix
 * of its own. `CLUSTER_STORE=sqlite` puts both instances on one SQLite file instead, and
 * `CLUSTER_BUS=none` leaves the bus in process (the event log, tailed, carries sign-outs).
 */
export async function clusterBackends(dataDir: string): Promise<ClusterBackends> {
  const storeFile = path.join(dataDir, 'passport.sqlite')
  const env = process.env
  const redisUrl =
    env.CLUSTER_REDIS_URL ?? (env.CLUSTER_BUS === 'none' ? undefined : 'redis://127.0.0.1:6379')
  const redisPrefix = `passport-cluster-${randomBytes(6).toString('hex')}:`
  const redisEnv: Record<string, string> = redisUrl
    ? { PASSPORT_REDIS_URL: redisUrl, PASSPORT_REDIS_PREFIX: redisPrefix }
    : {}
  const redisConfig = redisUrl ? { redisUrl, redisKeyPrefix: redisPrefix } : {}
  if (env.CLUSTER_STORE === 'sqlite') {
    return {
      kind: 'sqlite',
      env: { PASSPORT_DATA_DIR: dataDir, ...redisEnv },
      storeFile,
      config: redisConfig,
      release: async () => {},
    }
  }
  const admin = env.CLUSTER_PG_URL ?? 'postgres://root@127.0.0.1:5432/test'
  const name = `passport_cluster_${randomBytes(6).toString('hex')}`
  await psql(admin, `CREATE DATABASE ${name}`)
  const url = new URL(admin)
  url.pathname = `/${name}`
  return {
    kind: 'postgres',
    env: { PASSPORT_DATA_DIR: dataDir, PASSPORT_DATABASE_URL: url.toString(), ...redisEnv },
    storeFile,
    config: { databaseUrl: url.toString(), ...redisConfig },
    release: () => psql(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  }
}

function psql(url: string, sql: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', [url, '-v', 'ON_ERROR_STOP=1', '-qc', sql], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let err = ''
    child.stderr.on('data', (chunk) => {
      err += chunk
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      code === 0 ? resolve() : reject(new Error(`psql: ${err.trim()}`))
    })
  })
}

/** Children still running, killed if the test process goes away without closing them. */
const living = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of living) child.kill('SIGKILL')
})

function spawnLogged(command: string, args: string[], env: NodeJS.ProcessEnv, logFile: string): ChildProcess {
  const fd = fs.openSync(logFile, 'a')
  const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', fd, fd] })
  fs.closeSync(fd)
  living.add(child)
  child.once('exit', () => living.delete(child))
  return child
}

/** Resolves with the exit code (or signal) once the child is gone, or null after `ms`. */
function exited(child: ChildProcess, ms: number): Promise<number | string | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? child.signalCode)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve(code ?? signal)
    })
  })
}

/** One passport process, restartable on the same port. */
export interface Instance {
  readonly name: string
  readonly port: number
  readonly running: boolean
  /** Starts it and waits until its /readyz is 200. */
  start(): Promise<void>
  /** SIGTERM (the graceful stop); resolves with its exit code once gone (SIGKILL after 15 s). */
  stop(): Promise<number | string | null>
  /** SIGKILL, no warning: a crash. */
  kill(): Promise<void>
  /** Its log so far (JSON lines). */
  log(): string
}

export interface Cluster {
  urls: { passport: string; news: string; shop: string; docs: string }
  ports: ClusterPorts
  backends: ClusterBackends['kind']
  /** The bus crosses instances (Redis): approval prompts reach a device on another instance. */
  sharedBus: boolean
  instances: Instance[]
  sites: { news: RegisteredSite; shop: RegisteredSite; docs: RegisteredSite }
  haproxy: {
    command(command: string): Promise<string>
    stats(): Promise<ServerStat[]>
    stat(name: string): Promise<ServerStat>
    /** Sends every new request to `name` only (the others in maintenance; their open tunnels stay). */
    only(name: string): Promise<void>
    /** Every instance that runs takes requests again (waits until HAProxy has them UP). */
    all(): Promise<void>
    /** Waits until HAProxy's check sees `name` UP (or DOWN). */
    waitFor(name: string, status: 'UP' | 'DOWN', ms?: number): Promise<void>
  }
  /** Logs of every process, for a failed test's report. */
  logs(): string
  close(): Promise<void>
}

function listenSite(fetch: (req: Request) => Response | Promise<Response>, port: number) {
  return new Promise<HttpServer>((resolve, reject) => {
    const server = serve({ fetch, port, hostname: '127.0.0.1' }, () =>
      resolve(server as HttpServer),
    ) as HttpServer
    server.once('error', reject)
  })
}

export async function startCluster(options: { instances?: number; base?: number } = {}): Promise<Cluster> {
  const count = options.instances ?? 2
  const ports = clusterPorts(options.base)
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-cluster-'))
  const urls = {
    passport: `http://passport.localhost:${ports.haproxy}`,
    news: `http://news.localhost:${ports.news}`,
    shop: `http://shop.localhost:${ports.shop}`,
    docs: `http://docs.localhost:${ports.docs}`,
  }
  const internalUrl = `http://127.0.0.1:${ports.haproxy}`
  const masterKeyText = randomBytes(32).toString('base64')
  const cleanups: (() => Promise<unknown>)[] = [
    async () => fs.rmSync(dataDir, { recursive: true, force: true }),
  ]
  const closeAll = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {})
  }
  try {
    const backends = await clusterBackends(dataDir)
    cleanups.push(() => backends.release())

    // The demo's users and sites, written once, before any instance runs.
    const config = resolveConfig({ issuer: urls.passport, scryptCost: 1024, ...backends.config })
    const deps = await createDeps({
      config,
      storeFile: backends.storeFile,
      masterKey: parseMasterKey(masterKeyText),
      log: silentLogger,
    })
    const sites = await seedDemo(
      deps,
      { news: urls.news, shop: urls.shop, docs: urls.docs },
      {
        news: `http://127.0.0.1:${ports.news}/backchannel-logout`,
        shop: `http://127.0.0.1:${ports.shop}/backchannel-logout`,
        docs: `http://127.0.0.1:${ports.docs}/passport/backchannel-logout`,
      },
    )
    await deps.events.close()
    await deps.store.close()

    const instanceEnv: NodeJS.ProcessEnv = {
      ...process.env,
      ...backends.env,
      PASSPORT_HOST: '127.0.0.1',
      PASSPORT_ISSUER: urls.passport,
      PASSPORT_MASTER_KEY: masterKeyText,
      // HAProxy's X-Forwarded-For is believed from loopback only.
      PASSPORT_TRUSTED_PROXIES: '127.0.0.1',
      // A stopping instance says 503 on /readyz until HAProxy has seen it twice (inter 250 ms, fall 2).
      PASSPORT_DRAIN_DELAY_MS: '800',
    }
    delete instanceEnv.PASSPORT_MASTER_KEY_FILE
    const instances: Instance[] = Array.from({ length: count }, (_, i) => {
      const name = `passport${i + 1}`
      const port = ports.instances + i
      const logFile = path.join(dataDir, `${name}.log`)
      let child: ChildProcess | null = null
      return {
        name,
        port,
        get running() {
          return child !== null && child.exitCode === null && child.signalCode === null
        },
        async start() {
          if (this.running) return
          child = spawnLogged(
            NODE,
            ['passport-server/src/main.ts'],
            // Each its own management listener (metrics): on one host they would share 9464.
            { ...instanceEnv, PASSPORT_PORT: String(port), PASSPORT_MANAGEMENT_PORT: String(port + 20) },
            logFile,
          )
          const started = child
          await until(`${name} to be ready`, 20_000, async () => {
            if (started.exitCode !== null)
              throw new Error(`${name} exited: ${fs.readFileSync(logFile, 'utf8')}`)
            return (await getLocal(port, '/readyz')).status === 200
          }).catch((err) => {
            if (started.exitCode !== null)
              throw new Error(`${name} exited at start:\n${fs.readFileSync(logFile, 'utf8')}`)
            throw err
          })
        },
        async stop() {
          if (!child) return null
          const stopping = child
          stopping.kill('SIGTERM')
          const code = await exited(stopping, 15_000)
          if (code === null) {
            stopping.kill('SIGKILL')
            await exited(stopping, 5_000)
          }
          return code
        },
        async kill() {
          if (!child) return
          child.kill('SIGKILL')
          await exited(child, 5_000)
        },
        log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
      }
    })
    cleanups.push(async () => {
      await Promise.all(instances.map((i) => i.stop()))
    })
    await Promise.all(instances.map((i) => i.start()))

    // HAProxy with the sample config, in the foreground (-db), stopped with the rest.
    const socket = path.join(dataDir, 'haproxy.sock')
    const cfgFile = path.join(dataDir, 'haproxy.cfg')
    fs.writeFileSync(
      cfgFile,
      haproxyConfigFrom(fs.readFileSync(path.join(root, 'deploy/haproxy.cfg'), 'utf8'), {
        port: ports.haproxy,
        servers: instances.map((i) => ({ name: i.name, port: i.port })),
        socket,
        checkMs: 250,
      }),
    )
    const haproxyLog = path.join(dataDir, 'haproxy.log')
    const proxy = spawnLogged(HAPROXY, ['-db', '-f', cfgFile], process.env, haproxyLog)
    cleanups.push(async () => {
      proxy.kill('SIGTERM')
      if ((await exited(proxy, 5_000)) === null) proxy.kill('SIGKILL')
    })
    const command = (line: string) => haproxyCommand(socket, line)
    const stats = async (): Promise<ServerStat[]> => {
      const lines = (await command('show stat')).trim().split('\n')
      const header = (lines.shift() ?? '').replace(/^# /, '').split(',')
      const col = (row: string[], name: string) => row[header.indexOf(name)] ?? ''
      return lines
        .map((line) => line.split(','))
        .filter((row) => col(row, 'pxname') === BACKEND && col(row, 'svname') !== 'BACKEND')
        .map((row) => ({
          name: col(row, 'svname'),
          status: col(row, 'status'),
          current: Number(col(row, 'scur')),
          total: Number(col(row, 'stot')),
        }))
    }
    const stat = async (name: string) => {
      const found = (await stats()).find((s) => s.name === name)
      if (!found) throw new Error(`haproxy has no server ${name}`)
      return found
    }
    const waitFor = async (name: string, status: 'UP' | 'DOWN', ms = 10_000) => {
      await until(`${name} ${status} in haproxy`, ms, async () =>
        (await stat(name)).status.startsWith(status),
      )
    }
    await until('haproxy to start', 10_000, async () => {
      if (proxy.exitCode !== null) throw new Error(`haproxy exited: ${fs.readFileSync(haproxyLog, 'utf8')}`)
      return (await stats()).length === count
    })
    for (const i of instances) await waitFor(i.name, 'UP')

    const distDir = path.join(root, 'dist/sites')
    const site = (id: 'news' | 'shop', sdk: 'script' | 'module') =>
      createDemoSiteApp({
        id,
        origin: urls[id],
        passportOrigin: urls.passport,
        passportInternalUrl: internalUrl,
        clientSecret: sites[id].clientSecret,
        authkey: sites[id].authkey,
        sdk,
        distDir,
      })
    const siteServers = [
      await listenSite(site('news', 'script').fetch, ports.news),
      await listenSite(site('shop', 'module').fetch, ports.shop),
      await listenSite(
        createDocsSiteApp({
          origin: urls.docs,
          passportOrigin: urls.passport,
          passportInternalUrl: internalUrl,
          clientSecret: sites.docs.clientSecret,
          distDir,
        }).fetch,
        ports.docs,
      ),
    ]
    cleanups.push(async () => {
      for (const s of siteServers) {
        s.closeAllConnections()
        await new Promise<void>((resolve) => s.close(() => resolve()))
      }
    })

    return {
      urls,
      ports,
      backends: backends.kind,
      sharedBus: backends.env.PASSPORT_REDIS_URL !== undefined,
      instances,
      sites,
      haproxy: {
        command,
        stats,
        stat,
        waitFor,
        only: async (name) => {
          for (const i of instances) {
            await command(`set server ${BACKEND}/${i.name} state ${i.name === name ? 'ready' : 'maint'}`)
          }
          await waitFor(name, 'UP')
        },
        all: async () => {
          for (const i of instances) await command(`set server ${BACKEND}/${i.name} state ready`)
          for (const i of instances) if (i.running) await waitFor(i.name, 'UP')
        },
      },
      logs: () =>
        [
          ...instances.map((i) => `--- ${i.name}\n${i.log()}`),
          `--- haproxy\n${fs.existsSync(haproxyLog) ? fs.readFileSync(haproxyLog, 'utf8') : ''}`,
        ].join('\n'),
      close: closeAll,
    }
  } catch (err) {
    await closeAll()
    throw err
  }
}
