import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { BEFORE_COMMIT, beforeCheckout } from './before.ts'
import { type FrameKeyJwk, newFrameKeyJwk, thumbprint } from './dpop-client.ts'
import { attachChild, canPin, type Child as IpcChild } from './ipc.ts'
import {
  BENCH_ISSUER,
  type ConnectResult,
  type FrameStats,
  type HeapReport,
  type PreparedSession,
  type Role,
  type ServerInfo,
  SITES,
  type SignoutResult,
  type SiteId,
  type SocketItem,
  type Usage,
} from './live-child.ts'
import { quantile, round, shuffled } from './stats.ts'

/**
 * `npm run bench -- live`: the live channel (`/live`, WebSockets) of one passport process.
 *
 * - Sign-out → delivery latency at 1k and 10k connected sockets: sign-outs through the frame's
 *   logout endpoint (spread over a few seconds, and a burst), and a bulk revocation in-process;
 *   time from the sign-out request to the arrival of `session_event` at every affected socket.
 * - The same sign-outs against frames that poll `/api/frame/check` every 5 s instead (1k).
 * - Memory per idle connection, and the most idle connections one server process holds.
 *
 * The server is a child pinned to core 0, the clients children pinned to core 1 (`taskset`,
 * when there is one); loopback only; everything bounded in count and time.
 */

const CHILD_FILE = path.join(import.meta.dirname, 'live-child.ts')
const CALL_TIMEOUT_MS = 120_000
/** Sockets one client process holds at most (its fd limit here is 20,000). */
const SOCKETS_PER_CLIENT = 12_000
/** Sessions per `prepare` / `connect` call: keeps IPC messages small. */
const CHUNK_SESSIONS = 2_000
/** Capacity: sockets connected and dropped before memory is measured (see `capacity`). */
const WARMUP_SOCKETS = 2_000

export interface LiveOptions {
  /** Connected sockets for the latency cases (each session holds one socket per site: 2). */
  sizes: number[]
  /** Sign-outs of the spread case: sessions/5, at most this many. */
  maxSpread: number
  spreadMs: number
  /** Sessions of the bulk cases, as a share of the connected sessions. */
  bulkShare: number
  /** Polling frames (2 per session) and their period. */
  pollFrames: number
  pollMs: number
  /** Capacity: targets stepped through until the server stops taking more. */
  steps: number[]
  /** Capacity: how long the largest count is held idle (across a heartbeat: 30 s). */
  holdMs: number
  /** The whole run stops stepping past this (seconds). */
  budgetS: number
  /** Which parts run: \`auth\` (socket authentication vs tickets), \`latency\`, \`capacity\`. */
  parts: string[]
  /** auth: rounds, sockets per case, and sockets opened at once (each a case). */
  authRounds: number
  authSockets: number
  authInFlight: number[]
}

const list = (s: string | undefined, d: number[]) =>
  s
    ? s
        .split(',')
        .map(Number)
        .filter((x) => x > 0)
    : d

export function liveOptionsFromEnv(env = process.env): LiveOptions {
  return {
    sizes: list(env.BENCH_LIVE_SIZES, [1000, 10_000]),
    maxSpread: Number(env.BENCH_LIVE_SPREAD ?? 200),
    spreadMs: Number(env.BENCH_LIVE_SPREAD_MS ?? 4000),
    bulkShare: Number(env.BENCH_LIVE_BULK_SHARE ?? 0.1),
    pollFrames: Number(env.BENCH_LIVE_POLL_FRAMES ?? 1000),
    pollMs: Number(env.BENCH_LIVE_POLL_MS ?? 5000),
    steps: list(env.BENCH_LIVE_STEPS, [10_000, 20_000, 30_000, 50_000]),
    holdMs: Number(env.BENCH_LIVE_HOLD_MS ?? 35_000),
    budgetS: Number(env.BENCH_LIVE_BUDGET_S ?? 300),
    parts: (env.BENCH_LIVE_PARTS ?? 'auth,latency,capacity').split(',').filter(Boolean),
    authRounds: Number(env.BENCH_LIVE_AUTH_ROUNDS ?? 5),
    authSockets: Number(env.BENCH_LIVE_AUTH_SOCKETS ?? 400),
    authInFlight: list(env.BENCH_LIVE_AUTH_INFLIGHT, [1, 16]),
  }
}

// ---------------------------------------------------------------------------------------------
// child processes

type Child = IpcChild<Role>

/** `childFile`: another checkout's live-child.ts (the code before DPoP) in place of this one's. */
export function spawnChild(
  role: Role,
  core: number | null,
  nodeFlags: string[] = [],
  childFile = CHILD_FILE,
): Child {
  const argv = [
    ...(core === null ? [] : ['taskset', '-c', String(core)]),
    process.execPath,
    ...nodeFlags,
    childFile,
    role,
  ]
  // The soft fd limit raised to the hard one; `exec` all the way, so the pid is node's.
  const proc: ChildProcess = spawn(
    'sh',
    ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...argv],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  )
  return attachChild(proc, role, CALL_TIMEOUT_MS)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** VmRSS of a process, read by the parent (the server may have no fd left to read it itself). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : Number.NaN
}
function fdsOf(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length
}
export function nofileOf(pid: number): { soft: number; hard: number } {
  const m = /Max open files\s+(\S+)\s+(\S+)/.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'))
  return { soft: Number(m?.[1]), hard: Number(m?.[2]) }
}

/** Server memory after full GCs: RSS after regular ones (with the GC's slack), then after last-resort ones. */
export async function memoryOf(server: Child, pid: number) {
  await server.call<HeapReport>('heap', { flavor: 'regular' })
  const rssRegularGc = rssOf(pid)
  const heap = await server.call<HeapReport>('heap', { flavor: 'last-resort' })
  return { heap, rss: rssOf(pid), rssRegularGc }
}

/**
 * The clock: `process.hrtime.bigint()` is CLOCK_MONOTONIC, one clock for all processes of a
 * Linux machine, so stamps from different children compare directly. Checked, not assumed: a
 * child's reading must fall between the parent's readings just before and after asking.
 */
export async function checkClock(children: Child[]) {
  let worstUs = 0
  let violations = 0
  for (const c of children) {
    for (let i = 0; i < 20; i++) {
      const before = process.hrtime.bigint()
      const theirs = BigInt(await c.call<string>('clock'))
      const after = process.hrtime.bigint()
      if (theirs < before || theirs > after) violations++
      worstUs = Math.max(worstUs, Number(after - before) / 1000)
    }
  }
  return { samples: children.length * 20, violations, worstRoundTripUs: round(worstUs, 0) }
}

// ---------------------------------------------------------------------------------------------
// a world of sessions and sockets

interface World {
  server: Child
  info: ServerInfo
  clients: { child: Child; localNet: string; sockets: number }[]
  tokens: Map<number, Record<SiteId, string>>
  /** Each frame's key (one per site: the News frame and the Shop frame are partitioned apart). */
  keys: Map<number, Record<SiteId, FrameKeyJwk>>
  /** Sessions whose two frames are connected and not yet signed out. */
  live: number[]
  /** session_events the clients should have received so far (anything more is a false one). */
  expectedEvents: number
}

const keysOf = (sids: number[]) => sids.flatMap((sid) => SITES.map((site) => `${sid}.${site}`))

/** What a frame sends the frame API: its token, proven by its key. */
const frameCall = (world: World, sid: number, site: SiteId) => ({
  key: `${sid}.${site}`,
  jwk: world.keys.get(sid)?.[site] as FrameKeyJwk,
  authkey: world.info.authkeys[site],
  token: world.tokens.get(sid)?.[site] as string,
})

/** Sign-outs from each session's News frame: the session ends, so both its frames are told. */
const newsSignouts = (world: World, sids: number[]) =>
  sids.map((sid) => ({ sid, ...frameCall(world, sid, 'news') }))

/**
 * New signed-in sessions. The frames' keys are made here (node:crypto, P-256) and handed to the
 * client that connects them; the server only ever sees their thumbprints, to bind the tokens.
 */
async function prepare(world: World, count: number): Promise<number[]> {
  const sids: number[] = []
  for (let done = 0; done < count; done += CHUNK_SESSIONS) {
    const keys = Array.from({ length: Math.min(CHUNK_SESSIONS, count - done) }, () => ({
      news: newFrameKeyJwk(),
      shop: newFrameKeyJwk(),
    }))
    const got = await world.server.call<PreparedSession[]>('prepare', {
      jkts: keys.map((k) => ({ news: thumbprint(k.news), shop: thumbprint(k.shop) })),
    })
    got.forEach((s, i) => {
      world.tokens.set(s.sid, s.tokens)
      world.keys.set(s.sid, keys[i] as Record<SiteId, FrameKeyJwk>)
      sids.push(s.sid)
    })
  }
  return sids
}

/** The frames of these sessions, as the client connects them. */
const socketItems = (world: World, sids: number[]): SocketItem[] =>
  sids.flatMap((sid) =>
    SITES.map((site) => ({
      key: `${sid}.${site}`,
      site,
      token: world.tokens.get(sid)?.[site] as string,
      jwk: world.keys.get(sid)?.[site] as FrameKeyJwk,
    })),
  )

interface ConnectTotals {
  opened: number
  failed: number
  failures: Record<string, number>
  ms: number
  serverCpuUs: number
}

/** These sessions' frames, chunk by chunk, each chunk connected at once. */
async function connectSessions(
  world: World,
  sids: number[],
  newClient?: () => Child,
): Promise<ConnectTotals> {
  const totals: ConnectTotals = { opened: 0, failed: 0, failures: {}, ms: 0, serverCpuUs: 0 }
  for (let i = 0; i < sids.length; i += CHUNK_SESSIONS / 2) {
    const chunk = sids.slice(i, i + CHUNK_SESSIONS / 2)
    const items = socketItems(world, chunk)
    let client = world.clients.find((c) => c.sockets + items.length <= SOCKETS_PER_CLIENT)
    if (!client) {
      if (!newClient) throw new Error('no client has room for more sockets')
      client = { child: newClient(), localNet: `127.0.${1 + world.clients.length}`, sockets: 0 }
      world.clients.push(client)
    }
    const u0 = await world.server.call<Usage>('usage')
    const r = await client.child.call<ConnectResult>('connect', {
      url: world.info.url,
      origin: BENCH_ISSUER,
      items,
      localNet: client.localNet,
      inFlight: 200,
    })
    const u1 = await world.server.call<Usage>('usage')
    client.sockets += items.length
    totals.opened += r.opened
    totals.failed += r.failed
    totals.ms += r.ms
    totals.serverCpuUs += u1.cpuUs - u0.cpuUs
    for (const [k, v] of Object.entries(r.failures)) totals.failures[k] = (totals.failures[k] ?? 0) + v
    world.live.push(...chunk)
  }
  return totals
}

async function clientStats(world: World): Promise<FrameStats> {
  const all = await Promise.all(world.clients.map((c) => c.child.call<FrameStats>('stats')))
  const sum = (f: (s: FrameStats) => number) => all.reduce((n, s) => n + f(s), 0)
  return {
    frames: sum((s) => s.frames),
    open: sum((s) => s.open),
    waiting: sum((s) => s.waiting),
    welcomed: sum((s) => s.welcomed),
    events: sum((s) => s.events),
    closed: sum((s) => s.closed),
    closedWithoutEvent: sum((s) => s.closedWithoutEvent),
    duplicateEvents: sum((s) => s.duplicateEvents),
  }
}

/** Waits (bounded) until every open socket has had its welcome: the server is done with it. */
async function settled(world: World, ms = 15_000): Promise<FrameStats> {
  const deadline = performance.now() + ms
  let s = await clientStats(world)
  while (s.waiting > 0 && performance.now() < deadline) {
    await sleep(100)
    s = await clientStats(world)
  }
  return s
}

/** Tops the connected sockets up to `target` with new sessions. */
async function fillTo(world: World, target: number, newClient?: () => Child) {
  const s = await clientStats(world)
  const sessions = Math.ceil(Math.max(0, target - s.open) / SITES.length)
  const sids = await prepare(world, sessions)
  const totals = await connectSessions(world, sids, newClient)
  if (totals.failed > 0 && !newClient) {
    throw new Error(`${totals.failed} sockets failed to connect: ${JSON.stringify(totals.failures)}`)
  }
  return { totals, stats: await settled(world) }
}

// ---------------------------------------------------------------------------------------------
// latency

export type LatencyCase = 'spread' | 'bulk-http' | 'bulk-server'

/** How long a push took to arrive, over every affected socket (or polling frame). */
export interface Arrival {
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  minMs: number
}

const arrivalOf = ({ p50Ms, p90Ms, p99Ms, maxMs, minMs }: Arrival): Arrival => ({
  p50Ms,
  p90Ms,
  p99Ms,
  maxMs,
  minMs,
})

export interface LatencyRow extends Arrival {
  connected: number
  case: LatencyCase
  sessions: number
  sockets: number
  delivered: number
  missing: number
  reasons: Record<string, number>
  /** spread / bulk-http: answer times of the logout requests; bulk-server: the endSession loop. */
  requestP50Ms: number
  requestMaxMs: number
  samplesMs: number[]
}

const ms = (a: bigint, b: bigint) => Number(a - b) / 1e6

function latencyRow(
  connected: number,
  kind: LatencyCase,
  sids: number[],
  t0: Map<number, bigint>,
  got: { at: Record<string, string | null>; reasons: Record<string, number> },
  requestMs: number[],
): LatencyRow {
  const samples: number[] = []
  let missing = 0
  for (const sid of sids) {
    for (const site of SITES) {
      const at = got.at[`${sid}.${site}`]
      const start = t0.get(sid)
      if (!at || start === undefined) missing++
      else samples.push(ms(BigInt(at), start))
    }
  }
  const q = (p: number) => round(quantile(samples, p), 1)
  return {
    connected,
    case: kind,
    sessions: sids.length,
    sockets: sids.length * SITES.length,
    delivered: samples.length,
    missing,
    reasons: got.reasons,
    p50Ms: q(0.5),
    p90Ms: q(0.9),
    p99Ms: q(0.99),
    maxMs: round(Math.max(...samples), 1),
    minMs: round(Math.min(...samples), 1),
    requestP50Ms: round(quantile(requestMs, 0.5), 1),
    requestMaxMs: round(Math.max(...requestMs), 1),
    samplesMs: samples.map((x) => round(x, 2)),
  }
}

async function latencyCase(
  world: World,
  connected: number,
  kind: LatencyCase,
  count: number,
  spreadMs: number,
): Promise<LatencyRow> {
  const client = world.clients[0]
  if (!client) throw new Error('no client')
  world.live = shuffled(world.live)
  const sids = world.live.splice(0, count)
  const keys = keysOf(sids)
  const t0 = new Map<number, bigint>()
  let requestMs: number[] = []
  if (kind === 'bulk-server') {
    const r = await world.server.call<{ t0: string; t1: string }>('endSessions', { sids })
    for (const sid of sids) t0.set(sid, BigInt(r.t0))
    requestMs = [ms(BigInt(r.t1), BigInt(r.t0))]
  } else {
    // Signed out from the News frame: the session ends, so both its frames (News, Shop) are told.
    const r = await client.child.call<SignoutResult>('signout', {
      url: world.info.url,
      origin: BENCH_ISSUER,
      items: newsSignouts(world, sids),
      mode: kind === 'spread' ? 'spread' : 'burst',
      spreadMs,
      maxSockets: 64,
    })
    if (r.bad > 0) throw new Error(`${kind}: ${r.bad} sign-outs failed, first: ${r.firstBad}`)
    for (const [sid, at] of Object.entries(r.t0)) t0.set(Number(sid), BigInt(at))
    requestMs = r.httpMs
  }
  const got = await client.child.call<{ at: Record<string, string | null>; reasons: Record<string, number> }>(
    'receipts',
    { keys, timeoutMs: 10_000 },
  )
  await client.child.call('forget', { keys })
  const row = latencyRow(connected, kind, sids, t0, got, requestMs)
  world.expectedEvents += row.delivered
  return row
}

// ---------------------------------------------------------------------------------------------
// polling baseline

export interface PollingResult extends Arrival {
  frames: number
  periodMs: number
  sessions: number
  affected: number
  seen: number
  missing: number
  reasons: Record<string, number>
  checks: number
  checkBad: number
  checkP50Ms: number
  checkP99Ms: number
  /** Frames that saw their token invalid without having been signed out (must be 0). */
  falseEnds: number
  /** Server CPU over one whole period of polling with no sign-outs, ms per second. */
  serverCpuMsPerS: number
  wallS: number
  samplesMs: number[]
}

async function pollingBaseline(world: World, options: LiveOptions, signouts: number): Promise<PollingResult> {
  const client = world.clients[0]
  if (!client) throw new Error('no client')
  const started = performance.now()
  const sids = await prepare(world, Math.ceil(options.pollFrames / SITES.length))
  const items = sids.flatMap((sid) => SITES.map((site) => frameCall(world, sid, site)))
  await client.child.call('pollStart', {
    url: world.info.url,
    origin: BENCH_ISSUER,
    items,
    periodMs: options.pollMs,
  })
  // A first period to warm up (every frame polls once), then the server's cost of a whole period
  // of polling with no sign-out.
  await sleep(options.pollMs)
  const u0 = await world.server.call<Usage>('usage')
  await sleep(options.pollMs)
  const u1 = await world.server.call<Usage>('usage')
  const serverCpuMsPerS = (u1.cpuUs - u0.cpuUs) / 1000 / (ms(BigInt(u1.now), BigInt(u0.now)) / 1000)
  // The same sign-outs as the push case (spread over one period), then until every frame knows.
  const victims = shuffled(sids).slice(0, signouts)
  const r = await client.child.call<SignoutResult>('signout', {
    url: world.info.url,
    origin: BENCH_ISSUER,
    items: newsSignouts(world, victims),
    mode: 'spread',
    spreadMs: options.pollMs,
    maxSockets: 64,
  })
  if (r.bad > 0) throw new Error(`polling sign-outs: ${r.bad} failed, first: ${r.firstBad}`)
  const got = await client.child.call<{ at: Record<string, string | null>; reasons: Record<string, number> }>(
    'pollWait',
    { keys: keysOf(victims), timeoutMs: options.pollMs + 3000 },
  )
  const stop = await client.child.call<{
    requests: number
    bad: number
    firstBad?: string
    checkMs: number[]
    sawInvalid: number
  }>('pollStop')
  const t0 = new Map(Object.entries(r.t0).map(([sid, at]) => [Number(sid), BigInt(at)]))
  const row = latencyRow(items.length, 'spread', victims, t0, got, r.httpMs)
  return {
    frames: items.length,
    periodMs: options.pollMs,
    sessions: victims.length,
    affected: row.sockets,
    seen: row.delivered,
    missing: row.missing,
    reasons: row.reasons,
    ...arrivalOf(row),
    checks: stop.requests,
    checkBad: stop.bad,
    checkP50Ms: round(quantile(stop.checkMs, 0.5), 2),
    checkP99Ms: round(quantile(stop.checkMs, 0.99), 2),
    falseEnds: stop.sawInvalid - row.delivered,
    serverCpuMsPerS: round(serverCpuMsPerS, 1),
    wallS: round((performance.now() - started) / 1000, 1),
    samplesMs: row.samplesMs,
  }
}

// ---------------------------------------------------------------------------------------------
// capacity and memory

export interface CapacityStep {
  target: number
  held: number
  newSockets: number
  failed: number
  failures: Record<string, number>
  connectsPerSec: number
  serverCpuUsPerConnect: number
  rssBytes: number
  usedHeapBytes: number
  externalBytes: number
  heap: HeapReport
  /** (RSS now − RSS before any socket) / held, both after last-resort GCs. */
  rssPerConn: number
  /** The same after regular full GCs (the young generation left at the size it grew to). */
  rssRegularGcBytes: number
  rssRegularGcPerConn: number
  heapPerConn: number
  /** (RSS now − RSS at the previous step) / sockets this step added: the marginal cost. */
  rssPerNewConn: number
  heapPerNewConn: number
  serverFds: number
  clients: number
  seconds: number
}

export interface CapacityResult {
  serverNofile: { soft: number; hard: number }
  before: {
    heap: HeapReport
    rssBytes: number
    rssRegularGcBytes: number
    usedHeapBytes: number
    externalBytes: number
    serverFds: number
  }
  steps: CapacityStep[]
  /** Why stepping stopped. */
  stoppedBecause: string
  /** A plain HTTP request to the server while it holds the most sockets. */
  httpAtMax: string
  maxHeld: number
  hold: {
    ms: number
    heldAfter: number
    closedWithoutEvent: number
    rssBytes: number
    rssPerConn: number
  } | null
}

async function capacity(world: World, options: LiveOptions, deadline: number, newClient: () => Child) {
  const pid = world.info.pid
  const serverNofile = nofileOf(pid)
  const firstTarget = options.steps[0] ?? 10_000
  // Every session of the first step prepared before measuring "before": only sockets differ.
  const firstSids = await prepare(world, Math.ceil(firstTarget / SITES.length))
  // Warm-up: 2,000 sockets connected, then dropped. What the first connections cost once (code
  // compiled, the young generation grown to its working size, buffers pooled) is then in
  // "before", and what the steps add is what each held connection costs.
  const warm = await prepare(world, WARMUP_SOCKETS / SITES.length)
  await connectSessions(world, warm, newClient)
  await settled(world)
  await Promise.all(world.clients.map((c) => c.child.call('forget', { keys: keysOf(warm) })))
  for (const c of world.clients) c.sockets = 0
  await sleep(1000)
  const m0 = await memoryOf(world.server, pid)
  const heap0 = m0.heap
  const before = {
    heap: heap0,
    rssBytes: m0.rss,
    rssRegularGcBytes: m0.rssRegularGc,
    usedHeapBytes: heap0.usedHeap,
    externalBytes: heap0.external,
    serverFds: fdsOf(pid),
  }
  const steps: CapacityStep[] = []
  let stoppedBecause = 'every step done'
  let held = 0
  for (const target of options.steps) {
    if (performance.now() > deadline) {
      stoppedBecause = `time budget (${options.budgetS} s) reached before ${target}`
      break
    }
    const started = performance.now()
    const sids =
      steps.length === 0 ? firstSids : await prepare(world, Math.ceil((target - held) / SITES.length))
    const totals = await connectSessions(world, sids, newClient)
    const s = await settled(world)
    await sleep(2000)
    const { heap, rss, rssRegularGc } = await memoryOf(world.server, pid)
    const after = await clientStats(world)
    const newSockets = after.open - held
    const previous = steps.at(-1) ?? { rssBytes: before.rssBytes, usedHeapBytes: before.usedHeapBytes }
    held = after.open
    steps.push({
      target,
      held,
      newSockets,
      failed: totals.failed,
      failures: totals.failures,
      connectsPerSec: round(totals.opened / (totals.ms / 1000), 0),
      serverCpuUsPerConnect: round(totals.serverCpuUs / Math.max(1, totals.opened), 0),
      rssBytes: rss,
      usedHeapBytes: heap.usedHeap,
      externalBytes: heap.external,
      heap,
      rssPerConn: round((rss - before.rssBytes) / held, 0),
      rssRegularGcBytes: rssRegularGc,
      rssRegularGcPerConn: round((rssRegularGc - before.rssRegularGcBytes) / held, 0),
      heapPerConn: round((heap.usedHeap - before.usedHeapBytes) / held, 0),
      rssPerNewConn: round((rss - previous.rssBytes) / Math.max(1, newSockets), 0),
      heapPerNewConn: round((heap.usedHeap - previous.usedHeapBytes) / Math.max(1, newSockets), 0),
      serverFds: fdsOf(pid),
      clients: world.clients.length,
      seconds: round((performance.now() - started) / 1000, 1),
    })
    process.stdout.write(
      `capacity ${target}: held ${held} (${totals.failed} failed ${JSON.stringify(totals.failures)}), RSS ${(rss / 2 ** 20).toFixed(0)} MiB, ${steps.at(-1)?.rssPerConn} B/conn, welcomed ${s.welcomed}\n`,
    )
    if (totals.failed > 0) {
      stoppedBecause = `the server took no more: ${fmt(totals.failed)} of the sockets to reach ${fmt(target)} failed (${reasons(totals.failures)}) with ${fmt(fdsOf(pid))} fds open in the server, its limit ${fmt(serverNofile.soft)}`
      break
    }
  }
  // With every fd taken by sockets, can the passport still answer plain HTTP (a sign-in, a refresh)?
  const httpAtMax = await fetch(`${world.info.url}/.well-known/jwks.json`, {
    signal: AbortSignal.timeout(3000),
  }).then(
    (res) => `HTTP ${res.status}`,
    (err: Error) => `failed: ${String((err.cause as { code?: string })?.code ?? err.message)}`,
  )
  let hold: CapacityResult['hold'] = null
  if (options.holdMs > 0 && held > 0) {
    // Held idle across a heartbeat (the server pings every 30 s and drops who does not answer).
    await sleep(options.holdMs)
    const { rss } = await memoryOf(world.server, pid)
    const s = await clientStats(world)
    hold = {
      ms: options.holdMs,
      heldAfter: s.open,
      closedWithoutEvent: s.closedWithoutEvent,
      rssBytes: rss,
      rssPerConn: round((rss - before.rssBytes) / Math.max(1, s.open), 0),
    }
  }
  return {
    serverNofile,
    before,
    steps,
    stoppedBecause,
    httpAtMax,
    maxHeld: Math.max(0, ...steps.map((s) => s.held)),
    hold,
  } satisfies CapacityResult
}

// ---------------------------------------------------------------------------------------------
// authenticating a socket: on the socket (this code) vs a ticket request (the code before DPoP)

export type AuthWay = 'challenge' | 'ticket'

export interface AuthSample {
  way: AuthWay
  inFlight: number
  sockets: number
  /** Server CPU (all threads) over the case, per socket welcomed. */
  serverCpuUsPerSocket: number
  /** From wanting the socket to its \`welcome\`, per socket. */
  p50Ms: number
  p90Ms: number
  /** The whole case's wall time per socket (the rate at this many in flight). */
  wallMsPerSocket: number
}

export interface AuthRatio {
  inFlight: number
  /** challenge / ticket, median of per-round ratios. */
  cpu: number
  p50: number
  wall: number
  perRoundCpu: number[]
  perRoundP50: number[]
}

export interface AuthResult {
  rounds: number
  sockets: number
  samples: AuthSample[]
  ratios: AuthRatio[]
}

/**
 * What it costs to get an authenticated socket, per connection, this code against the code
 * before DPoP, in the same shuffled rounds: two servers pinned to the same core (this checkout's
 * and the one of ${BEFORE_COMMIT}), one client on the other core. From "want a socket" to its
 * \`welcome\`: here, the upgrade, the server's challenge, the frame's proof (signed by the
 * client) and the server's check of it with the token; before, \`POST /api/frame/live-ticket\`
 * (keep-alive), then the upgrade with the ticket. The sockets of a case stay open until its CPU
 * is read, then are closed before the next case.
 */
async function authCost(
  options: LiveOptions,
  child: (role: Role, core: number | null, flags?: string[], file?: string) => Child,
  cores: { server: number | null; client: number | null },
  beforeFile: string,
): Promise<AuthResult> {
  const after = child('server', cores.server)
  const before = child('server', cores.server, [], beforeFile)
  const client = child('client', cores.client)
  const afterInfo = await after.call<ServerInfo>('start')
  const beforeInfo = await before.call<ServerInfo>('start')
  const world: World = {
    server: after,
    info: afterInfo,
    clients: [],
    tokens: new Map(),
    keys: new Map(),
    live: [],
    expectedEvents: 0,
  }
  const sessions = Math.ceil(options.authSockets / SITES.length)
  const afterItems = socketItems(world, await prepare(world, sessions))
  // The code before DPoP prepares sessions by count, its tokens bound to no key.
  const beforeItems: SocketItem[] = (
    await before.call<PreparedSession[]>('prepare', { count: sessions })
  ).flatMap((x) =>
    SITES.map((site) => ({
      key: `before.${x.sid}.${site}`,
      site,
      token: x.tokens[site],
      authkey: beforeInfo.authkeys[site],
    })),
  )
  const cases = options.authInFlight.flatMap((inFlight) =>
    (['challenge', 'ticket'] as const).map((way) => ({ way, inFlight })),
  )
  const samples: AuthSample[] = []
  // Round 0 warms up (compiled code, the store's pages, the client's keys imported), discarded.
  for (let r = 0; r <= options.authRounds; r++) {
    const line: string[] = []
    for (const c of shuffled(cases)) {
      const server = c.way === 'challenge' ? after : before
      const info = c.way === 'challenge' ? afterInfo : beforeInfo
      const items = c.way === 'challenge' ? afterItems : beforeItems
      const u0 = await server.call<Usage>('usage')
      const res = await client.call<ConnectResult>('connect', {
        url: info.url,
        origin: BENCH_ISSUER,
        items,
        mode: c.way,
        localNet: '127.0.1',
        inFlight: c.inFlight,
      })
      const u1 = await server.call<Usage>('usage')
      if (res.failed > 0)
        throw new Error(`auth ${c.way}: ${res.failed} sockets failed: ${JSON.stringify(res.failures)}`)
      await client.call('forget', { keys: items.map((x) => x.key) })
      await sleep(300) // the server closes them before the next case is measured
      const sample: AuthSample = {
        ...c,
        sockets: res.opened,
        serverCpuUsPerSocket: round((u1.cpuUs - u0.cpuUs) / res.opened, 1),
        p50Ms: round(quantile(res.welcomeMs, 0.5), 3),
        p90Ms: round(quantile(res.welcomeMs, 0.9), 3),
        wallMsPerSocket: round(res.ms / res.opened, 3),
      }
      if (r > 0) samples.push(sample)
      line.push(`${c.way} W${c.inFlight} ${sample.serverCpuUsPerSocket} µs, p50 ${sample.p50Ms} ms`)
    }
    process.stdout.write(`auth ${r === 0 ? 'warm-up' : `round ${r}`}: ${line.join('; ')}\n`)
  }
  await Promise.all([after.stop(), before.stop(), client.stop()])
  const ratios = options.authInFlight.map((inFlight) => {
    const of = (way: AuthWay) => samples.filter((x) => x.way === way && x.inFlight === inFlight)
    const [n, o] = [of('challenge'), of('ticket')]
    const per = (f: (x: AuthSample) => number) => n.map((x, i) => f(x) / f(o[i] as AuthSample))
    const perRoundCpu = per((x) => x.serverCpuUsPerSocket)
    const perRoundP50 = per((x) => x.p50Ms)
    return {
      inFlight,
      cpu: round(quantile(perRoundCpu, 0.5), 3),
      p50: round(quantile(perRoundP50, 0.5), 3),
      wall: round(
        quantile(
          per((x) => x.wallMsPerSocket),
          0.5,
        ),
        3,
      ),
      perRoundCpu: perRoundCpu.map((x) => round(x, 3)),
      perRoundP50: perRoundP50.map((x) => round(x, 3)),
    }
  })
  return { rounds: options.authRounds, sockets: options.authSockets, samples, ratios }
}

// ---------------------------------------------------------------------------------------------
// the run

export interface SitesOfProbe {
  msPerCall: number
  tokenRows: number
  plan: string
}

export interface IdleCpu {
  connected: number
  serverCpuMsPerS: number
}

export async function runLiveBench(options: LiveOptions) {
  const pinned = canPin()
  const serverCore = pinned ? 0 : null
  const clientCore = pinned ? 1 : null
  const started = performance.now()
  const deadline = started + options.budgetS * 1000
  const children: Child[] = []
  const child = (role: Role, core: number | null, flags: string[] = [], file?: string) => {
    const c = spawnChild(role, core, flags, file)
    children.push(c)
    return c
  }
  const wants = (part: string) => options.parts.includes(part)
  let auth: AuthResult | null = null
  let authLeftOut: string | null = null
  const latency: LatencyRow[] = []
  const idleCpu: IdleCpu[] = []
  let polling: PollingResult | null = null
  let clock: Awaited<ReturnType<typeof checkClock>> | null = null
  let falseEvents = 0
  let unexpectedCloses = 0
  let cap: CapacityResult | null = null
  let sitesOf: SitesOfProbe | null = null
  const log = (s: string) => process.stdout.write(`${s}\n`)
  try {
    // Part 0: authenticating a socket, this code vs the code before DPoP (its own checkout).
    if (wants('auth')) {
      const checkout = beforeCheckout()
      if (checkout.dir === null) authLeftOut = checkout.why
      else {
        const file = path.join(checkout.dir, 'bench', 'live-child.ts')
        auth = await authCost(options, child, { server: serverCore, client: clientCore }, file)
      }
    } else authLeftOut = 'not in BENCH_LIVE_PARTS'

    // Part 1: latency, on one server and one client process.
    if (wants('latency')) {
      const server = child('server', serverCore, ['--expose-gc'])
      const client = child('client', clientCore)
      const info = await server.call<ServerInfo>('start')
      clock = await checkClock([server, client])
      log(`clock: ${JSON.stringify(clock)}`)
      // The frame page carries the server's first DPoP nonce; the client asks for it once.
      await client.call('primeNonce', { url: info.url, origin: BENCH_ISSUER })
      const world: World = {
        server,
        info,
        clients: [{ child: client, localNet: '127.0.1', sockets: 0 }],
        tokens: new Map(),
        keys: new Map(),
        live: [],
        expectedEvents: 0,
      }
      const spreadAt = (size: number) => Math.min(options.maxSpread, Math.floor(size / SITES.length / 5))
      const smallest = Math.min(...options.sizes)

      polling = await pollingBaseline(world, options, spreadAt(options.pollFrames))
      log(`polling: p50 ${polling.p50Ms} ms, p99 ${polling.p99Ms} ms (${polling.seen}/${polling.affected})`)

      for (const size of [...options.sizes].sort((a, b) => a - b)) {
        const filled = await fillTo(world, size)
        log(
          `connected ${filled.stats.open} (${Math.round(filled.totals.opened / (filled.totals.ms / 1000))}/s)`,
        )
        await sleep(1000)
        const u0 = await server.call<Usage>('usage')
        await sleep(size === smallest ? options.pollMs : 2000)
        const u1 = await server.call<Usage>('usage')
        idleCpu.push({
          connected: size,
          serverCpuMsPerS: round(
            (u1.cpuUs - u0.cpuUs) / 1000 / (ms(BigInt(u1.now), BigInt(u0.now)) / 1000),
            2,
          ),
        })
        const sessions = size / SITES.length
        const cases: [LatencyCase, number][] = [
          ['spread', spreadAt(size)],
          ['bulk-http', Math.round(sessions * options.bulkShare)],
          ['bulk-server', Math.round(sessions * options.bulkShare)],
        ]
        for (const [kind, count] of cases) {
          await fillTo(world, size)
          await sleep(500)
          const row = await latencyCase(world, size, kind, count, options.spreadMs)
          latency.push(row)
          log(
            `${size} ${kind} ×${count}: p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, max ${row.maxMs} ms (${row.delivered}/${row.sockets})`,
          )
        }
      }
      sitesOf = await server.call<SitesOfProbe>('probeSitesOf')
      const s = await clientStats(world)
      falseEvents = s.events - world.expectedEvents
      unexpectedCloses = s.closedWithoutEvent
      await Promise.all([server.stop(), client.stop()])
    }

    // Part 2: memory and capacity, on a fresh server, clients added as they fill up.
    if (wants('capacity')) {
      const server = child('server', serverCore, ['--expose-gc'])
      const info = await server.call<ServerInfo>('start')
      const world: World = {
        server,
        info,
        clients: [],
        tokens: new Map(),
        keys: new Map(),
        live: [],
        expectedEvents: 0,
      }
      cap = await capacity(world, options, deadline, () => child('client', clientCore))
    }
  } finally {
    // Whatever happened, every child is told to stop, and killed 5 s later if it has not.
    await Promise.all(children.map((c) => c.stop()))
  }
  return summarize({
    options,
    pinned,
    auth,
    authLeftOut,
    clock,
    latency,
    polling,
    idleCpu,
    falseEvents,
    unexpectedCloses,
    capacity: cap,
    sitesOf,
    seconds: (performance.now() - started) / 1000,
  })
}

// ---------------------------------------------------------------------------------------------
// summary

interface Raw {
  options: LiveOptions
  pinned: boolean
  auth: AuthResult | null
  authLeftOut: string | null
  clock: Awaited<ReturnType<typeof checkClock>> | null
  latency: LatencyRow[]
  polling: PollingResult | null
  idleCpu: IdleCpu[]
  falseEvents: number
  unexpectedCloses: number
  capacity: CapacityResult | null
  sitesOf: SitesOfProbe | null
  seconds: number
}

const LATENCY_TARGET_MS = 250
const HELD_TARGET = 50_000
const BYTES_TARGET = 10 * 1024

function summarize(raw: Raw) {
  const largest = Math.max(...raw.options.sizes)
  const row = (size: number, kind: LatencyCase) =>
    raw.latency.find((r) => r.connected === size && r.case === kind)
  const at10k = row(largest, 'spread')
  const push1k = row(Math.min(...raw.options.sizes), 'spread')
  const cap = raw.capacity
  const at10kMem = cap?.steps.find((s) => s.target === 10_000) ?? cap?.steps[0]
  const latencyMet = at10k ? at10k.p99Ms < LATENCY_TARGET_MS && at10k.missing === 0 : null
  const bulkMet = raw.latency
    .filter((r) => r.connected === largest && r.case !== 'spread')
    .map((r) => ({ case: r.case, sessions: r.sessions, p99Ms: r.p99Ms, met: r.p99Ms < LATENCY_TARGET_MS }))
  const targets = {
    latencyP99: {
      target: `p99 < ${LATENCY_TARGET_MS} ms at ${largest} sockets`,
      measured: at10k?.p99Ms ?? null,
      met: latencyMet,
      bulk: bulkMet,
    },
    maxHeld: {
      target: HELD_TARGET,
      measured: cap?.maxHeld ?? null,
      met: cap ? cap.maxHeld >= HELD_TARGET : null,
    },
    bytesPerConn: {
      target: BYTES_TARGET,
      measuredAt: at10kMem?.held ?? null,
      measured: at10kMem?.rssPerConn ?? null,
      heap: at10kMem?.heapPerConn ?? null,
      regularGc: at10kMem?.rssRegularGcPerConn ?? null,
      /** Sockets added after the first step: what one more held connection costs. */
      marginal: cap?.steps.slice(1).find((s) => s.newSockets > 1000)?.rssPerNewConn ?? null,
      met: at10kMem ? at10kMem.rssPerConn <= BYTES_TARGET : null,
    },
  }
  const ratios =
    push1k && raw.polling
      ? {
          p50: round(push1k.p50Ms / raw.polling.p50Ms, 5),
          p99: round(push1k.p99Ms / raw.polling.p99Ms, 5),
          pollOverPushP50: round(raw.polling.p50Ms / push1k.p50Ms, 0),
          pollOverPushP99: round(raw.polling.p99Ms / push1k.p99Ms, 0),
        }
      : null
  return {
    options: raw.options,
    pinned: raw.pinned,
    seconds: round(raw.seconds, 1),
    auth: raw.auth,
    authLeftOut: raw.authLeftOut,
    clock: raw.clock,
    latency: raw.latency,
    polling: raw.polling,
    pushVsPoll: ratios,
    idleCpu: raw.idleCpu,
    falseEvents: raw.falseEvents,
    unexpectedCloses: raw.unexpectedCloses,
    capacity: cap,
    sitesOf: raw.sitesOf,
    targets,
  }
}

export type LiveResult = Awaited<ReturnType<typeof runLiveBench>>

const fmt = (x: number) => Math.round(x).toLocaleString('en-US')
const mib = (x: number) => (x / 2 ** 20).toFixed(0)
const verdict = (met: boolean | null) => (met === null ? 'not measured' : met ? '**met**' : '**not met**')
const reasons = (r: Record<string, number>) =>
  Object.entries(r)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(', ')

function authSection(result: LiveResult): string {
  const a = result.auth
  if (!a) return `Not measured: ${result.authLeftOut ?? '?'}.`
  const med = (xs: number[]) => round(quantile(xs, 0.5), 3)
  const rows = result.options.authInFlight
    .flatMap((inFlight) =>
      (['challenge', 'ticket'] as const).map((way) => {
        const xs = a.samples.filter((x) => x.way === way && x.inFlight === inFlight)
        return `| ${inFlight} | ${way === 'challenge' ? 'challenge → auth with a proof (this code)' : `ticket request + upgrade (${BEFORE_COMMIT})`} | ${med(xs.map((x) => x.serverCpuUsPerSocket))} | ${med(xs.map((x) => x.p50Ms))} | ${med(xs.map((x) => x.p90Ms))} | ${med(xs.map((x) => x.wallMsPerSocket))} |`
      }),
    )
    .join('\n')
  const ratios = a.ratios
    .map(
      (r) =>
        `| ${r.inFlight} | ${r.cpu.toFixed(2)}× | ${r.p50.toFixed(2)}× | ${r.wall.toFixed(2)}× | ${r.perRoundCpu.map((x) => x.toFixed(2)).join(', ')} | ${r.perRoundP50.map((x) => x.toFixed(2)).join(', ')} |`,
    )
    .join('\n')
  return `Per connection, from "want a socket" to its \`welcome\`. This code: the upgrade (\`GET /live?site=…[&last_event_id=…]\`, sub-protocol \`passport.v2\`), the server's \`challenge\`, the frame's \`auth\` (its token and an ES256 DPoP proof over the challenge and the token, signed by the client), the server's check (proof, token, the key it is bound to), \`welcome\`. Before (the passport of commit ${BEFORE_COMMIT}, its own checkout): \`POST /api/frame/live-ticket\` on a keep-alive connection (token in the body), then the upgrade with the ticket and its registration code, \`welcome\`. Both servers pinned to the same core, the client (one for both) on the other; ${fmt(a.sockets)} sockets per case (${fmt(a.sockets / SITES.length)} sessions × 2 sites), ${a.rounds} rounds after a warm-up round, the cases of a round in shuffled order; a case's sockets are closed after its server CPU is read. A frame that was welcomed before sends the last event id it was told (both ways then read the event log once). Medians over rounds:

| sockets at once | way | server CPU µs per socket | want → welcome p50 ms | p90 ms | wall ms per socket |
|---|---|---|---|---|---|
${rows}

On the socket / ticket request (median of per-round ratios; below 1 is cheaper):

| sockets at once | server CPU per socket | want → welcome p50 | wall per socket | per round (CPU) | per round (p50) |
|---|---|---|---|---|---|
${ratios}`
}

export function liveMarkdown(result: LiveResult, meta: string): string {
  const o = result.options
  const caseText: Record<LatencyCase, string> = {
    spread: `spread over ${o.spreadMs / 1000} s`,
    'bulk-http': 'burst (all at once)',
    'bulk-server': 'bulk, in-process',
  }
  const latencyRows = result.latency
    .map(
      (r) =>
        `| ${fmt(r.connected)} | ${caseText[r.case]} | ${fmt(r.sessions)} | ${fmt(r.sockets)} | ${fmt(r.delivered)} | ${r.p50Ms} | ${r.p90Ms} | ${r.p99Ms} | ${r.maxMs} | ${r.case === 'bulk-server' ? `loop ${r.requestMaxMs} (${round(r.requestMaxMs / r.sessions, 2)} per session)` : `${r.requestP50Ms} / ${r.requestMaxMs}`} |`,
    )
    .join('\n')
  const p = result.polling
  const pollRow = p
    ? `| ${fmt(p.frames)} | ${p.periodMs / 1000} s | ${fmt(p.sessions)} | ${fmt(p.affected)} | ${fmt(p.seen)} | ${fmt(p.p50Ms)} | ${fmt(p.p90Ms)} | ${fmt(p.p99Ms)} | ${fmt(p.maxMs)} | ${fmt(p.checks)} | ${p.checkP50Ms} / ${p.checkP99Ms} | ${p.serverCpuMsPerS} |`
    : '| not measured |'
  const r = result.pushVsPoll
  const push1k = result.latency.find((x) => x.connected === p?.frames && x.case === 'spread')
  const idle = result.idleCpu.map((x) => `${fmt(x.connected)} sockets: ${x.serverCpuMsPerS} ms/s`).join('; ')
  const cap = result.capacity
  const capRows = (cap?.steps ?? [])
    .map(
      (s) =>
        `| ${fmt(s.target)} | ${fmt(s.held)} | ${fmt(s.failed)}${s.failed ? ` (${reasons(s.failures)})` : ''} | ${fmt(s.connectsPerSec)} | ${fmt(s.serverCpuUsPerConnect)} | ${mib(s.rssBytes)} | ${fmt(s.rssPerConn)} | ${fmt(s.heapPerConn)} | ${fmt(s.rssPerNewConn)} / ${fmt(s.heapPerNewConn)} | ${fmt(s.rssRegularGcPerConn)} | ${fmt(s.serverFds)} | ${s.clients} | ${s.seconds} |`,
    )
    .join('\n')
  const t = result.targets
  const bulk = t.latencyP99.bulk
    .map((b) => `${b.case} (${fmt(b.sessions)} sessions) p99 ${b.p99Ms} ms: ${b.met ? 'under' : 'over'}`)
    .join('; ')
  const perConn = t.bytesPerConn.measured ?? Number.NaN
  const c = result.clock
  return `# Live channel: sign-out push latency, polling baseline, idle connections

${meta} Pinned: ${result.pinned ? 'yes (server on core 0, client processes on core 1)' : 'no (taskset or a second core missing)'}. Run took ${result.seconds} s.

## Targets

| target | measured | verdict |
|---|---|---|
| ${t.latencyP99.target} (sign-outs spread over ${o.spreadMs / 1000} s) | p99 ${t.latencyP99.measured} ms | ${verdict(t.latencyP99.met)} |
| (same bound, bulk cases at ${fmt(Math.max(...o.sizes))}) | ${bulk || '—'} | info |
| ≥ ${fmt(HELD_TARGET)} idle connections on one server process | ${fmt(t.maxHeld.measured ?? 0)} held (${cap?.stoppedBecause ?? '?'}) | ${verdict(t.maxHeld.met)} |
| ≤ 10 KiB per idle connection | ${fmt(perConn)} B RSS per connection at ${fmt(t.bytesPerConn.measuredAt ?? 0)} after last-resort GCs (V8 heap ${fmt(t.bytesPerConn.heap ?? Number.NaN)} B of it)${t.bytesPerConn.marginal === null ? '' : `; marginal beyond: ${fmt(t.bytesPerConn.marginal)} B`}; after regular GCs ${fmt(t.bytesPerConn.regularGc ?? Number.NaN)} B | ${verdict(t.bytesPerConn.met)} |

## Authenticating a socket: on the socket vs the ticket request it replaced (issue 13)

${authSection(result)}

## Sign-out → delivery at every affected socket (push)

Each session is one user signed in on two sites, one socket per site (a News frame and a Shop frame); a sign-out ends the session, so both of its sockets are told. Latency: from the moment the sign-out is requested to the arrival of \`session_event\` at the socket.

| connected | sign-outs | sessions | affected sockets | delivered | p50 ms | p90 ms | p99 ms | max ms | request ms (p50 / max) |
|---|---|---|---|---|---|---|---|---|---|
${latencyRows}

- spread: \`POST /api/frame/logout\` with the News frame's token (the frame's sign-out), one by one at even intervals with jitter. burst: the same requests all made at one instant (64 connections). bulk, in-process: the server ends the sessions one after the other with \`endSession\` (reason \`revoked\`: what the account page and the CLI call), timed from the start of the loop.
- Events that reached a socket whose session had not ended: ${fmt(result.falseEvents)}. Sockets closed without an event: ${fmt(result.unexpectedCloses)}.
- Server CPU while idle (no sign-outs; the 250 ms event-log tail and the sweeper included): ${idle}.
${result.sitesOf ? `- Why the bulk cases grow with the store: on every session end the back-channel logout subscriber runs \`sessions.sitesOf\` synchronously inside the publish (before the next sign-out's work), (query plan: ${result.sitesOf.plan}). At the end of these cases: ${round(result.sitesOf.msPerCall, 3)} ms per call with ${fmt(result.sitesOf.tokenRows)} token rows.` : ''}

## Polling baseline (every ${p ? p.periodMs / 1000 : '?'} s, random phase)

The same sign-outs (spread over one period, after two whole periods of polling) against frames that poll \`POST /api/frame/check\` instead of holding a socket; latency: from the sign-out request to the first answer that says the token is no longer valid.

| frames | period | sign-outs | affected frames | saw it | p50 ms | p90 ms | p99 ms | max ms | checks sent | check ms (p50 / p99) | server CPU ms/s |
|---|---|---|---|---|---|---|---|---|---|---|---|
${pollRow}

${r && push1k ? `Push vs poll at ${fmt(push1k.connected)}: p50 ${push1k.p50Ms} ms vs ${fmt(p?.p50Ms ?? 0)} ms (poll ${fmt(r.pollOverPushP50)}× slower), p99 ${push1k.p99Ms} ms vs ${fmt(p?.p99Ms ?? 0)} ms (${fmt(r.pollOverPushP99)}× slower). Polling costs the server ${p?.serverCpuMsPerS} ms CPU per second for ${fmt(p?.frames ?? 0)} frames; ${fmt(push1k.connected)} idle sockets cost ${result.idleCpu.find((x) => x.connected === push1k.connected)?.serverCpuMsPerS ?? '?'} ms/s.` : ''}

## Idle connections: memory and the most one server process holds

A fresh server. Before "before" was measured: every session of the first step prepared, ${fmt(WARMUP_SOCKETS)} sockets connected and dropped (a warm-up: what the first connections cost once, such as compiled code and the young generation grown to its working size, is not charged to the held ones), full GCs: RSS ${mib(cap?.before.rssBytes ?? 0)} MiB, V8 heap used ${mib(cap?.before.usedHeapBytes ?? 0)} MiB, ${fmt(cap?.before.serverFds ?? 0)} fds. Per connection = (now − before) / held, both after two last-resort GCs (\`gc({type: 'major', flavor: 'last-resort'})\`, what V8 does under memory pressure: it also shrinks the young generation); marginal = (now − previous step) / sockets added. The column "after regular GC" is the same after two regular full GCs: the young generation stays at whatever size the connect burst grew it to (it reached ~100 MiB in trials), a cost that does not scale with the connections held. RSS is the server process's (VmRSS); the kernel's socket buffers are not in it. Server fd limit: soft ${fmt(cap?.serverNofile.soft ?? 0)}, hard ${fmt(cap?.serverNofile.hard ?? 0)}. Clients: up to ${fmt(SOCKETS_PER_CLIENT)} sockets per client process, source addresses rotated over 8 loopback addresses per process.

| target | held | failed | connects/s | server CPU µs/connect | server RSS MiB | RSS B/conn | heap B/conn | marginal RSS / heap B/conn | RSS B/conn after regular GC | server fds | client procs | s |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
${capRows}

Stopped: ${cap?.stoppedBecause ?? '?'}. A plain HTTP request (\`GET /.well-known/jwks.json\`) to the server at that point: ${cap?.httpAtMax ?? '?'}.${cap?.hold ? ` Then held idle ${cap.hold.ms / 1000} s (across the server's 30 s heartbeat): ${fmt(cap.hold.heldAfter)} still open, ${fmt(cap.hold.closedWithoutEvent)} closed, RSS ${mib(cap.hold.rssBytes)} MiB = ${fmt(cap.hold.rssPerConn)} B/conn.` : ''}

## Clock

Every stamp is \`process.hrtime.bigint()\` (CLOCK_MONOTONIC, shared by all processes of the machine). Spread and burst: the sign-out is requested and received by the same client process; bulk in-process: stamped in the server at the start of its loop, received in the client. Checked: ${c ? `${c.samples} readings of the children each fell between the parent's readings before and after asking (${c.violations} did not; worst IPC round trip ${c.worstRoundTripUs} µs)` : 'not run'}.
`
}
