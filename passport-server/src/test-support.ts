import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { createApp } from './app.ts'
import { type FixedClock, fixedClock } from './clock.ts'
import { resolveConfig } from './config.ts'
import { type MasterKey, parseMasterKey } from './crypto/master-key.ts'
import { hashPassword } from './crypto/password.ts'
import type { AppDeps } from './deps.ts'
import type { Logger } from './errors.ts'
import { createInProcessBus } from './events/bus.ts'
import { createInProcessPresence } from './live/presence.ts'
import { listen, type PassportServer } from './server.ts'
import { parseFamilyCredential } from './services/minting.ts'
import { registerSite, type SiteInput } from './services/registry.ts'
import { withSealedSecrets } from './store/sealed-secrets.ts'
import { openSqliteStore } from './store/sqlite.ts'
import type { Store, UserRecord } from './store/types.ts'
import { loadOrCreateKeys } from './tokens/keys.ts'

/** Test-only wiring: an in-memory store, a clock the test moves, a log the test reads. */

/** The stored family a refresh credential of a family rotated in place names (null: none, or not that shape). */
export async function storedFamily(store: Pick<Store, 'refresh'>, credential: string) {
  const named = parseFamilyCredential(credential)
  return named ? store.refresh.getFamily(named.familyId) : null
}

export const TEST_ISSUER = 'http://passport.localhost:8080'
export const NEWS_ORIGIN = 'http://news.localhost:8081'
export const SHOP_ORIGIN = 'http://shop.localhost:8082'
export const EVIL_ORIGIN = 'http://evil.localhost:8083'
/** 2026-01-01T00:00:00Z: far from any real "now", so a test that reads the system clock shows up. */
export const T0 = Date.UTC(2026, 0, 1)

/** A fresh master key: every test store is sealed like a real one. */
export function testMasterKey(): MasterKey {
  return parseMasterKey(randomBytes(32).toString('base64'))
}

export interface LogLine {
  event: string
  fields: Record<string, unknown>
}

export interface TestDeps extends AppDeps {
  clock: FixedClock
  logs: LogLine[]
}

/**
 * `store`: an unsealed store the test opened (e.g. PostgreSQL, see store/test-engines.ts) instead
 * of an in-memory SQLite one; the test closes it. `masterKey`: the same for several instances
 * sharing one store (each must open the others' sealed secrets).
 */
export async function createTestDeps(
  overrides: { file?: string; store?: Store; masterKey?: MasterKey } = {},
): Promise<TestDeps> {
  const store = withSealedSecrets(
    overrides.store ?? openSqliteStore(overrides.file ?? ':memory:'),
    overrides.masterKey ?? testMasterKey(),
  )
  const logs: LogLine[] = []
  const log: Logger = (event, fields = {}) => logs.push({ event, fields })
  return {
    config: resolveConfig({ issuer: TEST_ISSUER, scryptCost: 1024, scramIterations: 4096 }),
    store,
    keys: await loadOrCreateKeys(store.secrets),
    clock: fixedClock(T0),
    events: createInProcessBus(log),
    presence: createInProcessPresence(),
    log,
    logs,
  }
}

export async function addUser(deps: AppDeps, username: string, password = `${username}-password-1`) {
  const user: UserRecord = {
    id: `u_${username}`,
    username,
    name: username.charAt(0).toUpperCase() + username.slice(1),
    passwordHash: await hashPassword(password, deps.config.scryptCost),
    createdAt: deps.clock.now(),
  }
  await deps.store.users.create(user)
  return { ...user, password }
}

export function addSite(deps: AppDeps, input: Partial<SiteInput> & { id: string }) {
  const origin = input.id === 'shop' ? SHOP_ORIGIN : NEWS_ORIGIN
  return registerSite(deps, { origins: [origin], ...input })
}

/** Every login mode: the test world's sites allow device sign-in and CIBA. */
export const ALL_LOGIN_MODES = ['password', 'device', 'ciba']

/** A full test world: deps, the app, alice and bob, and the News and Shop sites. */
export async function createTestWorld() {
  const deps = await createTestDeps()
  const app = createApp(deps)
  const alice = await addUser(deps, 'alice')
  const bob = await addUser(deps, 'bob')
  const news = await addSite(deps, { id: 'news', origins: [NEWS_ORIGIN], loginModes: ALL_LOGIN_MODES })
  const shop = await addSite(deps, { id: 'shop', origins: [SHOP_ORIGIN], loginModes: ALL_LOGIN_MODES })
  return { deps, app, alice, bob, news, shop }
}

/** Every log line as one string, to assert that no secret was ever written. */
export function allLogText(logs: LogLine[]): string {
  return logs.map((l) => JSON.stringify(l)).join('\n')
}

/** A port nobody listens on right now (for tests that need a real socket). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/**
 * A real passport listening on loopback (HTTP, WebSocket, background jobs), with an in-memory
 * store and a clock the test moves. Its issuer is its own address, so standard clients work.
 */
export async function startTestServer(options: { liveValidationSecret?: string } = {}) {
  const port = await freePort()
  const issuer = `http://127.0.0.1:${port}`
  const store = withSealedSecrets(openSqliteStore(':memory:'), testMasterKey())
  const logs: LogLine[] = []
  const log: Logger = (event, fields = {}) => logs.push({ event, fields })
  const deps: TestDeps = {
    config: resolveConfig({ issuer, scryptCost: 1024, scramIterations: 4096, ...options }),
    store,
    keys: await loadOrCreateKeys(store.secrets),
    clock: fixedClock(Date.now()),
    events: createInProcessBus(log),
    presence: createInProcessPresence(),
    log,
    logs,
  }
  const server: PassportServer = await listen(deps, port, '127.0.0.1')
  return { server, deps, issuer, port, logs }
}
