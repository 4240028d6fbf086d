import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Request as PwRequest } from '@playwright/test'
import { launchProfile } from '../demo-sites/e2e/browser-profile.ts'
import { startDemo } from '../demo-sites/start.ts'
import { BEFORE_COMMIT, beforeCheckout } from './before.ts'
import { attachChild, canPin, type Child as IpcChild } from './ipc.ts'
import { median, quantile, round, shuffled } from './stats.ts'
import {
  BARE_ANSWER,
  type BareInfo,
  type CryptoCase,
  type CryptoResult,
  type LoadResult,
  type LoadSpec,
  OIDC_JWT_RESOURCE,
  type OidcInfo,
  type PassportInfo,
  type PassportRows,
  type PassportStart,
  type Role,
  type Usage,
} from './tokens-child.ts'

/**
 * `npm run bench -- tokens`: Passport's token endpoints side by side with node-oidc-provider 9
 * and raw jose, in one run on one machine, in interleaved rounds (every case once per round, in
 * shuffled order; figures are medians of per-round ratios).
 *
 * HTTP: each server is a child process pinned to core 0 (`taskset`, when there is one), the
 * load generator another child pinned to core 1; loopback only. In-process crypto runs in a
 * third child on core 0 while the servers idle. Frame: headless Chromium, postMessage round
 * trips to the passport frame of the demo, answered from its cache.
 */

const FRAME_PORTS = { passport: 19180, news: 19181, shop: 19182, docs: 19183 }
const CHILD_FILE = path.join(import.meta.dirname, 'tokens-child.ts')
const CALL_TIMEOUT_MS = 120_000

export interface TokensOptions {
  rounds: number
  httpMs: number
  cryptoMs: number
  concurrency: number
  frameSamples: number
  /**
   * Refresh families (each its frame key) a lane takes in turn. The frame API allows a key 60
   * requests a minute, as many as a frame makes in hours: one key per lane would be refused
   * within a second, so a lane plays this many frames (default: ~25 requests per key per case
   * at 5,000 refreshes/s).
   */
  familiesPerLane: number
}

/** BENCH_TOKENS_ONLY=a,b: only the cases whose names start with one of these (for profiling). */
const only = process.env.BENCH_TOKENS_ONLY?.split(',').filter(Boolean) ?? []
const selected = (name: string) => only.length === 0 || only.some((prefix) => name.startsWith(prefix))

export function tokensOptionsFromEnv(env = process.env): TokensOptions {
  return {
    rounds: Number(env.BENCH_TOKENS_ROUNDS ?? 5),
    httpMs: Number(env.BENCH_TOKENS_HTTP_MS ?? 3000),
    cryptoMs: Number(env.BENCH_TOKENS_CRYPTO_MS ?? 1000),
    concurrency: Number(env.BENCH_TOKENS_CONCURRENCY ?? 32),
    frameSamples: Number(env.BENCH_TOKENS_FRAME_SAMPLES ?? 200),
    familiesPerLane: Number(
      env.BENCH_TOKENS_FAMILIES_PER_LANE ??
        Math.max(
          4,
          Math.ceil(
            (Number(env.BENCH_TOKENS_HTTP_MS ?? 3000) / 1000) *
              (5000 / Number(env.BENCH_TOKENS_CONCURRENCY ?? 32) / 25),
          ),
        ),
    ),
  }
}

// ---------------------------------------------------------------------------------------------
// child processes

type Child = IpcChild<Role>

/** `childFile`: another checkout's tokens-child.ts (the code before DPoP) in place of this one's. */
function spawnChild(role: Role, core: number | null, childFile = CHILD_FILE): Child {
  // BENCH_TOKENS_CPU_PROF=dir: a V8 CPU profile of the passport server, written when it stops.
  const prof = process.env.BENCH_TOKENS_CPU_PROF
  const nodeArgs = [
    ...(prof && role === 'passport' && childFile === CHILD_FILE
      ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(prof)}`]
      : []),
    childFile,
    role,
  ]
  const proc: ChildProcess =
    core === null
      ? spawn(process.execPath, nodeArgs, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      : spawn('taskset', ['-c', String(core), process.execPath, ...nodeArgs], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        })
  return attachChild(proc, role, CALL_TIMEOUT_MS)
}

// ---------------------------------------------------------------------------------------------
// cases

type HttpCase =
  | 'passport.mint'
  | 'passport.mint.pg'
  | 'before.mint'
  | 'passport.mint.users'
  | 'passport.introspect'
  | 'oidc.token.opaque'
  | 'oidc.token.jwt'
  | 'oidc.token.jwt.dpop'
  | 'oidc.introspect'
  | 'ceiling.node-http'
  | 'ceiling.hono'
  | 'ceiling.mint-floor'
const HTTP_CASES: HttpCase[] = [
  'passport.mint',
  'passport.mint.pg',
  'before.mint',
  'passport.mint.users',
  'passport.introspect',
  'oidc.token.opaque',
  'oidc.token.jwt',
  'oidc.token.jwt.dpop',
  'oidc.introspect',
  'ceiling.node-http',
  'ceiling.hono',
  'ceiling.mint-floor',
]
/** Issue 13: a refresh with a DPoP proof may cost at most this much of the bearer refresh before it. */
const DPOP_REFRESH_TARGET = 1.25
/** The cases every HTTP figure is also given as a fraction of: Node's own ceiling. */
const CEILING: HttpCase = 'ceiling.node-http'
const CRYPTO_CASES: { name: CryptoCase; inFlight: number }[] = [
  { name: 'jose.sign', inFlight: 1 },
  { name: 'jose.sign', inFlight: 32 },
  { name: 'node.sign', inFlight: 1 },
  { name: 'passport.sign', inFlight: 1 },
  { name: 'passport.sign', inFlight: 32 },
  { name: 'jose.verify', inFlight: 1 },
  { name: 'jose.verify', inFlight: 32 },
  { name: 'passport.verify', inFlight: 1 },
  { name: 'passport.verify', inFlight: 32 },
  { name: 'sdk.verify', inFlight: 1 },
  { name: 'sdk.verify', inFlight: 32 },
  { name: 'node.es256.verify', inFlight: 1 },
  { name: 'dpop.verify', inFlight: 1 },
  { name: 'dpop.import', inFlight: 1 },
  { name: 'dpop.check', inFlight: 1 },
]
const cryptoKey = (c: { name: CryptoCase; inFlight: number }) => `${c.name} W${c.inFlight}`

export interface HttpSample {
  reqPerSec: number
  /** Requests per CPU-second of the server process (all its threads). */
  reqPerServerCpuSec: number
  serverCpuUsPerReq: number
  serverCpuShare: number
  loadCpuShare: number
  p50Ms: number
  p99Ms: number
  bad: number
  /** Answers 503 temporarily_unavailable where tolerated (passport.mint.pg), not in the rates. */
  unavailable?: number
  firstBad?: string
  /** passport.mint: alice's live token + refresh rows when the case started. */
  rowsBefore?: number
}
export interface CryptoSample {
  opsPerSec: number
  opsPerCpuSec: number
  fetches: number
}

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`
const FORM = 'application/x-www-form-urlencoded'

function httpSpec(
  name: HttpCase,
  p: PassportInfo,
  pgp: PassportInfo | null,
  before: PassportInfo | null,
  o: OidcInfo,
  bare: { nodeHttp: BareInfo; hono: BareInfo; mintFloor: BareInfo },
  opts: { concurrency: number; durationMs: number; familiesPerLane: number },
): LoadSpec {
  const common = { name, concurrency: opts.concurrency, durationMs: opts.durationMs }
  const oidcHeaders = { Authorization: basic(o.clientId, o.clientSecret), 'Content-Type': FORM }
  // What the frame sends: a same-origin fetch from the passport origin.
  const frameHeaders = (issuer: string) => ({
    'Content-Type': 'application/json',
    Origin: issuer,
    'Sec-Fetch-Site': 'same-origin',
  })
  switch (name) {
    case 'passport.mint':
    case 'passport.mint.users':
      return {
        ...common,
        url: `${p.url}/api/frame/token`,
        headers: frameHeaders(p.issuer),
        mode: 'chain',
        chain: {
          authkey: p.authkey,
          seeds: name === 'passport.mint' ? p.refreshTokens : p.refreshTokensManyUsers,
          familiesPerLane: opts.familiesPerLane,
        },
        // Every refresh proves the key its family is bound to (keys named as the case).
        dpop: { keys: name, htu: `${p.issuer}/api/frame/token` },
        expect: '"access_token"',
      }
    case 'passport.mint.pg': {
      // The same chained refreshes against the same code on the PostgreSQL store.
      if (!pgp) throw new Error('no passport on PostgreSQL')
      return {
        ...common,
        url: `${pgp.url}/api/frame/token`,
        headers: frameHeaders(pgp.issuer),
        mode: 'chain',
        chain: {
          authkey: pgp.authkey,
          seeds: pgp.refreshTokens,
          familiesPerLane: opts.familiesPerLane,
        },
        dpop: { keys: name, htu: `${pgp.issuer}/api/frame/token` },
        expect: '"access_token"',
        tolerateUnavailable: true,
      }
    }
    case 'before.mint': {
      // The same chained refreshes against the server before DPoP: a bearer refresh credential.
      if (!before) throw new Error('no server before DPoP')
      return {
        ...common,
        url: `${before.url}/api/frame/token`,
        headers: frameHeaders(before.issuer),
        mode: 'chain',
        chain: {
          authkey: before.authkey,
          seeds: before.refreshTokens,
          familiesPerLane: opts.familiesPerLane,
        },
        expect: '"access_token"',
      }
    }
    case 'passport.introspect':
      return {
        ...common,
        url: `${p.url}/token/introspect`,
        headers: { Authorization: basic(p.siteId, p.clientSecret), 'Content-Type': FORM },
        mode: 'fixed',
        body: new URLSearchParams({ token: p.token }).toString(),
        expect: '"active":true',
      }
    case 'oidc.token.opaque':
      return {
        ...common,
        url: `${o.url}/token`,
        headers: oidcHeaders,
        mode: 'fixed',
        body: 'grant_type=client_credentials',
        expect: '"access_token"',
      }
    case 'oidc.token.jwt':
      return {
        ...common,
        url: `${o.url}/token`,
        headers: oidcHeaders,
        mode: 'fixed',
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          resource: OIDC_JWT_RESOURCE,
        }).toString(),
        expect: '"access_token"',
      }
    case 'oidc.token.jwt.dpop':
      // The same JWT grant with a DPoP proof per request (RFC 9449): the provider verifies it
      // and binds the token to the key, the work the passport's mint does for every refresh.
      return {
        ...common,
        url: `${o.url}/token`,
        headers: oidcHeaders,
        mode: 'fixed',
        dpop: { keys: name, htu: `${o.url}/token` },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          resource: OIDC_JWT_RESOURCE,
        }).toString(),
        expect: '"token_type":"DPoP"',
      }
    case 'oidc.introspect':
      return {
        ...common,
        url: `${o.url}/token/introspection`,
        headers: oidcHeaders,
        mode: 'introspect-fresh',
        fresh: { tokenUrl: `${o.url}/token`, tokenBody: 'grant_type=client_credentials' },
        expect: '"active":true',
      }
    case 'ceiling.node-http':
    case 'ceiling.hono':
      // The introspection request (same headers, same body), answered with no work at all.
      return {
        ...common,
        url: `${(name === 'ceiling.node-http' ? bare.nodeHttp : bare.hono).url}/`,
        headers: { Authorization: basic(p.siteId, p.clientSecret), 'Content-Type': FORM },
        mode: 'fixed',
        body: new URLSearchParams({ token: p.token }).toString(),
        expect: BARE_ANSWER,
      }
    case 'ceiling.mint-floor':
      // The frame's refresh request (headers, JSON body, a DPoP proof per request by lane i's
      // key) to the least a durable DPoP-bound mint can do (\`startMintFloor\` in tokens-child.ts).
      return {
        ...common,
        url: `${bare.mintFloor.url}/token`,
        headers: frameHeaders(p.issuer),
        mode: 'fixed',
        dpop: { keys: name, htu: `${bare.mintFloor.url}/token` },
        body: JSON.stringify({
          grant_type: 'refresh_token',
          authkey: p.authkey,
          refresh_token: p.refreshTokens[0] ?? '',
        }),
        expect: '"token_type":"DPoP"',
      }
  }
}

async function runHttpCase(server: Child, load: Child, spec: LoadSpec): Promise<HttpSample> {
  const u0 = await server.call<Usage>('usage')
  const r = await load.call<LoadResult>('run', spec)
  const u1 = await server.call<Usage>('usage')
  const serverCpuUs = u1.cpuUs - u0.cpuUs
  const served = r.ok + r.drained
  return {
    reqPerSec: r.ok / (r.windowMs / 1000),
    reqPerServerCpuSec: served / (serverCpuUs / 1e6),
    serverCpuUsPerReq: serverCpuUs / served,
    serverCpuShare: serverCpuUs / 1000 / r.busyMs,
    loadCpuShare: r.loadCpuUs / 1000 / r.busyMs,
    p50Ms: r.latencyMs.p50,
    p99Ms: r.latencyMs.p99,
    bad: r.bad,
    unavailable: r.unavailable ?? 0,
    ...(r.firstBad ? { firstBad: r.firstBad } : {}),
  }
}

// ---------------------------------------------------------------------------------------------
// frame cache latency (Chromium)

export interface FrameResult {
  n: number
  medianMs: number
  p90Ms: number
  minMs: number
  maxMs: number
  /** Network requests seen by the page (any frame) during the timed round trips. */
  requestsDuringTiming: number
  requestUrls: string[]
  samplesMs: number[]
}

async function runFrameBench(samples: number): Promise<FrameResult> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-bench-frame-'))
  const demo = await startDemo({ ports: FRAME_PORTS, dataDir, quiet: true })
  const context = await launchProfile('blocked')
  try {
    const page = await context.newPage()
    await page.goto(`${demo.urls.news}/`)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    await page.getByLabel('Username', { exact: true }).fill('alice')
    await page.getByLabel('Password', { exact: true }).fill('alice-password-1')
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    await page.getByText('Signed in as alice').waitFor()
    await page.waitForLoadState('networkidle')

    let counting = false
    const seen: string[] = []
    const onRequest = (r: PwRequest) => {
      if (counting) seen.push(r.url())
    }
    context.on('request', onRequest) // every request of every page and frame of the profile
    const warmup = 20
    const run = (args: { passportOrigin: string; count: number; prefix: string }) =>
      page.evaluate(async ({ passportOrigin, count, prefix }) => {
        const frame = document.querySelector('iframe')
        const target = frame?.contentWindow
        if (!frame || !target || !frame.src.startsWith(passportOrigin)) throw new Error('no passport frame')
        const ask = (id: string) =>
          new Promise<{ type: string; token?: string }>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no answer to ${id}`)), 5000)
            const onMessage = (event: MessageEvent) => {
              if (event.origin !== passportOrigin || event.source !== target || event.data?.id !== id) return
              clearTimeout(timer)
              removeEventListener('message', onMessage)
              resolve(event.data)
            }
            addEventListener('message', onMessage)
            target.postMessage({ v: 1, type: 'token_request', id }, passportOrigin)
          })
        const times: number[] = []
        for (let i = 0; i < count; i++) {
          const t0 = performance.now()
          const reply = await ask(`${prefix}${i}`)
          times.push(performance.now() - t0)
          if (reply.type !== 'token_response' || !reply.token) throw new Error(`frame answered ${reply.type}`)
        }
        return times
      }, args)
    await run({ passportOrigin: demo.urls.passport, count: warmup, prefix: 'w' })
    counting = true
    const times = await run({ passportOrigin: demo.urls.passport, count: samples, prefix: 'b' })
    // Let a request the round trips might have started reach the listener before counting.
    await page.waitForTimeout(300)
    counting = false
    const unique = [...new Set(seen)]
    return {
      n: times.length,
      medianMs: round(median(times), 3),
      p90Ms: round(quantile(times, 0.9), 3),
      minMs: round(Math.min(...times), 3),
      maxMs: round(Math.max(...times), 3),
      requestsDuringTiming: seen.length,
      requestUrls: unique,
      samplesMs: times.map((t) => round(t, 3)),
    }
  } finally {
    await context.close()
    await demo.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// the run

export async function runTokensBench(options: TokensOptions) {
  const pinned = canPin()
  const serverCore = pinned ? 0 : null
  const loadCore = pinned ? 1 : null
  const started = performance.now()
  const children: Child[] = []
  const child = (role: Role, core: number | null, childFile?: string) => {
    const c = spawnChild(role, core, childFile)
    children.push(c)
    return c
  }
  // The server before DPoP, for the bearer refresh it replaces (see bench/before.ts).
  const checkout = selected('before.mint') ? beforeCheckout() : { dir: null, why: 'not selected' }
  if (checkout.dir === null) process.stdout.write(`before.mint left out: ${checkout.why}\n`)
  // BENCH_TOKENS_PG_ADMIN_URL: the PostgreSQL server's admin URL; unset, the PostgreSQL case is left out.
  const pgAdmin = process.env.BENCH_TOKENS_PG_ADMIN_URL ?? ''
  if (pgAdmin === '' && selected('passport.mint.pg'))
    process.stdout.write('passport.mint.pg left out: BENCH_TOKENS_PG_ADMIN_URL is not set\n')
  const cases = HTTP_CASES.filter(
    (c) =>
      selected(c) &&
      (c !== 'before.mint' || checkout.dir !== null) &&
      (c !== 'passport.mint.pg' || pgAdmin !== ''),
  )
  const http: Record<HttpCase, HttpSample[]> = Object.fromEntries(HTTP_CASES.map((c) => [c, []])) as never
  const inproc: Record<string, CryptoSample[]> = Object.fromEntries(
    CRYPTO_CASES.map((c) => [cryptoKey(c), []]),
  )
  let rowsAtEnd: PassportRows | null = null
  try {
    const passport = child('passport', serverCore)
    const oidc = child('oidc', serverCore)
    const bareHttp = child('bare-http', serverCore)
    const bareHono = child('bare-hono', serverCore)
    const mintFloor = child('mint-floor', serverCore)
    const load = child('load', loadCore)
    const cryptoChild = child('crypto', serverCore)
    const beforeServer =
      checkout.dir === null
        ? null
        : child('passport', serverCore, path.join(checkout.dir, 'bench', 'tokens-child.ts'))
    // The frames' keys live in the load generator; the passport binds each family to one.
    const families = options.concurrency * options.familiesPerLane
    const start: PassportStart = {
      lanes: options.concurrency,
      jkts: await load.call<string[]>('frameKeys', { name: 'passport.mint', count: families }),
      jktsManyUsers: await load.call<string[]>('frameKeys', { name: 'passport.mint.users', count: families }),
    }
    // node-oidc-provider's DPoP case: one key per lane (its tokens are bound as they are issued).
    await load.call<string[]>('frameKeys', { name: 'oidc.token.jwt.dpop', count: options.concurrency })
    await load.call<string[]>('frameKeys', { name: 'ceiling.mint-floor', count: options.concurrency })
    const p = await passport.call<PassportInfo>('start', start)
    const pgPassport = cases.includes('passport.mint.pg') ? child('passport', serverCore) : null
    const pgp = pgPassport
      ? await pgPassport.call<PassportInfo>('start', {
          lanes: options.concurrency,
          jkts: await load.call<string[]>('frameKeys', { name: 'passport.mint.pg', count: families }),
          postgresAdminUrl: pgAdmin,
        } satisfies PassportStart)
      : null
    // Its own start makes \`lanes\` families of alice (and signs in as many users, unused here).
    const prior = beforeServer ? await beforeServer.call<PassportInfo>('start', { lanes: families }) : null
    const o = await oidc.call<OidcInfo>('start')
    const bare = {
      nodeHttp: await bareHttp.call<BareInfo>('start'),
      hono: await bareHono.call<BareInfo>('start'),
      mintFloor: await mintFloor.call<BareInfo>('start'),
    }
    await cryptoChild.call('prepare', { passport: p })
    const serverOf = (c: HttpCase) =>
      c === 'ceiling.node-http'
        ? bareHttp
        : c === 'ceiling.hono'
          ? bareHono
          : c === 'ceiling.mint-floor'
            ? mintFloor
            : c === 'before.mint' && beforeServer
              ? beforeServer
              : c === 'passport.mint.pg' && pgPassport
                ? pgPassport
                : c.startsWith('passport')
                  ? passport
                  : oidc

    // Round 0 is a shorter warm-up (JIT, SQLite pages, connection pools), discarded.
    for (let r = 0; r <= options.rounds; r++) {
      const warm = r === 0
      const httpMs = warm ? Math.ceil(options.httpMs / 3) : options.httpMs
      const cryptoMs = warm ? Math.ceil(options.cryptoMs / 3) : options.cryptoMs
      const line: string[] = []
      const all = shuffled([
        ...cases.map((c) => ({ kind: 'http' as const, c })),
        ...CRYPTO_CASES.filter((c) => selected(cryptoKey(c))).map((c) => ({ kind: 'crypto' as const, c })),
      ])
      for (const item of all) {
        if (item.kind === 'http') {
          const spec = httpSpec(item.c, p, pgp, prior, o, bare, {
            concurrency: options.concurrency,
            durationMs: httpMs,
            familiesPerLane: options.familiesPerLane,
          })
          const before = item.c === 'passport.mint' ? await passport.call<PassportRows>('rows') : undefined
          const s = await runHttpCase(serverOf(item.c), load, spec)
          if (before) s.rowsBefore = before.aliceLiveTokens + before.aliceLiveRefresh
          if (s.bad > 0) throw new Error(`${item.c}: ${s.bad} bad answers, first: ${s.firstBad}`)
          if (!warm) http[item.c].push(s)
          line.push(`${item.c} ${Math.round(s.reqPerSec)}/s`)
        } else {
          const res = await cryptoChild.call<CryptoResult>('run', { ...item.c, durationMs: cryptoMs })
          if (item.c.name === 'sdk.verify' && res.fetches > 0)
            throw new Error('SDK verify went to the network')
          const s: CryptoSample = {
            opsPerSec: res.ops / (res.wallMs / 1000),
            opsPerCpuSec: res.ops / (res.cpuUs / 1e6),
            fetches: res.fetches,
          }
          if (!warm) inproc[cryptoKey(item.c)]?.push(s)
          line.push(`${cryptoKey(item.c)} ${Math.round(s.opsPerSec)}/s`)
        }
      }
      process.stdout.write(`${warm ? 'warm-up' : `round ${r}/${options.rounds}`}: ${line.join(', ')}\n`)
    }
    rowsAtEnd = await passport.call<PassportRows>('rows')
  } finally {
    // Whatever happened, every child is told to stop, and killed 5 s later if it has not.
    await Promise.all(children.map((c) => c.stop()))
  }
  const httpSeconds = (performance.now() - started) / 1000

  const frame: FrameResult = selected('frame')
    ? await runFrameBench(options.frameSamples)
    : {
        n: 0,
        medianMs: Number.NaN,
        p90Ms: Number.NaN,
        minMs: Number.NaN,
        maxMs: Number.NaN,
        requestsDuringTiming: 0,
        requestUrls: [],
        samplesMs: [],
      }
  process.stdout.write(
    `frame: median ${frame.medianMs} ms, p90 ${frame.p90Ms} ms, ${frame.requestsDuringTiming} requests\n`,
  )

  return summarize({ options, pinned, http, inproc, frame, rowsAtEnd, httpSeconds })
}

// ---------------------------------------------------------------------------------------------
// summary

interface Raw {
  options: TokensOptions
  pinned: boolean
  http: Record<HttpCase, HttpSample[]>
  inproc: Record<string, CryptoSample[]>
  frame: FrameResult
  rowsAtEnd: PassportRows | null
  httpSeconds: number
}

interface Ratio {
  name: string
  /** Median of per-round ratios, wall-clock rates. */
  wall: number
  /** Median of per-round ratios of operations per CPU-second (server process / crypto child). */
  cpu: number
  perRound: number[]
  target: number | null
  met: boolean | null
  /**
   * For an HTTP numerator: the same ratio with the bare servers in its place (wall; per CPU-s),
   * the most any Node HTTP server (or any Hono app) could reach against the same denominator.
   */
  ceiling?: { nodeHttp: number; nodeHttpCpu: number; hono: number; honoCpu: number }
  /** The target is above what a bare node:http server reaches, by wall rate and per CPU-s. */
  unreachable?: boolean
}

function summarize(raw: Raw) {
  const rounds = raw.options.rounds
  // A case left out (BENCH_TOKENS_ONLY) gives NaN ratios, judged neither way.
  const none = {
    reqPerSec: Number.NaN,
    reqPerServerCpuSec: Number.NaN,
    opsPerSec: Number.NaN,
    opsPerCpuSec: Number.NaN,
  }
  const h = (c: HttpCase, i: number) => (raw.http[c][i] ?? none) as HttpSample
  const k = (name: string, i: number) => (raw.inproc[name]?.[i] ?? none) as CryptoSample
  type Rate = (i: number) => { wall: number; cpu: number }
  const medians = (num: Rate, den: Rate) => {
    const wall: number[] = []
    const cpu: number[] = []
    for (let i = 0; i < rounds; i++) {
      wall.push(num(i).wall / den(i).wall)
      cpu.push(num(i).cpu / den(i).cpu)
    }
    return { wall, w: median(wall), c: median(cpu) }
  }
  const hr = (c: HttpCase) => (i: number) => ({ wall: h(c, i).reqPerSec, cpu: h(c, i).reqPerServerCpuSec })
  const kr = (name: string) => (i: number) => ({ wall: k(name, i).opsPerSec, cpu: k(name, i).opsPerCpuSec })
  const ratio = (name: string, target: number | null, num: Rate | HttpCase, den: Rate): Ratio => {
    const { wall, w, c } = medians(typeof num === 'string' ? hr(num) : num, den)
    const out: Ratio = {
      name,
      wall: round(w, 3),
      cpu: round(c, 3),
      perRound: wall.map((x) => round(x, 3)),
      target,
      met: target === null || Number.isNaN(w) ? null : w >= target,
    }
    if (typeof num === 'string' && num !== CEILING) {
      const n = medians(hr(CEILING), den)
      const o = medians(hr('ceiling.hono'), den)
      out.ceiling = {
        nodeHttp: round(n.w, 3),
        nodeHttpCpu: round(n.c, 3),
        hono: round(o.w, 3),
        honoCpu: round(o.c, 3),
      }
      if (target !== null && out.met === false) out.unreachable = Math.max(n.w, n.c) < target
    }
    return out
  }

  const ratios: Ratio[] = [
    // Issue 15 item 7: the durable mint at least as fast as node-oidc-provider's JWT endpoint.
    ratio(
      'mint (SQLite) / node-oidc-provider token (EdDSA JWT AT), issue 15',
      1,
      'passport.mint',
      hr('oidc.token.jwt'),
    ),
    ratio(
      'mint (PostgreSQL) / node-oidc-provider token (EdDSA JWT AT), issue 15',
      1,
      'passport.mint.pg',
      hr('oidc.token.jwt'),
    ),
    // Like for like: node-oidc-provider verifying a DPoP proof and binding its token, as every mint does.
    ratio(
      '(info) mint (SQLite) / node-oidc-provider token (EdDSA JWT AT, DPoP-bound)',
      null,
      'passport.mint',
      hr('oidc.token.jwt.dpop'),
    ),
    // Is 1.0x reachable at all? The least a durable DPoP-bound mint does, against the same peer.
    ratio(
      '(info) mint floor / node-oidc-provider token (EdDSA JWT AT)',
      null,
      'ceiling.mint-floor',
      hr('oidc.token.jwt'),
    ),
    ratio('(info) mint (SQLite) / mint floor', null, 'passport.mint', hr('ceiling.mint-floor')),
    ratio('(info) mint (PostgreSQL) / mint (SQLite)', null, 'passport.mint.pg', hr('passport.mint')),
    ratio('mint / node-oidc-provider token (opaque AT)', 3, 'passport.mint', hr('oidc.token.opaque')),
    ratio('mint / node-oidc-provider token (EdDSA JWT AT)', 3, 'passport.mint', hr('oidc.token.jwt')),
    ratio('mint / raw jose EdDSA sign (W32)', 0.5, 'passport.mint', kr('jose.sign W32')),
    ratio('mint / raw jose EdDSA sign (W1)', 0.5, 'passport.mint', kr('jose.sign W1')),
    ratio(
      'mint, user per lane / node-oidc-provider token (opaque)',
      3,
      'passport.mint.users',
      hr('oidc.token.opaque'),
    ),
    ratio(
      'mint, user per lane / node-oidc-provider token (JWT)',
      3,
      'passport.mint.users',
      hr('oidc.token.jwt'),
    ),
    ratio('mint, user per lane / raw jose EdDSA sign (W32)', 0.5, 'passport.mint.users', kr('jose.sign W32')),
    ratio(
      'introspection / node-oidc-provider introspection',
      2,
      'passport.introspect',
      hr('oidc.introspect'),
    ),
    ratio('verifySiteToken / raw jose jwtVerify (W1)', 0.8, kr('passport.verify W1'), kr('jose.verify W1')),
    ratio(
      'verifySiteToken / raw jose jwtVerify (W32)',
      0.8,
      kr('passport.verify W32'),
      kr('jose.verify W32'),
    ),
    ratio(
      'site SDK verify (cached) / raw jose jwtVerify (W1)',
      0.8,
      kr('sdk.verify W1'),
      kr('jose.verify W1'),
    ),
    ratio(
      'site SDK verify (cached) / raw jose jwtVerify (W32)',
      0.8,
      kr('sdk.verify W32'),
      kr('jose.verify W32'),
    ),
    ratio(
      '(info) Passport signSiteToken / raw jose sign (W1)',
      null,
      kr('passport.sign W1'),
      kr('jose.sign W1'),
    ),
    ratio('(info) raw jose sign (W32) / node:crypto sign', null, kr('jose.sign W32'), kr('node.sign W1')),
    ratio('(info) mint / Passport signSiteToken (W32)', null, hr('passport.mint'), kr('passport.sign W32')),
    // Every HTTP figure as a fraction of the bare node:http ceiling of the same round.
    ...HTTP_CASES.filter((c) => c !== CEILING).map((c) =>
      ratio(`(ceiling) ${c} / bare node:http`, null, hr(c), hr(CEILING)),
    ),
  ]

  const httpTable = HTTP_CASES.map((c) => {
    const xs = raw.http[c]
    const med = (f: (s: HttpSample) => number, d = 0) => round(median(xs.map(f)), d)
    return {
      case: c,
      reqPerSec: med((s) => s.reqPerSec),
      perRound: xs.map((s) => Math.round(s.reqPerSec)),
      rowsBefore: xs.map((s) => s.rowsBefore).filter((x) => x !== undefined),
      unavailable: xs.map((s) => s.unavailable ?? 0),
      reqPerServerCpuSec: med((s) => s.reqPerServerCpuSec),
      serverCpuUsPerReq: med((s) => s.serverCpuUsPerReq, 1),
      serverCpuShare: med((s) => s.serverCpuShare, 2),
      loadCpuShare: med((s) => s.loadCpuShare, 2),
      p50Ms: med((s) => s.p50Ms, 2),
      p99Ms: med((s) => s.p99Ms, 2),
    }
  })
  const cryptoTable = CRYPTO_CASES.map((c) => {
    const xs = raw.inproc[cryptoKey(c)] ?? []
    return {
      case: cryptoKey(c),
      opsPerSec: round(median(xs.map((s) => s.opsPerSec)), 0),
      opsPerCpuSec: round(median(xs.map((s) => s.opsPerCpuSec)), 0),
      perRound: xs.map((s) => Math.round(s.opsPerSec)),
    }
  })
  const frameMet = raw.frame.medianMs <= 2 && raw.frame.requestsDuringTiming === 0

  // CPU budgets: how much server CPU one request may cost to meet each HTTP target, what a bare
  // node:http server already spends answering one, and what is left for the actual work (to set
  // against one Ed25519 signature with node:crypto). From the median per-CPU-second figures.
  const cpuUs = (c: HttpCase) => httpTable.find((r) => r.case === c)?.serverCpuUsPerReq ?? Number.NaN
  const opUs = (name: string) => 1e6 / (cryptoTable.find((r) => r.case === name)?.opsPerCpuSec ?? Number.NaN)
  const budget = (target: string, allowedUs: number, passport: HttpCase) => ({
    target,
    allowedUs: round(allowedUs, 1),
    passportUs: cpuUs(passport),
    bareNodeHttpUs: cpuUs(CEILING),
    bareHonoUs: cpuUs('ceiling.hono'),
    leftUs: round(allowedUs - cpuUs(CEILING), 1),
    ed25519SignUs: round(opUs('node.sign W1'), 1),
  })
  const budgets = [
    budget('mint ≥ 3× node-oidc-provider token (opaque)', cpuUs('oidc.token.opaque') / 3, 'passport.mint'),
    budget('mint ≥ 3× node-oidc-provider token (JWT)', cpuUs('oidc.token.jwt') / 3, 'passport.mint'),
    budget('mint ≥ 50 % of raw jose sign (W32)', 2 * opUs('jose.sign W32'), 'passport.mint'),
    budget('introspection ≥ 2× node-oidc-provider', cpuUs('oidc.introspect') / 2, 'passport.introspect'),
  ]

  // DPoP (issue 13): what a refresh with a proof costs against the bearer refresh of the server
  // before DPoP, measured in the same rounds. A cost ratio (after / before: ≤ 1.25 is the goal),
  // i.e. before's rate over after's, per round, then the median.
  const perRound = (f: (i: number) => number) => Array.from({ length: rounds }, (_, i) => f(i))
  const costWall = perRound((i) => h('before.mint', i).reqPerSec / h('passport.mint', i).reqPerSec)
  const costCpu = perRound(
    (i) => h('passport.mint', i).serverCpuUsPerReq / h('before.mint', i).serverCpuUsPerReq,
  )
  const verifyOverRaw = perRound(
    (i) => k('node.es256.verify W1', i).opsPerCpuSec / k('dpop.verify W1', i).opsPerCpuSec,
  )
  const dpop = {
    refresh: {
      target: DPOP_REFRESH_TARGET,
      cpu: round(median(costCpu), 3),
      wall: round(median(costWall), 3),
      perRoundCpu: costCpu.map((x) => round(x, 3)),
      perRoundWall: costWall.map((x) => round(x, 3)),
      met: Number.isNaN(median(costCpu)) ? null : median(costCpu) <= DPOP_REFRESH_TARGET,
      afterUs: cpuUs('passport.mint'),
      beforeUs: cpuUs('before.mint'),
      /** Median over rounds of the per-round difference (same round, same machine state). */
      extraUs: round(
        median(
          perRound((i) => h('passport.mint', i).serverCpuUsPerReq - h('before.mint', i).serverCpuUsPerReq),
        ),
        1,
      ),
    },
    /** µs of CPU per call, in-process (median of per-round figures). */
    perCallUs: {
      es256Verify: round(opUs('node.es256.verify W1'), 1),
      verifyDpopProof: round(opUs('dpop.verify W1'), 1),
      keyImport: round(opUs('dpop.import W1'), 1),
      check: round(opUs('dpop.check W1'), 1),
    },
    verifyOverRaw: round(median(verifyOverRaw), 3),
    verifyOverRawPerRound: verifyOverRaw.map((x) => round(x, 3)),
  }
  return {
    options: raw.options,
    pinned: raw.pinned,
    httpSeconds: round(raw.httpSeconds, 1),
    passportRowsAtEnd: raw.rowsAtEnd,
    http: httpTable,
    inProcess: cryptoTable,
    frame: { ...raw.frame, targetMs: 2, met: frameMet },
    budgets,
    dpop,
    ratios,
    raw: { http: raw.http, inProcess: raw.inproc },
  }
}

export type TokensResult = Awaited<ReturnType<typeof runTokensBench>>

const fmt = (x: number) => Math.round(x).toLocaleString('en-US')
const times = (x: number) => `${x.toFixed(2)}×`

export function tokensMarkdown(result: TokensResult, meta: string): string {
  const o = result.options
  const httpRows = result.http
    .map(
      (r) =>
        `| ${r.case} | ${fmt(r.reqPerSec)} | ${fmt(r.reqPerServerCpuSec)} | ${r.serverCpuUsPerReq} | ${Math.round(r.serverCpuShare * 100)}% | ${Math.round(r.loadCpuShare * 100)}% | ${r.p50Ms} | ${r.p99Ms} | ${r.perRound.join(', ')} |`,
    )
    .join('\n')
  const mintRows = (result.http.find((r) => r.case === 'passport.mint')?.rowsBefore ?? [])
    .map((x) => fmt(x as number))
    .join(', ')
  const cryptoRows = result.inProcess
    .map((r) => `| ${r.case} | ${fmt(r.opsPerSec)} | ${fmt(r.opsPerCpuSec)} | ${r.perRound.join(', ')} |`)
    .join('\n')
  const ratioRows = result.ratios
    .map((r) => {
      const verdict =
        r.target === null
          ? ''
          : `≥ ${r.target}×: ${
              r.met === null
                ? 'not measured'
                : r.met
                  ? '**met**'
                  : r.unreachable
                    ? '**not met, unreachable in Node** (bare node:http below it)'
                    : '**not met**'
            }`
      const ceiling = r.ceiling
        ? `${times(r.ceiling.nodeHttp)}; ${times(r.ceiling.nodeHttpCpu)} | ${times(r.ceiling.hono)}; ${times(r.ceiling.honoCpu)}`
        : ' | '
      return `| ${r.name} | ${times(r.wall)} | ${times(r.cpu)} | ${r.perRound.map((x) => x.toFixed(2)).join(', ')} | ${ceiling} | ${verdict} |`
    })
    .join('\n')
  const f = result.frame
  const d = result.dpop
  return `# Token endpoints, verification and the frame cache

${meta} Pinned: ${result.pinned ? 'yes (servers and the in-process child on core 0, load generator on core 1)' : 'no (taskset or a second core missing)'}.
${o.rounds} rounds after a warm-up round; per round every case once, shuffled: HTTP cases ${o.httpMs} ms with ${o.concurrency} requests in flight (keep-alive), in-process cases ${o.cryptoMs} ms. HTTP part took ${result.httpSeconds} s.

## HTTP (one server process on one core)

| case | req/s | req per server CPU-s | server CPU µs/req | server CPU | load-gen CPU | p50 ms | p99 ms | req/s per round |
|---|---|---|---|---|---|---|---|---|
${httpRows}

- passport.mint: \`POST /api/frame/token\` with \`grant_type=refresh_token\`, the frame's headers and a DPoP proof (\`DPoP\` header, ES256, with the server's latest \`DPoP-Nonce\`) by the key its family is bound to; ${o.concurrency} lanes, each taking ${o.familiesPerLane} refresh families (frames) in turn and chaining each (every request presents the credential the previous answer of that family gave).
- before.mint: the same refreshes without a proof (bearer) against the passport before DPoP (commit ${BEFORE_COMMIT}, its own checkout and process); see the DPoP section.
- passport.mint.pg: the same as passport.mint against the same code on the PostgreSQL store (\`PASSPORT_DATABASE_URL\`; a database of its own on the local server, created for the run and dropped after; its own server child on the same core; PostgreSQL's own processes are not pinned and their CPU is not counted in the server figures). Answers \`503 temporarily_unavailable\` (a transaction that kept failing to serialise, or no connection within 1 s) are not counted, and the lane goes on with the same credential (nothing was committed); per round: ${result.http.find((r) => r.case === 'passport.mint.pg')?.unavailable?.join(', ') ?? '?'}.
- passport.mint.users: the same as passport.mint with one user per lane (${o.concurrency} users, each with one session and their lane's families).
- Every mint leaves a token row that stays live (not revoked) until sign-out, and moves its refresh family's one row on in place (issue 15: no row per refresh credential; the credentials are derived, not stored); newest-wins (\`revokeOtherDevices\`) scans the user's live rows on a new sign-in only, not on a refresh. alice's live token rows + refresh families when each passport.mint case started: ${mintRows}. Rows at the end: ${result.passportRowsAtEnd ? `${fmt(result.passportRowsAtEnd.tokens)} tokens, ${fmt(result.passportRowsAtEnd.refresh)} refresh families, store ${(result.passportRowsAtEnd.storeBytes / 2 ** 20).toFixed(1)} MiB` : '?'}.
- passport.introspect: \`POST /token/introspect\`, Basic site credentials, a live token: the token row and its holder found by the jti the token claims (one joined read, then kept in memory until a revocation or another connection's commit), the token's SHA-256 compared with the one kept on the row (no signature check for a token we minted). The same token every time, as a site backend introspecting the token of each API call sends it: after the first request the row comes from memory (bench/README.md gives the uncached cost).
- ceiling.node-http: a bare \`node:http\` server that reads the body and answers \`${BARE_ANSWER}\` (200, keep-alive); ceiling.hono: a bare Hono app on \`@hono/node-server\` doing the same (\`c.req.text()\`, \`c.json\`), served as the passport serves its app. Both get the introspection request (same headers and body), in the same rounds, on the same core, from the same load generator. Nothing a Node server does per request can be cheaper, so a target above bare node:http's figure is out of reach for any Node HTTP server on this machine. When the load generator's core is the limit (its CPU near 100 %), the wall figure understates the server: its req per server CPU-s is then the better estimate of one core's capacity.
- ceiling.mint-floor: the least a durable, DPoP-bound mint can do, as a bare Hono app (\`startMintFloor\` in bench/tokens-child.ts): read the frame's JSON body, check the \`DPoP\` proof's ES256 signature by its own key (imported once per key), the key's thumbprint, sign one Ed25519 token, insert one row into SQLite (WAL, \`synchronous = NORMAL\`, group-committed per event-loop turn, as the passport's store) before answering. No nonce, replay cache, claim checks, refresh state, logging or security headers: a lower bound for passport.mint. Same requests as passport.mint but for the refresh chain (a fixed body; a fresh proof by lane i's key each time).
- oidc.*: node-oidc-provider 9.13.3, client_credentials with \`client_secret_basic\`; opaque access token (in-memory adapter), or with \`resource=${OIDC_JWT_RESOURCE}\` an EdDSA (Ed25519) JWT access token. Introspection of an opaque token. oidc.token.jwt.dpop: the JWT grant with an ES256 DPoP proof on every request (one key per lane, a fresh \`jti\` each time, signed by the load generator): the provider verifies it and binds the token (\`token_type: DPoP\`), the proof work the passport's mint also does.

## In-process (one child on one core; Ed25519 tokens, ES256 proofs)

| case (W = operations in flight) | ops/s | ops per CPU-s | ops/s per round |
|---|---|---|---|
${cryptoRows}

jose.*: raw jose 6 (\`SignJWT\` with the same header and claims as a site token / \`jwtVerify(token, key, {algorithms})\`). node.sign: \`crypto.sign(null, input, key)\` on the same signing input. passport.sign: \`signSiteToken\`. passport.verify: \`verifySiteToken\` (all its checks). sdk.verify: the site SDK's \`createSiteVerifier().verify()\` with its JWKS fetched and its revocation cache warm (its \`fetch\` calls are counted: none while timing). node.es256.verify: \`crypto.verify('sha256', …, {dsaEncoding: 'ieee-p1363'})\` of a refresh's DPoP proof with its imported key; dpop.verify: \`verifyDpopProof\` on the same proof; dpop.import: \`createPublicKey\` of its JWK (what a key missing from the cache adds); dpop.check: \`createDpopProofs().check\` on fresh proofs made before the timer starts.

## Frame cache answer (headless Chromium)

Signed in on News; ${f.n} sequential \`token_request\` postMessage round trips from the page to the passport frame (after 20 untimed).

| n | median ms | p90 ms | min ms | max ms | network requests while timing |
|---|---|---|---|---|---|
| ${f.n} | ${f.medianMs} | ${f.p90Ms} | ${f.minMs} | ${f.maxMs} | ${f.requestsDuringTiming} |

Target ≤ 2 ms (median), answered from the cache with no request: **${f.met ? 'met' : 'not met'}**.

## CPU budget per request (median server CPU µs per request; in-process µs per operation)

What one request may cost the server to meet each HTTP target, what Passport spends now, what a bare node:http server (bare Hono) spends answering a request with no work at all, and what would be left for the work itself: to set against one Ed25519 signature with node:crypto, measured in the same run.

| target | allowed µs/req | Passport µs/req | bare node:http | bare Hono | left for the work | one Ed25519 sign |
|---|---|---|---|---|---|---|
${result.budgets.map((b) => `| ${b.target} | ${b.allowedUs} | ${b.passportUs} | ${b.bareNodeHttpUs} | ${b.bareHonoUs} | ${b.leftUs} | ${b.ed25519SignUs} |`).join('\n')}

## DPoP: a refresh with a proof vs the bearer refresh before it (issue 13)

passport.mint (this code: every refresh carries a DPoP proof by its family's key, checked with the server nonce and the replay cache) against before.mint (the passport of commit ${BEFORE_COMMIT}, the parent of the DPoP change, run from its own checkout as one more server child on the same core, in the same shuffled rounds, sent the same chained refreshes without a proof by the same load generator). ${o.concurrency} lanes × ${o.familiesPerLane} families each (each family its own frame key, taken in turn: the frame API allows a key 60 requests a minute) on both servers. Proofs are signed by the load generator (its CPU); the server's CPU pays for checking them. Cost ratio = after / before per request: server CPU µs per refresh, and wall time (before's req/s over after's); median of per-round ratios.

| figure | after (DPoP) | before (bearer) | after − before (median per round) | cost ratio, per server CPU-s | cost ratio, wall | per round (CPU-s) | per round (wall) | goal |
|---|---|---|---|---|---|---|---|---|
| server CPU µs per refresh | ${d.refresh.afterUs} | ${d.refresh.beforeUs} | ${d.refresh.extraUs} | ${times(d.refresh.cpu)} | ${times(d.refresh.wall)} | ${d.refresh.perRoundCpu.map((x) => x.toFixed(2)).join(', ')} | ${d.refresh.perRoundWall.map((x) => x.toFixed(2)).join(', ')} | ≤ ${d.refresh.target}×: ${d.refresh.met === null ? 'not measured' : d.refresh.met ? '**met**' : '**not met**'} |

Proof checks in-process (one child, µs of CPU per call, medians): raw node:crypto ES256 verify ${d.perCallUs.es256Verify} µs; \`verifyDpopProof\` (every check of a proof, its key found by thumbprint in the cache) ${d.perCallUs.verifyDpopProof} µs (${times(d.verifyOverRaw)} the raw verify; per round ${d.verifyOverRawPerRound.map((x) => x.toFixed(2)).join(', ')}); importing a key not in the cache (\`createPublicKey\` from the JWK) adds ${d.perCallUs.keyImport} µs; the frame API's whole check (\`createDpopProofs().check\`: the proof, the server nonce's HMACs, the replay cache; a fresh proof each call) ${d.perCallUs.check} µs.

## Ratios (median of per-round ratios)

"bare node:http / bare Hono in its place": the same ratio with the ceiling server as the numerator (wall; per server CPU-s), the most a Node server (a Hono app) could reach against the same denominator. A target is called unreachable only when bare node:http is below it by both measures.

| ratio | wall req/s | per CPU-second | per round (wall) | bare node:http in its place | bare Hono in its place | target |
|---|---|---|---|---|---|---|
${ratioRows}
`
}
