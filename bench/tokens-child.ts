import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  sign as nodeSign,
  verify as nodeVerify,
  randomUUID,
} from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { exportJWK, generateKeyPair, importJWK, type JWK, jwtVerify, SignJWT } from 'jose'
import { type FrameKey, type FrameKeyJwk, newFrameKey, nonceKeeper, wantsNonce } from './dpop-client.ts'
import { post, serveIpc } from './ipc.ts'

/**
 * The child processes of `bench/tokens.ts`, one role each (argv[2]), driven over IPC:
 *
 * - `passport`: the real passport server (`listen()` from server.ts) on a temp SQLite file;
 *   `bench/tokens.ts` also starts this role from the checkout of the code before DPoP (its own
 *   copy of this file, which speaks the bearer protocol), to compare the two in one run;
 * - `oidc`: node-oidc-provider 9 with a client_credentials client and introspection;
 * - `bare-http`, `bare-hono`: the ceilings, a bare `node:http` server and a bare Hono app on
 *   `@hono/node-server`, each reading the POST body and answering a fixed small JSON 200;
 * - `mint-floor`: the least a durable DPoP-bound mint does (`startMintFloor`), its floor;
 * - `load`: the HTTP load generator (keep-alive agent, N requests in flight, fixed duration); it
 *   also holds the frames' DPoP keys and signs their proofs (the client's CPU, not the server's);
 * - `crypto`: in-process sign/verify rates (raw jose, node:crypto, Passport's own paths, the
 *   DPoP proof checks).
 *
 * Every child answers `usage` with its CPU time, exits when the parent goes away (IPC
 * disconnect), and on a hard deadline in any case, so nothing outlives a run.
 */

export type Role = 'passport' | 'oidc' | 'bare-http' | 'bare-hono' | 'mint-floor' | 'load' | 'crypto'
export interface Usage {
  cpuUs: number
  wallMs: number
}

/** The passport's public origin (the tokens' `iss`): a name only, the server binds 127.0.0.1. */
export const BENCH_ISSUER = 'http://passport.localhost:18400'
const BENCH_SITE_ORIGIN = 'http://news.localhost:18401'
const OIDC_CLIENT = { id: 'bench', secret: 'bench-client-secret-0123456789abcdef' }
/** The resource indicator that makes node-oidc-provider issue a JWT (EdDSA) access token. */
export const OIDC_JWT_RESOURCE = 'urn:bench:api'

const usage = (): Usage => {
  const u = process.cpuUsage()
  return { cpuUs: u.user + u.system, wallMs: performance.now() }
}

// ---------------------------------------------------------------------------------------------
// passport

export interface PassportInfo {
  url: string
  issuer: string
  siteId: string
  authkey: string
  clientSecret: string
  /** A live access token of the site, for introspection and verification. */
  token: string
  /**
   * Unused refresh credentials, each the head of its own family, all alice's (on one session),
   * `familiesPerLane` per lane, lane by lane; bound to `jkts[i]` (the same order).
   */
  refreshTokens: string[]
  /** The same per lane, but each lane another user (their own session and families). */
  refreshTokensManyUsers: string[]
}

/** What the passport is started with: its lanes, and the frame keys' thumbprints (from `load`). */
export interface PassportStart {
  lanes: number
  /** The thumbprints of the keys of `refreshTokens` and `refreshTokensManyUsers`, in order. */
  jkts?: string[]
  jktsManyUsers?: string[]
  /**
   * PostgreSQL instead of SQLite: the server's admin URL (trust authentication); a database of
   * its own is created for the run and dropped when the child stops.
   */
  postgresAdminUrl?: string
}

export interface PassportRows {
  /** Rows of alice on the site not revoked (tokens; refresh families): what newest-wins scans on a new sign-in. */
  aliceLiveTokens: number
  aliceLiveRefresh: number
  tokens: number
  refresh: number
  storeBytes: number
}

async function startPassport(start: PassportStart) {
  const { resolveConfig } = await import('../passport-server/src/config.ts')
  const { silentLogger } = await import('../passport-server/src/deps.ts')
  const { createDeps, listen } = await import('../passport-server/src/server.ts')
  const { addSite, addUser, testMasterKey } = await import('../passport-server/src/test-support.ts')
  const { signIn } = await import('../passport-server/src/test-flows.ts')
  const { mintSiteToken } = await import('../passport-server/src/services/minting.ts')
  const { startSession } = await import('../passport-server/src/services/sessions.ts')
  const { verifySiteToken } = await import('../passport-server/src/tokens/site-token.ts')

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-bench-tokens-'))
  const pgAdmin = start.postgresAdminUrl
  const pgName = `passport_bench_${process.pid}`
  const adminSql = async (sql: string) => {
    const { default: pg } = await import('pg')
    const client = new pg.Client({ connectionString: pgAdmin, connectionTimeoutMillis: 5000 })
    await client.connect()
    try {
      await client.query(sql)
    } finally {
      await client.end()
    }
  }
  let databaseUrl = ''
  if (pgAdmin) {
    await adminSql(`DROP DATABASE IF EXISTS ${pgName}`)
    await adminSql(`CREATE DATABASE ${pgName}`)
    const url = new URL(pgAdmin)
    url.pathname = `/${pgName}`
    databaseUrl = url.toString()
  }
  const deps = await createDeps({
    config: resolveConfig({ issuer: BENCH_ISSUER, scryptCost: 1024, databaseUrl }),
    storeFile: path.join(dir, 'passport.sqlite'),
    masterKey: testMasterKey(),
    log: silentLogger,
  })
  const alice = await addUser(deps, 'alice')
  const news = await addSite(deps, { id: 'news', origins: [BENCH_SITE_ORIGIN] })
  const server = await listen(deps, 0, '127.0.0.1')

  // One real sign-in through the in-process app (login form, code, token exchange with a
  // proof by the test flows' own frame key) ...
  const signedIn = await signIn(server.app, news, alice, new Map(), BENCH_ISSUER)
  const verified = await verifySiteToken(deps.keys, signedIn.token, {
    issuer: BENCH_ISSUER,
    audience: news.site.id,
    nowMs: Date.now(),
  })
  if (!verified.ok) throw new Error(`own token does not verify: ${verified.reason}`)
  const session = await deps.store.sessions.get(verified.claims.sid)
  if (!session) throw new Error('no session behind the token')
  // ... then one refresh family per frame key of the load generator, on the same session (so
  // newest-wins revokes nothing), bound to that key as the code exchange binds it: each lane
  // then chains its own families' rotations, as frames do.
  const refreshTokens: string[] = []
  for (const jkt of start.jkts ?? []) {
    refreshTokens.push((await mintSiteToken(deps, news.site, session, jkt)).refreshToken)
  }
  // The other shape: one user per lane, each signed in (a session) with their lane's families.
  const refreshTokensManyUsers: string[] = []
  const perLane = Math.ceil((start.jktsManyUsers?.length ?? 0) / start.lanes)
  for (let i = 0; i < start.lanes && perLane > 0; i++) {
    const user = await addUser(deps, `user${i}`)
    const { session: theirs } = await startSession(deps, user.id, 'passport-bench-tokens')
    for (const jkt of start.jktsManyUsers?.slice(i * perLane, (i + 1) * perLane) ?? []) {
      refreshTokensManyUsers.push((await mintSiteToken(deps, news.site, theirs, jkt)).refreshToken)
    }
  }

  const info: PassportInfo = {
    url: server.internalUrl,
    issuer: BENCH_ISSUER,
    siteId: news.site.id,
    authkey: news.authkey,
    clientSecret: news.clientSecret,
    token: signedIn.token,
    refreshTokens,
    refreshTokensManyUsers,
  }
  const aliceLive = (table: string) =>
    `SELECT count(*) AS n FROM ${table} WHERE user_id = '${alice.id}' AND site_id = 'news' AND revoked_at IS NULL`
  if (pgAdmin) {
    const { default: pg } = await import('pg')
    const reader = new pg.Client({ connectionString: databaseUrl })
    await reader.connect()
    const count = async (sql: string) => Number((await reader.query<{ n: string }>(sql)).rows[0]?.n)
    return {
      info,
      rows: async (): Promise<PassportRows> => ({
        aliceLiveTokens: await count(aliceLive('tokens')),
        aliceLiveRefresh: await count(aliceLive('refresh_families')),
        tokens: await count('SELECT count(*) AS n FROM tokens'),
        refresh: await count('SELECT count(*) AS n FROM refresh_families'),
        storeBytes: await count(`SELECT pg_database_size('${pgName}') AS n`),
      }),
      close: async () => {
        await reader.end()
        await server.close()
        await adminSql(`DROP DATABASE IF EXISTS ${pgName} WITH (FORCE)`)
        fs.rmSync(dir, { recursive: true, force: true })
      },
    }
  }
  const { DatabaseSync } = await import('node:sqlite')
  const reader = new DatabaseSync(path.join(dir, 'passport.sqlite'), { readOnly: true })
  const count = (sql: string) => Number((reader.prepare(sql).get() as { n: number }).n)
  return {
    info,
    rows: async (): Promise<PassportRows> => ({
      aliceLiveTokens: count(aliceLive('tokens')),
      aliceLiveRefresh: count(aliceLive('refresh_families')),
      tokens: count('SELECT count(*) AS n FROM tokens'),
      refresh: count('SELECT count(*) AS n FROM refresh_families'),
      storeBytes: dirBytes(dir),
    }),
    close: async () => {
      reader.close()
      await server.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

function dirBytes(dir: string): number {
  let total = 0
  for (const name of fs.readdirSync(dir)) total += fs.statSync(path.join(dir, name)).size
  return total
}

// ---------------------------------------------------------------------------------------------
// node-oidc-provider

export interface OidcInfo {
  url: string
  clientId: string
  clientSecret: string
}

async function startOidc() {
  // Untyped package (no @types wanted for a benchmark): only the constructor and callback are used.
  const specifier = 'oidc-provider'
  const { default: Provider } = (await import(specifier)) as {
    default: new (issuer: string, config: unknown) => { callback(): http.RequestListener }
  }
  const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
  const jwk: JWK = { ...(await exportJWK(privateKey)), alg: 'EdDSA', use: 'sig', kid: 'bench-ed25519' }
  let handler: http.RequestListener = (_req, res) => res.writeHead(503).end()
  const server = http.createServer((req, res) => handler(req, res))
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const provider = new Provider(url, {
    clients: [
      {
        client_id: OIDC_CLIENT.id,
        client_secret: OIDC_CLIENT.secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        // The only key is Ed25519; the default (RS256) would have no key to sign with.
        id_token_signed_response_alg: 'EdDSA',
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: ['bench-cookie-key-0123456789abcdef'] },
    // Set explicitly (same as the defaults) so the provider does not print notices about them.
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // A request with a DPoP proof gets a DPoP-bound token (cnf.jkt), as the passport's mint
      // does; one without stays a bearer request (the other oidc cases).
      dPoP: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId: string }) =>
          token.clientId === client.clientId,
      },
      // With `resource=urn:bench:api` the access token is a JWT signed with the Ed25519 key;
      // without a resource it is opaque (stored in the default in-memory adapter).
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined as unknown as string,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (resource !== OIDC_JWT_RESOURCE) throw new Error('unknown resource')
          return {
            scope: 'api',
            audience: OIDC_JWT_RESOURCE,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'EdDSA' } },
          }
        },
      },
    },
  })
  handler = provider.callback()
  const info: OidcInfo = { url, clientId: OIDC_CLIENT.id, clientSecret: OIDC_CLIENT.secret }
  return {
    info,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

// ---------------------------------------------------------------------------------------------
// ceilings: what a Node HTTP server does with no work at all

/** What the bare servers answer, and what the load generator expects of them. */
export const BARE_ANSWER = '{"ok":true}'

export interface BareInfo {
  url: string
}

/** `node:http` alone: read the whole body, answer a fixed small JSON 200 (keep-alive). */
async function startBareHttp() {
  const answer = Buffer.from(BARE_ANSWER)
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      Buffer.concat(chunks).toString() // read, as a handler would
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': answer.length })
      res.end(answer)
    })
  })
  server.keepAliveTimeout = 30_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return servedAt(server)
}

/** A listening ceiling server: where it answers, and how to stop it. */
function servedAt(server: http.Server) {
  return {
    info: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` } satisfies BareInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/** A bare Hono app on `@hono/node-server`, served as the passport serves its app. */
async function startBareHono() {
  const { Hono } = await import('hono')
  const app = new Hono()
  app.post('/', async (c) => {
    await c.req.text()
    return c.json({ ok: true }) // BARE_ANSWER
  })
  return servedAt(await listenHono(app))
}

/** A Hono app on `@hono/node-server` on a free loopback port, as the passport serves its app. */
async function listenHono(app: { fetch: (request: Request) => Response | Promise<Response> }) {
  const { serve } = await import('@hono/node-server')
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as http.Server
  await new Promise<void>((resolve, reject) => {
    server.once('listening', () => resolve())
    server.once('error', reject)
  })
  return server
}

// ---------------------------------------------------------------------------------------------
// the mint's floor: the least work a durable, DPoP-bound mint can do

/** The floor's token header, encoded once (EdDSA, as the passport's). */
const FLOOR_TOKEN_HEADER = Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'at+jwt' })).toString('base64url')

/**
 * A bare Hono app (served as the passport serves its app) that does only what no durable,
 * DPoP-bound mint can skip, each the cheapest way node:crypto and node:sqlite offer: read the
 * JSON body; check the `DPoP` proof's ES256 signature by its own `jwk` (imported once per key,
 * kept); the key's thumbprint; sign one Ed25519 token; insert one row into SQLite in WAL mode
 * with the passport's `synchronous = NORMAL`, committed in groups (one COMMIT per turn of the
 * event loop, as the passport's queue does) before the answer; answer JSON. No nonce, no replay
 * cache, no claim checks, no refresh state, no logging, no headers beyond Hono's: a lower bound
 * for `passport.mint`, not a rival implementation.
 */
async function startMintFloor() {
  const { Hono } = await import('hono')
  const { DatabaseSync } = await import('node:sqlite')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-mint-floor-'))
  const db = new DatabaseSync(path.join(dir, 'floor.sqlite'))
  db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
    CREATE TABLE tokens (jti TEXT PRIMARY KEY, jkt TEXT NOT NULL, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)`)
  const insert = db.prepare('INSERT INTO tokens (jti, jkt, issued_at, expires_at) VALUES (?, ?, ?, ?)')
  const { privateKey } = generateKeyPairSync('ed25519')
  const proofKeys = new Map<string, { key: ReturnType<typeof createPublicKey>; jkt: string }>()

  let batch: { jti: string; jkt: string; now: number; done: () => void }[] = []
  const commitBatch = () => {
    const group = batch
    batch = []
    db.exec('BEGIN IMMEDIATE')
    for (const row of group) insert.run(row.jti, row.jkt, row.now, row.now + 600_000)
    db.exec('COMMIT')
    for (const row of group) row.done()
  }
  const durable = (jti: string, jkt: string, now: number) =>
    new Promise<void>((done) => {
      batch.push({ jti, jkt, now, done })
      if (batch.length === 1) setImmediate(commitBatch)
    })

  const app = new Hono()
  app.post('/token', async (c) => {
    await c.req.json()
    const [h = '', p = '', s = ''] = (c.req.header('DPoP') ?? '').split('.')
    const jwk = (JSON.parse(Buffer.from(h, 'base64url').toString()) as { jwk: FrameKeyJwk }).jwk
    const text = `{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`
    let known = proofKeys.get(text)
    if (!known) {
      known = {
        key: createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }, format: 'jwk' }),
        jkt: createHash('sha256').update(text).digest('base64url'),
      }
      proofKeys.set(text, known)
    }
    const good = nodeVerify(
      'sha256',
      Buffer.from(`${h}.${p}`),
      { key: known.key, dsaEncoding: 'ieee-p1363' },
      Buffer.from(s, 'base64url'),
    )
    if (!good) return c.json({ error: 'invalid_dpop_proof' }, 400)
    JSON.parse(Buffer.from(p, 'base64url').toString()) // the claims, read as any check must
    const now = Date.now()
    const jti = randomUUID()
    const claims = {
      iss: BENCH_ISSUER,
      sub: 'alice',
      aud: 'news',
      iat: Math.floor(now / 1000),
      exp: Math.floor(now / 1000) + 600,
      jti,
      cnf: { jkt: known.jkt },
    }
    const input = `${FLOOR_TOKEN_HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`
    const token = `${input}.${nodeSign(null, Buffer.from(input), privateKey).toString('base64url')}`
    await durable(jti, known.jkt, now)
    return c.json({ access_token: token, token_type: 'DPoP', expires_in: 600 })
  })
  const served = servedAt(await listenHono(app))
  return {
    info: served.info,
    close: async () => {
      await served.close()
      db.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

// ---------------------------------------------------------------------------------------------
// load generator

export interface LoadSpec {
  /** Keeps lane state (the refresh chain) across calls under this name. */
  name: string
  url: string
  /** Several instances of one deployment: lane i sends to \`urls[i % urls.length]\` (default: \`url\`). */
  urls?: string[]
  headers: Record<string, string>
  /**
   * `fixed`: the same body every time. `chain`: a frame's refresh, each lane presenting the
   * refresh credential the previous answer of that family gave (`seeds`: `familiesPerLane` per
   * lane, lane by lane, first call only; a lane takes its families in turn, as that many frames
   * would). `introspect-fresh`: first fetches a new access token from `tokenUrl`
   * (node-oidc-provider's in-memory store is an LRU, so a token from an earlier round may be
   * gone), then introspects it.
   */
  mode: 'fixed' | 'chain' | 'introspect-fresh'
  body?: string
  chain?: {
    /**
     * \`json\` (default): the frame's \`POST /api/frame/token\` body (with \`authkey\`); \`form\`: a
     * site backend's \`POST /token\` (\`grant_type=refresh_token\`, client credentials in the headers).
     */
    body?: 'json' | 'form'
    authkey: string
    seeds: string[]
    familiesPerLane: number
  }
  /**
   * A DPoP proof on every request, a fresh one (own `jti`) each time, for `htu`, with the
   * server's latest nonce (made again once when the server asks for a fresher one), by a key of
   * the set `frameKeys` made under `keys`: in `chain` mode the family's key (keys in the order of
   * `seeds`), in `fixed` mode lane i's. Absent: bearer requests (a refresh as before DPoP).
   */
  dpop?: { keys: string; htu: string }
  fresh?: { tokenUrl: string; tokenBody: string }
  /** A 503 \`temporarily_unavailable\` is counted and the request made again (default: a bad answer). */
  retryUnavailable?: boolean
  /** Text every counted answer must contain (e.g. `"active":true`). */
  expect: string
  /**
   * A `503 temporarily_unavailable` (the store gave up: on PostgreSQL, a transaction that kept
   * failing to serialise) is counted in `unavailable`, not `bad`, and the lane goes on with the
   * same credential (nothing was committed).
   */
  tolerateUnavailable?: boolean
  concurrency: number
  durationMs: number
}

export interface LoadResult {
  /** Answers that completed inside the window, status 200 and with the expected text. */
  ok: number
  /** Answers of requests still in flight at the deadline, awaited but not counted in `ok`. */
  drained: number
  bad: number
  firstBad?: string
  /** Requests answered `use_dpop_nonce` and made again (not counted in `ok`, `drained` or `bad`). */
  nonceRetries: number
  /**
   * Answers 503 `temporarily_unavailable` (the store gave up, nothing changed): with
   * `retryUnavailable` made again with the same credential, as a frame retries; with
   * `tolerateUnavailable` the lane goes on.
   */
  unavailable: number
  windowMs: number
  /** Window plus drain: what the server worked for. */
  busyMs: number
  latencyMs: { p50: number; p90: number; p99: number }
  loadCpuUs: number
}

/** Refreshes per second the proofs signed ahead of a DPoP case are sized for. */
const PRESIGN_RATE = 5_000

/** Per chain name: the credential each family presents next. */
const chains = new Map<string, string[]>()
/** Per chain name: the server nonce its frames hold (kept across rounds, as a frame keeps it). */
const nonces = new Map<string, ReturnType<typeof nonceKeeper>>()
/** Frame keys by set name (DPoP), made here: proofs are the client's work. */
const keySets = new Map<string, FrameKey[]>()

/** Makes `count` frame keys under `name`; returns their thumbprints for the passport to bind. */
function frameKeys(args: { name: string; count: number }): string[] {
  const keys = Array.from({ length: args.count }, () => newFrameKey())
  keySets.set(args.name, keys)
  return keys.map((k) => k.jkt)
}

async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const urls = (spec.urls ?? [spec.url]).map((u) => new URL(u))
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency })
  const perLane = spec.chain?.familiesPerLane ?? 1
  let families = chains.get(spec.name)
  if (spec.mode === 'chain' && !families) {
    families = [...(spec.chain?.seeds ?? [])]
    if (families.length < spec.concurrency * perLane) throw new Error('fewer refresh seeds than families')
    chains.set(spec.name, families)
  }
  const dpop = spec.dpop
  const keys = dpop ? keySets.get(dpop.keys) : undefined
  if (dpop && (!keys || keys.length < spec.concurrency * perLane))
    throw new Error('fewer frame keys than families')
  const nonce = nonces.get(spec.name) ?? nonceKeeper()
  nonces.set(spec.name, nonce)
  let introspected = ''
  if (spec.mode === 'introspect-fresh' && spec.fresh) {
    const got = await post(agent, new URL(spec.fresh.tokenUrl), spec.headers, spec.fresh.tokenBody)
    introspected = (JSON.parse(got.text) as { access_token: string }).access_token
  }
  const bodyFor = (family: number): string => {
    if (spec.mode === 'chain' && spec.chain?.body === 'form') {
      return new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: families?.[family] ?? '',
      }).toString()
    }
    if (spec.mode === 'chain') {
      return JSON.stringify({
        grant_type: 'refresh_token',
        authkey: spec.chain?.authkey,
        refresh_token: families?.[family],
      })
    }
    if (spec.mode === 'introspect-fresh') return new URLSearchParams({ token: introspected }).toString()
    return spec.body ?? ''
  }
  // Proofs signed before the window opens (the load generator's CPU all the same): signing
  // during it would slow the lanes of this case only, leaving the server fewer requests in
  // flight per commit group than the bearer case has, and so a different cost per request.
  // Enough for PRESIGN_RATE refreshes/s; a family that runs out signs on the spot.
  const ready = new Map<number, string[]>()
  if (dpop && keys && (nonce.get() !== null || spec.mode === 'fixed')) {
    const perFamily = Math.ceil((PRESIGN_RATE * spec.durationMs) / 1000 / (spec.concurrency * perLane))
    for (let f = 0; f < spec.concurrency * perLane; f++) {
      const key = keys[f] as FrameKey
      ready.set(
        f,
        Array.from({ length: perFamily }, () =>
          key.proof({ htm: 'POST', htu: dpop.htu, nonce: nonce.get() }),
        ),
      )
    }
  }
  const headersFor = (family: number, attempt: number): Record<string, string> => {
    const key = keys?.[family]
    if (!dpop || !key) return spec.headers
    const proof =
      (attempt === 0 ? ready.get(family)?.pop() : undefined) ??
      key.proof({ htm: 'POST', htu: dpop.htu, nonce: nonce.get() })
    return { ...spec.headers, DPoP: proof }
  }

  const latencies: number[] = []
  let ok = 0
  let drained = 0
  let bad = 0
  let unavailable = 0
  let nonceRetries = 0
  let firstBad: string | undefined
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const deadline = t0 + spec.durationMs
  const lane = async (i: number) => {
    const url = urls[i % urls.length] as URL
    let turn = 0
    while (performance.now() < deadline) {
      const family = i * perLane + (turn++ % perLane)
      const started = performance.now()
      let status = 0
      let text = ''
      try {
        // A proof with a nonce the server no longer takes is answered `use_dpop_nonce` with a
        // fresh one, and made again with it, as the frame does (the credential is unspent).
        for (let attempt = 0; attempt < 2; attempt++) {
          const got = await post(agent, url, headersFor(family, attempt), bodyFor(family))
          ;({ status, text } = got)
          nonce.take(got.headers)
          if (!(dpop && attempt === 0 && wantsNonce(status, text))) break
          nonceRetries++
        }
      } catch (err) {
        text = String(err)
      }
      const ended = performance.now()
      if (spec.retryUnavailable && status === 503 && text.includes('temporarily_unavailable')) {
        unavailable++
        turn-- // the same family again: its credential is unspent
        continue
      }
      const good = status === 200 && text.includes(spec.expect)
      if (!good && spec.tolerateUnavailable && status === 503 && text.includes('temporarily_unavailable')) {
        unavailable++
        continue
      }
      if (good && spec.mode === 'chain' && families) {
        families[family] = (JSON.parse(text) as { refresh_token: string }).refresh_token
      }
      if (!good) {
        bad++
        firstBad ??= `${status} ${text.slice(0, 200)}`
        if (spec.mode === 'chain') return // a lane whose chain broke cannot go on
      } else if (ended <= deadline) {
        ok++
        latencies.push(ended - started)
      } else drained++
    }
  }
  await Promise.all(Array.from({ length: spec.concurrency }, (_, i) => lane(i)))
  const busyMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  agent.destroy()
  latencies.sort((a, b) => a - b)
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0
  return {
    ok,
    drained,
    bad,
    unavailable,
    ...(firstBad ? { firstBad } : {}),
    nonceRetries,
    windowMs: spec.durationMs,
    busyMs,
    latencyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99) },
    loadCpuUs: cpu.user + cpu.system,
  }
}

// ---------------------------------------------------------------------------------------------
// in-process crypto

export type CryptoCase =
  | 'jose.sign'
  | 'node.sign'
  | 'passport.sign'
  | 'jose.verify'
  | 'passport.verify'
  | 'sdk.verify'
  | 'node.es256.verify'
  | 'dpop.verify'
  | 'dpop.import'
  | 'dpop.check'

export interface CryptoResult {
  ops: number
  wallMs: number
  cpuUs: number
  /** Network requests made while timing (the SDK case must make none). */
  fetches: number
}

async function prepareCrypto(passport: PassportInfo) {
  const { loadOrCreateKeys } = await import('../passport-server/src/tokens/keys.ts')
  const { signSiteToken, verifySiteToken } = await import('../passport-server/src/tokens/site-token.ts')
  const { openSqliteStore } = await import('../passport-server/src/store/sqlite.ts')
  const { createSiteVerifier } = await import('../passport-server/site-sdk/verify.ts')
  const { verifyDpopProof } = await import('../passport-server/src/tokens/dpop.ts')
  const { createDpopProofs } = await import('../passport-server/src/services/dpop-proofs.ts')
  const { resolveConfig } = await import('../passport-server/src/config.ts')
  const { systemClock } = await import('../passport-server/src/clock.ts')
  const { silentLogger } = await import('../passport-server/src/deps.ts')

  // Signing: a fresh Ed25519 key made by the passport's own key code (same type, same import).
  const ownKeys = await loadOrCreateKeys(openSqliteStore(':memory:').secrets)
  // node:crypto needs a KeyObject; the passport's CryptoKey is not extractable (and passing a
  // CryptoKey to node:crypto is deprecated), so the floor gets its own Ed25519 key.
  const nodeKey = generateKeyPairSync('ed25519').privateKey
  const now = Date.now()
  const claims = {
    issuer: passport.issuer,
    siteId: passport.siteId,
    userId: 'u_alice',
    sessionId: 'f'.repeat(64),
    jti: crypto.randomUUID(),
    issuedAtMs: now,
    expiresAtMs: now + 900_000,
  }
  const joseSign = () =>
    new SignJWT({ sid: claims.sessionId })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: ownKeys.current.kid })
      .setIssuer(claims.issuer)
      .setAudience(claims.siteId)
      .setSubject(claims.userId)
      .setJti(claims.jti)
      .setIssuedAt(Math.floor(claims.issuedAtMs / 1000))
      .setExpirationTime(Math.floor(claims.expiresAtMs / 1000))
      .sign(ownKeys.current.privateKey)
  // The same signing input as a token, signed with node:crypto directly: the floor.
  const sample = await joseSign()
  const signingInput = Buffer.from(sample.slice(0, sample.lastIndexOf('.')))
  // Passport's signer must produce exactly jose's token (Ed25519 signatures are deterministic).
  const passportSample = await signSiteToken(ownKeys, claims)
  if (passportSample !== sample)
    throw new Error('signSiteToken differs from the jose token of the same claims')

  // Verifying: the passport's real token against the passport's published key.
  const jwks = (await (await fetch(`${passport.url}/.well-known/jwks.json`)).json()) as { keys: JWK[] }
  const publicKeys = new Map<string, CryptoKey>()
  // Signing keys only: the set also publishes the passport's encryption key (ECDH) for sealed payloads.
  for (const k of jwks.keys.filter((k) => k.use !== 'enc'))
    publicKeys.set(k.kid as string, (await importJWK(k, 'EdDSA')) as CryptoKey)
  const serverKeys = { ...ownKeys, publicKeys }
  const kid = JSON.parse(Buffer.from(passport.token.split('.')[0] as string, 'base64url').toString()).kid
  const serverKey = publicKeys.get(kid) as CryptoKey
  const sdk = createSiteVerifier({
    issuer: passport.issuer,
    siteId: passport.siteId,
    clientSecret: passport.clientSecret,
    internalUrl: passport.url,
    // A clock frozen at start: the SDK's revocation cache (5 s) stays warm for the whole run,
    // so what is timed is its local path (jwtVerify against the cached JWKS, then a Map lookup).
    now: () => now,
  })
  let fetches = 0
  const realFetch = globalThis.fetch
  globalThis.fetch = ((...args: Parameters<typeof fetch>) => {
    fetches++
    return realFetch(...args)
  }) as typeof fetch
  const warm = await sdk.verify(passport.token) // fetches the JWKS and introspects once
  if (!warm.ok) throw new Error(`SDK refused the token: ${warm.reason}`)
  const check = await verifySiteToken(serverKeys, passport.token, {
    issuer: passport.issuer,
    audience: passport.siteId,
    nowMs: Date.now(),
  })
  if (!check.ok) throw new Error(`verifySiteToken refused the token: ${check.reason}`)

  // DPoP: a proof of a refresh as the frame makes it (nonce, no token), by a P-256 key.
  const frame = newFrameKey()
  const proofDeps = {
    store: openSqliteStore(':memory:'),
    clock: systemClock,
    config: resolveConfig({ issuer: passport.issuer }),
    log: silentLogger,
  }
  let proofs = createDpopProofs(proofDeps)
  const proofNonce = await proofs.currentNonce()
  const refreshUrl = `${passport.issuer}/api/frame/token`
  const makeProof = () => frame.proof({ htm: 'POST', htu: refreshUrl, nonce: proofNonce })
  const proof = makeProof()
  const proofInput = Buffer.from(proof.slice(0, proof.lastIndexOf('.')))
  const proofSignature = Buffer.from(proof.slice(proof.lastIndexOf('.') + 1), 'base64url')
  const proofKey = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: frame.jwk.x, y: frame.jwk.y },
    format: 'jwk',
  })
  const expectation = () => ({ method: 'POST', url: refreshUrl, nowMs: Date.now(), checkIat: false })
  const first = verifyDpopProof(proof, expectation())
  if (!first.ok || first.jkt !== frame.jkt)
    throw new Error(`verifyDpopProof refused the proof: ${JSON.stringify(first)}`)
  // \`dpop.check\` spends each proof's jti: fresh proofs, made before the timer starts.
  let pool: string[] = []
  let poolNext = 0
  let lastCheckOps = 5_000
  const refill = async (durationMs: number) => {
    // A fresh replay cache per run (it holds at most 200,000 proofs), warmed by one check.
    proofs = createDpopProofs(proofDeps)
    await proofs.check({ proof: makeProof(), method: 'POST', path: '/api/frame/token' })
    const want = Math.ceil(Math.max(5_000, lastCheckOps * 1.5) * Math.max(1, durationMs / 1000))
    pool = Array.from({ length: want }, makeProof)
    poolNext = 0
  }

  const ops: Record<CryptoCase, () => Promise<unknown> | unknown> = {
    'jose.sign': joseSign,
    'node.sign': () => nodeSign(null, signingInput, nodeKey).toString('base64url'),
    'passport.sign': () => signSiteToken(ownKeys, claims),
    // Raw jose: the key passed directly, the algorithm pinned, no claim options.
    'jose.verify': () => jwtVerify(passport.token, serverKey, { algorithms: ['EdDSA'] }),
    'passport.verify': () =>
      verifySiteToken(serverKeys, passport.token, {
        issuer: passport.issuer,
        audience: passport.siteId,
        nowMs: Date.now(),
      }),
    'sdk.verify': async () => {
      const r = await sdk.verify(passport.token)
      if (!r.ok) throw new Error(`SDK refused: ${r.reason}`)
    },
    // The floor of a proof check: one ES256 verification with an imported key.
    'node.es256.verify': () => {
      if (!nodeVerify('sha256', proofInput, { key: proofKey, dsaEncoding: 'ieee-p1363' }, proofSignature))
        throw new Error('ES256 verify failed')
    },
    // Every check of a proof (its key found in the cache by thumbprint), no state.
    'dpop.verify': () => {
      if (!verifyDpopProof(proof, expectation()).ok) throw new Error('proof refused')
    },
    // What a key not in the cache adds: importing the JWK.
    'dpop.import': () =>
      createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: frame.jwk.x, y: frame.jwk.y }, format: 'jwk' }),
    // What the frame API runs per request: the proof, the server nonce, the replay cache.
    'dpop.check': () => proofs.check({ proof: pool[poolNext++], method: 'POST', path: '/api/frame/token' }),
  }
  return {
    ops,
    fetchCount: () => fetches,
    refill,
    poolLeft: () => pool.length - poolNext,
    checked: (n: number) => {
      lastCheckOps = n
    },
  }
}

let crypto$: Awaited<ReturnType<typeof prepareCrypto>> | null = null

async function runCrypto(args: { name: CryptoCase; inFlight: number; durationMs: number }) {
  if (!crypto$) throw new Error('crypto not prepared')
  const op = crypto$.ops[args.name]
  const pooled = args.name === 'dpop.check'
  if (pooled) await crypto$.refill(args.durationMs)
  const fetches0 = crypto$.fetchCount()
  let count = 0
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const deadline = t0 + args.durationMs
  if (args.inFlight <= 1) {
    // A pooled case also stops when its proofs run out (the rate stays valid).
    while (performance.now() < deadline && (!pooled || crypto$.poolLeft() >= 16)) {
      for (let i = 0; i < 16; i++) await op()
      count += 16
    }
    if (pooled) crypto$.checked(count / (Math.max(1, performance.now() - t0) / 1000))
  } else {
    while (performance.now() < deadline) {
      await Promise.all(Array.from({ length: args.inFlight }, op))
      count += args.inFlight
    }
  }
  const wallMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  return {
    ops: count,
    wallMs,
    cpuUs: cpu.user + cpu.system,
    fetches: crypto$.fetchCount() - fetches0,
  } satisfies CryptoResult
}

// ---------------------------------------------------------------------------------------------

if (import.meta.main) {
  const role = process.argv[2] as Role
  if (role === 'passport') {
    let running: Awaited<ReturnType<typeof startPassport>> | null = null
    serveIpc(
      {
        start: async (args: PassportStart) => {
          running = await startPassport(args)
          return running.info
        },
        rows: () => running?.rows(),
      },
      { usage, cleanup: () => running?.close() },
    )
  } else if (role === 'oidc') {
    let running: Awaited<ReturnType<typeof startOidc>> | null = null
    serveIpc(
      {
        start: async () => {
          running = await startOidc()
          return running.info
        },
      },
      { usage, cleanup: () => running?.close() },
    )
  } else if (role === 'bare-http' || role === 'bare-hono' || role === 'mint-floor') {
    let running: Awaited<ReturnType<typeof startBareHttp>> | null = null
    serveIpc(
      {
        start: async () => {
          running = await (role === 'bare-http'
            ? startBareHttp()
            : role === 'bare-hono'
              ? startBareHono()
              : startMintFloor())
          return running.info
        },
      },
      { usage, cleanup: () => running?.close() },
    )
  } else if (role === 'load') {
    serveIpc(
      { run: runLoad, frameKeys },
      { usage, hardDeadlineMs: Number(process.env.BENCH_CHILD_DEADLINE_MS ?? 10 * 60_000) },
    )
  } else if (role === 'crypto') {
    serveIpc(
      {
        prepare: async (args: { passport: PassportInfo }) => {
          crypto$ = await prepareCrypto(args.passport)
          return true
        },
        run: runCrypto,
      },
      { usage },
    )
  } else {
    console.error(`unknown role ${role}`)
    process.exit(2)
  }
}
