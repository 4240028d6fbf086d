import path from 'node:path'
import { runCli } from './cli.ts'
import { resolveConfig } from './config.ts'
import { masterKeyFrom, NO_MASTER_KEY_MESSAGE } from './crypto/master-key.ts'
import { consoleLogger, silentLogger } from './deps.ts'
import { installLastResortHandlers } from './guard.ts'
import { managementFromEnv } from './observability/management-env.ts'
import { createDeps, listen, listenLiveOnly } from './server.ts'
import { DEFAULT_SHUTDOWN_GRACE_MS } from './shutdown.ts'

/**
 * The only place that reads the environment.
 *
 *   PASSPORT_PORT      port to listen on (default 8080)
 *   PASSPORT_HOST      address to bind (default 127.0.0.1)
 *   PASSPORT_ISSUER    public origin (default http://passport.localhost:$PASSPORT_PORT)
 *   PASSPORT_DATA_DIR  where the SQLite store lives (default ./data)
 *   PASSPORT_DATABASE_URL  postgres://user:password@host:5432/db: the store is that PostgreSQL
 *                     database instead (several instances share it; see docs/scale-out.md)
 *   PASSPORT_DATABASE_POOL_SIZE  connections per instance to that database (default 10)
 *   PASSPORT_LIVE_MAX_CONNECTIONS  live-channel WebSockets per process (default 15000)
 *   PASSPORT_LIVE_VALIDATION_SECRET  enables POST /internal/live/validate for a live server apart
 *   PASSPORT_ROLE=live  run only the live channel, apart; with PASSPORT_LIVE_VALIDATE_URL (the
 *                       passport's internal URL) and the same PASSPORT_LIVE_VALIDATION_SECRET
 *   PASSPORT_PASSWORD_FORM=off  no plain password form: sign-in over the SCRAM socket only
 *   PASSPORT_SCRAM_ITERATIONS  PBKDF2 iterations of new SCRAM credentials (default 600000)
 *   PASSPORT_AUDIT_RETENTION_DAYS  days the audit log keeps a row (default 90)
 *   PASSPORT_TRUSTED_PROXIES  comma list of reverse-proxy addresses/CIDRs (X-Forwarded-For)
 *   PASSPORT_DRAIN_DELAY_MS  on SIGTERM, how long /readyz says 503 before the listener closes
 *                     (so the load balancer's health check sees it first; default 0)
 *   PASSPORT_REDIS_URL  Redis shared by several instances (events, limits, presence); unset: one
 *   PASSPORT_REDIS_PREFIX  prefix of its keys and channels (default passport:)
 *   PASSPORT_MASTER_KEY / PASSPORT_MASTER_KEY_FILE  the key the stored secrets are sealed under
 *                     (required: without one it refuses to start, saying how to make one)
 *   PASSPORT_MANAGEMENT_HOST / PASSPORT_MANAGEMENT_PORT  the management listener (/metrics,
 *                     presence for the CLI): default 127.0.0.1:9464; port `off` turns it off
 *   PASSPORT_METRICS_TOKEN  bearer secret the management listener requires (default: none)
 *
 * `node main.ts` serves; `node main.ts site …|user …` runs a CLI command (see cli.ts).
 */
const env = process.env
const port = Number(env.PASSPORT_PORT ?? 8080)
const host = env.PASSPORT_HOST ?? '127.0.0.1'
const config = resolveConfig({
  issuer: env.PASSPORT_ISSUER ?? `http://passport.localhost:${port}`,
  ...(env.PASSPORT_LIVE_MAX_CONNECTIONS
    ? { liveMaxConnections: Number(env.PASSPORT_LIVE_MAX_CONNECTIONS) }
    : {}),
  ...(env.PASSPORT_LIVE_VALIDATION_SECRET
    ? { liveValidationSecret: env.PASSPORT_LIVE_VALIDATION_SECRET }
    : {}),
  ...(env.PASSPORT_DATABASE_URL ? { databaseUrl: env.PASSPORT_DATABASE_URL } : {}),
  ...(env.PASSPORT_DATABASE_POOL_SIZE ? { databasePoolSize: Number(env.PASSPORT_DATABASE_POOL_SIZE) } : {}),
  ...(env.PASSPORT_PASSWORD_FORM === 'off' ? { passwordForm: false } : {}),
  ...(env.PASSPORT_SCRAM_ITERATIONS ? { scramIterations: Number(env.PASSPORT_SCRAM_ITERATIONS) } : {}),
  ...(env.PASSPORT_AUDIT_RETENTION_DAYS
    ? { auditRetentionDays: Number(env.PASSPORT_AUDIT_RETENTION_DAYS) }
    : {}),
  ...(env.PASSPORT_TRUSTED_PROXIES
    ? { trustedProxies: env.PASSPORT_TRUSTED_PROXIES.split(',').map((entry) => entry.trim()) }
    : {}),
  ...(env.PASSPORT_REDIS_URL ? { redisUrl: env.PASSPORT_REDIS_URL } : {}),
  ...(env.PASSPORT_REDIS_PREFIX ? { redisKeyPrefix: env.PASSPORT_REDIS_PREFIX } : {}),
})
const storeFile = path.resolve(env.PASSPORT_DATA_DIR ?? 'data', 'passport.sqlite')
const args = process.argv.slice(2)
// No key generated here: one written beside the database would travel with its every copy.
const masterKey = masterKeyFrom({ key: env.PASSPORT_MASTER_KEY, file: env.PASSPORT_MASTER_KEY_FILE })
if (!masterKey) {
  console.error(NO_MASTER_KEY_MESSAGE)
  process.exit(1)
}

if (args.length > 0) {
  const deps = await createDeps({ config, storeFile, masterKey, log: silentLogger })
  const code = await runCli(deps, args, {
    management: managementFromEnv(env),
    masterKey,
    out: (line) => console.log(line),
    readSecret: async () => {
      let text = ''
      for await (const chunk of process.stdin) text += chunk
      return text
    },
  })
  await deps.events.close() // its Redis connections, if any
  await deps.store.close()
  process.exit(code)
} else if (env.PASSPORT_ROLE === 'live') {
  const passportUrl = env.PASSPORT_LIVE_VALIDATE_URL
  if (!passportUrl || !config.liveValidationSecret) {
    console.error('PASSPORT_ROLE=live needs PASSPORT_LIVE_VALIDATE_URL and PASSPORT_LIVE_VALIDATION_SECRET')
    process.exit(2)
  }
  installLastResortHandlers(consoleLogger)
  const deps = await createDeps({ config, storeFile, masterKey, log: consoleLogger })
  const live = await listenLiveOnly(deps, port, host, {
    url: passportUrl,
    secret: config.liveValidationSecret,
  })
  console.log(`passport live channel listening on ${live.internalUrl}, authenticating at ${passportUrl}`)
  const stop = () => void live.shutdown().then(() => process.exit(0))
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
} else {
  installLastResortHandlers(consoleLogger)
  const deps = await createDeps({ config, storeFile, masterKey, log: consoleLogger })
  const management = managementFromEnv(env)
  const server = await listen(deps, port, host, management ? { management } : {})
  console.log(`passport listening on ${server.internalUrl}, public at ${config.issuer}`)
  if (server.managementUrl) console.log(`management (metrics) on ${server.managementUrl}`)
  // Graceful (shutdown.ts): drain, frames told to reconnect elsewhere, requests finished; a
  // second signal, or a shutdown that overruns its bound, ends the process at once.
  let stopping = false
  const stop = () => {
    if (stopping) process.exit(1)
    stopping = true
    const delayMs = Number(env.PASSPORT_DRAIN_DELAY_MS ?? 0) || 0
    setTimeout(() => process.exit(1), delayMs + DEFAULT_SHUTDOWN_GRACE_MS + 5_000).unref()
    server.shutdown({ delayMs }).then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}
