import path from 'node:path'
import { masterKeyFrom, NO_MASTER_KEY_MESSAGE } from './auth/master-key.ts'
import { runCli } from './cli.ts'
import { resolveConfig } from './config.ts'
import { consoleLogger, silentLogger } from './deps.ts'
import { installLastResortHandlers } from './guard.ts'
import { managementFromEnv } from './observability/management-env.ts'
import { createDeps, listen, listenLiveOnly } from './server.ts'

/**
 * The only place that reads the environment.
 *
 *   PASSPORT_PORT      port to listen on (default 8080)
 *   PASSPORT_HOST      address to bind (default 127.0.0.1)
 *   PASSPORT_ISSUER    public origin (default http://passport.localhost:$PASSPORT_PORT)
 *   PASSPORT_DATA_DIR  where the SQLite store lives (default ./data)
 *   PASSPORT_LIVE_MAX_CONNECTIONS  live-channel WebSockets per process (default 15000)
 *   PASSPORT_LIVE_VALIDATION_SECRET  enables POST /internal/live/validate for a live server apart
 *   PASSPORT_ROLE=live  run only the live channel, apart; with PASSPORT_LIVE_VALIDATE_URL (the
 *                       passport's internal URL) and the same PASSPORT_LIVE_VALIDATION_SECRET
 *   PASSPORT_AUDIT_RETENTION_DAYS  days the audit log keeps a row (default 90)
 *   PASSPORT_TRUSTED_PROXIES  comma list of reverse-proxy addresses/CIDRs (X-Forwarded-For)
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
  ...(env.PASSPORT_AUDIT_RETENTION_DAYS
    ? { auditRetentionDays: Number(env.PASSPORT_AUDIT_RETENTION_DAYS) }
    : {}),
  ...(env.PASSPORT_TRUSTED_PROXIES
    ? { trustedProxies: env.PASSPORT_TRUSTED_PROXIES.split(',').map((entry) => entry.trim()) }
    : {}),
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
    out: (line) => console.log(line),
    readSecret: async () => {
      let text = ''
      for await (const chunk of process.stdin) text += chunk
      return text
    },
  })
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
  const stop = () => void live.close().then(() => process.exit(0))
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
} else {
  installLastResortHandlers(consoleLogger)
  const deps = await createDeps({ config, storeFile, masterKey, log: consoleLogger })
  const management = managementFromEnv(env)
  const server = await listen(deps, port, host, management ? { management } : {})
  console.log(`passport listening on ${server.internalUrl}, public at ${config.issuer}`)
  if (server.managementUrl) console.log(`management (metrics) on ${server.managementUrl}`)
  const stop = () => void server.close().then(() => process.exit(0))
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}
