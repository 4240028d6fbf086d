import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import WebSocket from 'ws'
import { LIVE_PATH, LIVE_PROTOCOL } from '../passport-frame/src/protocol/live.ts'
import { type FrameKey, type FrameKeyJwk, frameKey, nonceKeeper, wantsNonce } from './dpop-client.ts'
import { post, serveIpc } from './ipc.ts'

/**
 * The child processes of `bench/live.ts`, one role each (argv[2]), driven over IPC:
 *
 * - `server`: the real passport (`listen()` from server.ts: HTTP, the `/live` WebSocket channel,
 *   the event-log tail, the sweeper) on a temp SQLite file. It prepares users, sessions and site
 *   tokens (bound to the frame keys it is given) in-process, ends sessions in-process on
 *   request, and reports its heap. `bench/live.ts` also starts this role from the checkout of
 *   the code before DPoP (its own copy of this file: tokens without keys, live tickets).
 * - `client`: holds the frames' keys and WebSockets (`ws`, no compression): answers each
 *   socket's challenge with its token and a DPoP proof, stamps every `session_event` on
 *   arrival, sends sign-outs (`POST /api/frame/logout`) and runs the polling baseline
 *   (`POST /api/frame/check` every period, random phase), every request with a proof. It also
 *   opens sockets the way before DPoP (a live ticket over HTTP, then the upgrade with it), for
 *   the server of that code.
 *
 * Every timestamp is `process.hrtime.bigint()`: CLOCK_MONOTONIC, one clock for every process of
 * the machine, passed over IPC as a decimal string. Every child exits when the parent goes away
 * (IPC disconnect), and on a hard deadline in any case, so nothing outlives a run.
 */

export type Role = 'server' | 'client'
/** Every child exits after this in any case (\`BENCH_CHILD_DEADLINE_MS\`, default 10 minutes). */
const CHILD_DEADLINE_MS = Number(process.env.BENCH_CHILD_DEADLINE_MS ?? 10 * 60_000)
export interface Usage {
  cpuUs: number
  /** The kernel's part of `cpuUs` (syscalls: sockets to PostgreSQL, Redis and the clients). */
  systemUs: number
  /** Context switches: waits that blocked (voluntary), and preemptions (involuntary). */
  voluntarySwitches: number
  involuntarySwitches: number
  now: string
}

/** The passport's public origin (the tokens' `iss`, the `Origin` the frame sends): a name only. */
export const BENCH_ISSUER = 'http://passport.localhost:18500'
export const SITES = ['news', 'shop'] as const
export type SiteId = (typeof SITES)[number]
const SITE_ORIGINS: Record<SiteId, string> = {
  news: 'http://news.localhost:18501',
  shop: 'http://shop.localhost:18502',
}

const now = () => process.hrtime.bigint()
const usage = (): Usage => {
  const u = process.resourceUsage()
  return {
    cpuUs: u.userCPUTime + u.systemCPUTime,
    systemUs: u.systemCPUTime,
    voluntarySwitches: u.voluntaryContextSwitches,
    involuntarySwitches: u.involuntaryContextSwitches,
    now: String(now()),
  }
}

// ---------------------------------------------------------------------------------------------
// server

export interface ServerInfo {
  url: string
  issuer: string
  /** Empty on an instance started with `seed: false` (the seeding one's are the same). */
  authkeys: Record<SiteId, string>
  clientSecrets: Record<SiteId, string>
  pid: number
}

/** One prepared session: its number, and the site token of each site (as each frame holds). */
export interface PreparedSession {
  sid: number
  tokens: Record<SiteId, string>
}

/** One frame to connect: its socket authenticates with its token and a proof by its key. */
export interface SocketItem {
  /** `${sid}.${site}`: one frame, one socket. */
  key: string
  site: SiteId
  token: string
  /** The frame's key; absent for a server before DPoP (its tokens are bound to no key). */
  jwk?: FrameKeyJwk
  /** For the ticket way only: the site's authkey, sent with the ticket request. */
  authkey?: string
  /** The instance this socket goes to, in place of the call's `url` (several instances). */
  url?: string
}

export interface HeapReport {
  usedHeap: number
  totalHeap: number
  /** Pages V8 holds for its heap (all spaces), the young generation's of them. */
  physicalHeap: number
  newSpace: number
  external: number
  mallocedMemory: number
}

/**
 * How a server child is started. Default: one process on a SQLite file of its own. The scale
 * bench (`bench/scale.ts`) starts several on one PostgreSQL database and one Redis, all with one
 * master key; the first registers the sites (`seed`), the others read them from the store.
 */
export interface ServerStart {
  databaseUrl?: string
  redisUrl?: string
  redisKeyPrefix?: string
  /** Base64 master key shared by the instances (each would make its own otherwise). */
  masterKey?: string
  /** Register the sites (default true); false: they are already in the shared store. */
  seed?: boolean
  /** First session number of this instance (numbers are unique across instances). */
  sidBase?: number
  /** The live channel's cap per process (default: none of our own below the fd limit). */
  liveMaxConnections?: number
  /** Sessions `prepare` works on at once (default 1: one after the other). */
  prepareConcurrency?: number
}

async function startServer(start: ServerStart = {}) {
  const { resolveConfig } = await import('../passport-server/src/config.ts')
  const { silentLogger } = await import('../passport-server/src/deps.ts')
  const { createDeps, listen } = await import('../passport-server/src/server.ts')
  const { addSite, testMasterKey } = await import('../passport-server/src/test-support.ts')
  const { parseMasterKey } = await import('../passport-server/src/crypto/master-key.ts')
  const { hashPassword } = await import('../passport-server/src/crypto/password.ts')
  const { endSession, startSession } = await import('../passport-server/src/services/sessions.ts')
  const { mintSiteToken } = await import('../passport-server/src/services/minting.ts')
  type SessionRecord = Awaited<ReturnType<typeof startSession>>['session']
  type SiteRecord = Parameters<typeof mintSiteToken>[1]

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-bench-live-'))
  const deps = await createDeps({
    // Capacity is the point here: no cap of our own below the fd limit.
    config: resolveConfig({
      issuer: BENCH_ISSUER,
      scryptCost: 1024,
      liveMaxConnections: start.liveMaxConnections ?? 1_000_000,
      ...(start.databaseUrl ? { databaseUrl: start.databaseUrl } : {}),
      ...(start.redisUrl ? { redisUrl: start.redisUrl } : {}),
      ...(start.redisKeyPrefix ? { redisKeyPrefix: start.redisKeyPrefix } : {}),
    }),
    storeFile: path.join(dir, 'passport.sqlite'),
    masterKey: start.masterKey ? parseMasterKey(start.masterKey) : testMasterKey(),
    log: silentLogger,
  })
  const registered =
    start.seed === false
      ? null
      : {
          news: await addSite(deps, { id: 'news', origins: [SITE_ORIGINS.news] }),
          shop: await addSite(deps, { id: 'shop', origins: [SITE_ORIGINS.shop] }),
        }
  const siteOf = async (id: SiteId): Promise<SiteRecord> => {
    const site = registered?.[id].site ?? (await deps.store.sites.get(id))
    if (!site) throw new Error(`no site ${id} in the store`)
    return site
  }
  const sites = { news: await siteOf('news'), shop: await siteOf('shop') }
  // The real server: HTTP, the live channel with its default limits, and the background jobs.
  const server = await listen(deps, 0, '127.0.0.1')
  // Users are written straight to the store with one precomputed hash: nobody signs in with a
  // password here, and hashing one per user would dominate the preparation.
  const passwordHash = await hashPassword('bench-password-1', deps.config.scryptCost)
  const sessions = new Map<number, { session: SessionRecord; tokens: Record<SiteId, string> }>()
  let nextSid = start.sidBase ?? 0
  /** Mints the store refused as unavailable during \`prepare\` (then made again). */
  let storeGaveUp = 0

  const info: ServerInfo = {
    url: server.internalUrl,
    issuer: BENCH_ISSUER,
    authkeys: { news: registered?.news.authkey ?? '', shop: registered?.shop.authkey ?? '' },
    clientSecrets: { news: registered?.news.clientSecret ?? '', shop: registered?.shop.clientSecret ?? '' },
    pid: process.pid,
  }
  /**
   * A step the store gave up on (PostgreSQL: SERIALIZABLE conflicts past its own 10 retries, when
   * sessions are prepared several at a time) is made again, up to 30 times after a random pause,
   * and counted: preparation only, never a measured request.
   */
  const again = async <T>(step: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step()
      } catch (err) {
        if ((err as Error).name !== 'StoreUnavailableError' || attempt >= 30) throw err
        storeGaveUp++
        await sleep(Math.random() * 100)
      }
    }
  }
  const mint = (site: SiteRecord, session: SessionRecord, jkt: string | null) =>
    again(() => mintSiteToken(deps, site, session, jkt))
  const prepareOne = async (jkt: Record<SiteId, string>): Promise<PreparedSession> => {
    const sid = nextSid++
    const userId = `u_bench${sid}`
    await again(() =>
      deps.store.users.create({
        id: userId,
        username: `bench${sid}`,
        name: `Bench ${sid}`,
        passwordHash,
        createdAt: deps.clock.now(),
      }),
    )
    const { session } = await again(() => startSession(deps, userId, 'passport-bench-live'))
    const tokens = {
      news: (await mint(sites.news, session, jkt.news)).token,
      shop: (await mint(sites.shop, session, jkt.shop)).token,
    }
    sessions.set(sid, { session, tokens })
    return { sid, tokens }
  }
  return {
    info,
    /**
     * One signed-in device per entry of `jkts`: one user each, one passport session, signed in
     * on both sites (a site token each, minted by the same code as a sign-in, `mintSiteToken`,
     * bound to the thumbprint of that site's frame key: the News frame and the Shop frame are
     * partitioned apart, each with its own key).
     */
    prepare: async (args: {
      jkts: Record<SiteId, string>[]
      /** Sessions worked on at once, for this call (default: the start's \`prepareConcurrency\`). */
      concurrency?: number
    }): Promise<PreparedSession[]> => {
      const out: PreparedSession[] = new Array(args.jkts.length)
      let next = 0
      const lane = async () => {
        while (next < args.jkts.length) {
          const i = next++
          out[i] = await prepareOne(args.jkts[i] as Record<SiteId, string>)
        }
      }
      const lanes = args.concurrency ?? start.prepareConcurrency ?? 1
      await Promise.all(Array.from({ length: Math.max(1, lanes) }, lane))
      return out
    },
    /**
     * Refresh families for the token load (`bench/scale.ts`): one new user and one session, and
     * one family per entry on `site`, bound to that frame key's thumbprint (`null`: a site
     * backend's family, bound to the client credentials). Answers each family's refresh credential.
     */
    families: async (args: { site: SiteId; jkts: (string | null)[] }): Promise<string[]> => {
      const sid = nextSid++
      const userId = `u_bench${sid}`
      await deps.store.users.create({
        id: userId,
        username: `bench${sid}`,
        name: `Bench ${sid}`,
        passwordHash,
        createdAt: deps.clock.now(),
      })
      const { session } = await startSession(deps, userId, 'passport-bench-scale')
      const out: string[] = []
      for (const jkt of args.jkts) out.push((await mint(sites[args.site], session, jkt)).refreshToken)
      return out
    },
    liveCount: () => server.liveConnectionCount(),
    storeGaveUp: () => storeGaveUp,
    /**
     * Ends these sessions in-process, one after the other, as the account page and the CLI do
     * (`endSession`, reason `revoked`): a bulk revocation with no HTTP in front of it.
     */
    endSessions: async (args: { sids: number[] }) => {
      const t0 = now()
      for (const sid of args.sids) {
        const s = sessions.get(sid)
        if (!s) throw new Error(`no session ${sid}`)
        await endSession(deps, s.session, 'revoked')
      }
      return { t0: String(t0), t1: String(now()) }
    },
    /**
     * Diagnostic: what `sessions.sitesOf` costs now. The back-channel logout subscriber runs it on
     * every session end, synchronously inside the publish, and its query has no usable index
     * (`SELECT DISTINCT site_id FROM tokens WHERE session_id = ?`: a scan of every token row).
     */
    probeSitesOf: async () => {
      const ids = [...sessions.values()].slice(0, 50).map((s) => s.session.id)
      const t0 = performance.now()
      for (const id of ids) await deps.store.sessions.sitesOf(id)
      const { DatabaseSync } = await import('node:sqlite')
      const reader = new DatabaseSync(path.join(dir, 'passport.sqlite'), { readOnly: true })
      const tokenRows = Number((reader.prepare('SELECT count(*) AS n FROM tokens').get() as { n: number }).n)
      const plan = (
        reader
          .prepare(
            'EXPLAIN QUERY PLAN SELECT DISTINCT site_id FROM tokens WHERE session_id = ? ORDER BY site_id',
          )
          .all('x') as { detail: string }[]
      )
        .map((r) => r.detail)
        .join('; ')
      reader.close()
      return { msPerCall: (performance.now() - t0) / Math.max(1, ids.length), tokenRows, plan }
    },
    /**
     * After two full GCs, `regular` or `last-resort` (what V8 does under memory pressure: it also
     * shrinks the young generation and hands pooled pages back, so RSS shows what is held rather
     * than the GC's slack). V8 figures only: at the fd limit, reading /proc/self would fail here.
     */
    heap: (args: { flavor: 'regular' | 'last-resort' }): HeapReport => {
      const gc = (globalThis as { gc?: (o?: { type: string; flavor: string }) => void }).gc
      for (let i = 0; i < 2; i++) gc?.({ type: 'major', flavor: args.flavor })
      const h = v8.getHeapStatistics()
      const young = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')
      return {
        usedHeap: h.used_heap_size,
        totalHeap: h.total_heap_size,
        physicalHeap: h.total_physical_size,
        newSpace: young?.physical_space_size ?? 0,
        external: h.external_memory,
        mallocedMemory: h.malloced_memory,
      }
    },
    close: async () => {
      await server.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

// ---------------------------------------------------------------------------------------------
// client: sockets

interface Frame {
  ws: WebSocket
  welcomed: boolean
  /** Arrival of its `session_event` (CLOCK_MONOTONIC ns). */
  eventAt?: bigint
  reason?: string
  closeCode?: number
}

const frames = new Map<string, Frame>()
let welcomed = 0
let eventsTotal = 0
let closedTotal = 0
/** Closes of sockets that had received no session_event (the server or the network cut them). */
let closedWithoutEvent = 0
/** A second \`session_event\` on a socket that already had one (must stay 0: exactly once). */
let duplicateEvents = 0

export interface ConnectArgs {
  url: string
  origin: string
  items: SocketItem[]
  /**
   * `challenge` (this code): the socket opens with no credential, and the frame answers the
   * server's challenge with its token and a DPoP proof. `ticket` (the code before DPoP): a live
   * ticket is asked for over HTTP (`POST /api/frame/live-ticket`, keep-alive), then the
   * upgrade carries it (and its registration code in the sub-protocol).
   */
  mode?: 'challenge' | 'ticket'
  /**
   * Source addresses `${localNet}.2` … `.9` in turn. Binding one source address for thousands of
   * sockets makes the kernel's search for a free port slow (connects fell to ~500/s at 10k).
   */
  localNet?: string
  /**
   * How many source addresses to rotate over (default 8). With a two-part \`localNet\` (\`127.11\`)
   * they are \`127.11.<k / 250>.<2 + k % 250>\`: the passport limits upgrades per address (60 a
   * minute), so tens of thousands of sockets need as many addresses as real users would bring.
   */
  sourceCount?: number
  inFlight: number
}
export interface ConnectResult {
  /** Sockets that received their `welcome` (authenticated, registered, told where the log is). */
  opened: number
  failed: number
  failures: Record<string, number>
  ms: number
  /** Per opened socket: from wanting it (before any request) to its `welcome`, ms. */
  welcomeMs: number[]
}

let attempts = 0
/** Frame keys by frame (`${sid}.${site}`), imported once from the JWK the parent made. */
const keys = new Map<string, FrameKey>()
const keyOf = (item: { key: string; jwk?: FrameKeyJwk }): FrameKey => {
  let key = keys.get(item.key)
  if (!key) {
    if (!item.jwk) throw new Error(`no key for ${item.key}`)
    key = frameKey(item.jwk)
    keys.set(item.key, key)
  }
  return key
}
/** The last event id each frame was welcomed with: sent again when it reconnects, as the frame does. */
const lastEventIds = new Map<string, number>()
/** The keep-alive agent of the ticket requests (the frame's fetches to its own origin). */
const ticketAgent = new http.Agent({ keepAlive: true })

/** Before DPoP: a live ticket for this frame's token, over HTTP. */
async function liveTicket(args: ConnectArgs, item: SocketItem) {
  const got = await post(
    ticketAgent,
    new URL(`${args.url}/api/frame/live-ticket`),
    FRAME_HEADERS(args.origin),
    JSON.stringify({ authkey: item.authkey, token: item.token }),
  )
  if (got.status !== 200) throw new Error(`ticket ${got.status}`)
  return JSON.parse(got.text) as { ticket: string; registration_code: string; last_event_id: number }
}

const sourceAddress = (net: string, k: number) =>
  net.split('.').length === 2 ? `${net}.${Math.floor(k / 250)}.${2 + (k % 250)}` : `${net}.${2 + k}`

/** Opens one frame's socket; settles with null once its `welcome` arrived, or with what failed. */
async function openFrame(args: ConnectArgs, item: SocketItem): Promise<string | null> {
  const localAddress = args.localNet
    ? sourceAddress(args.localNet, attempts++ % (args.sourceCount ?? 8))
    : undefined
  const query = new URLSearchParams({ site: item.site })
  let protocols = [LIVE_PROTOCOL]
  if (args.mode === 'ticket') {
    let ticket: Awaited<ReturnType<typeof liveTicket>>
    try {
      ticket = await liveTicket(args, item)
    } catch (err) {
      return String((err as Error).message).slice(0, 40)
    }
    query.set('ticket', ticket.ticket)
    query.set('last_event_id', String(ticket.last_event_id))
    protocols = ['passport.v1', `code.${ticket.registration_code}`]
  } else {
    const last = lastEventIds.get(item.key)
    if (last !== undefined && last > 0) query.set('last_event_id', String(last))
  }
  const ws = new WebSocket(
    `${(item.url ?? args.url).replace(/^http/, 'ws')}${LIVE_PATH}?${query}`,
    protocols,
    {
      headers: { Origin: args.origin },
      perMessageDeflate: false,
      handshakeTimeout: 15_000,
      ...(localAddress ? { localAddress } : {}),
    },
  )
  const frame: Frame = { ws, welcomed: false }
  return new Promise((resolve) => {
    let settled = false
    const done = (failure: string | null) => {
      if (settled) return
      settled = true
      resolve(failure)
    }
    ws.on('message', (data) => {
      const at = now() // stamped first: what follows is the frame's own work
      const msg = JSON.parse(String(data)) as {
        type: string
        reason?: string
        nonce?: string
        last_event_id?: number
      }
      if (msg.type === 'challenge') {
        // The answer: the token, and a proof by the frame's key over the challenge and the token.
        const proof = keyOf(item).proof({
          htm: 'GET',
          htu: `${args.origin.replace(/^http/, 'ws')}${LIVE_PATH}`,
          nonce: msg.nonce ?? '',
          accessToken: item.token,
        })
        ws.send(JSON.stringify({ type: 'auth', token: item.token, proof }))
      } else if (msg.type === 'welcome') {
        frame.welcomed = true
        welcomed++
        if (typeof msg.last_event_id === 'number') lastEventIds.set(item.key, msg.last_event_id)
        done(null)
      } else if (msg.type === 'session_event' && frame.eventAt === undefined) {
        frame.eventAt = at
        frame.reason = msg.reason
        eventsTotal++
      } else if (msg.type === 'session_event') duplicateEvents++
    })
    ws.on('open', () => frames.set(item.key, frame))
    ws.on('unexpected-response', (_req, res) => {
      done(`http ${res.statusCode}`)
      ws.terminate()
    })
    ws.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message.slice(0, 40)))
    ws.on('close', (code) => {
      done(`closed ${code}`)
      frame.closeCode = code
      if (frames.get(item.key) === frame) {
        closedTotal++
        if (frame.eventAt === undefined) closedWithoutEvent++
      }
    })
  })
}

async function connect(args: ConnectArgs): Promise<ConnectResult> {
  const t0 = performance.now()
  const failures: Record<string, number> = {}
  const welcomeMs: number[] = []
  let ok = 0
  let next = 0
  const lane = async () => {
    while (next < args.items.length) {
      const item = args.items[next++] as SocketItem
      const wanted = performance.now()
      const failure = await openFrame(args, item)
      if (failure === null) {
        ok++
        welcomeMs.push(performance.now() - wanted)
      } else failures[failure] = (failures[failure] ?? 0) + 1
    }
  }
  await Promise.all(Array.from({ length: Math.min(args.inFlight, args.items.length) }, lane))
  return { opened: ok, failed: args.items.length - ok, failures, ms: performance.now() - t0, welcomeMs }
}

export interface FrameStats {
  frames: number
  open: number
  /** Open sockets still waiting for their welcome (the server is not done with them yet). */
  waiting: number
  welcomed: number
  events: number
  closed: number
  closedWithoutEvent: number
  duplicateEvents: number
}
const stats = (): FrameStats => {
  let open = 0
  let waiting = 0
  for (const f of frames.values()) {
    if (f.ws.readyState !== WebSocket.OPEN) continue
    open++
    if (!f.welcomed) waiting++
  }
  return {
    frames: frames.size,
    open,
    waiting,
    welcomed,
    events: eventsTotal,
    closed: closedTotal,
    closedWithoutEvent,
    duplicateEvents,
  }
}

/** Waits (bounded) until every one of these frames has its session_event; arrival times as strings. */
async function receipts(args: { keys: string[]; timeoutMs: number }) {
  const deadline = performance.now() + args.timeoutMs
  const missing = () => args.keys.filter((k) => frames.get(k)?.eventAt === undefined).length
  while (missing() > 0 && performance.now() < deadline) await sleep(20)
  const at: Record<string, string | null> = {}
  const reasons: Record<string, number> = {}
  for (const k of args.keys) {
    const f = frames.get(k)
    at[k] = f?.eventAt === undefined ? null : String(f.eventAt)
    if (f?.reason) reasons[f.reason] = (reasons[f.reason] ?? 0) + 1
  }
  return { at, reasons }
}

/** Drops the frames whose sessions ended (their sockets are closed by then). */
function forget(args: { keys: string[] }) {
  for (const k of args.keys) {
    const f = frames.get(k)
    if (f?.ws.readyState === WebSocket.OPEN) f.ws.terminate()
    frames.delete(k)
  }
  return stats()
}

// ---------------------------------------------------------------------------------------------
// client: HTTP (sign-outs, polling)

const FRAME_HEADERS = (origin: string) => ({
  'Content-Type': 'application/json',
  Origin: origin,
  'Sec-Fetch-Site': 'same-origin',
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A frame's request to its API: what it sends, and the key that proves it. */
export interface FrameCall {
  /** The frame (`${sid}.${site}`), whose key proves the request. */
  key: string
  jwk: FrameKeyJwk
  authkey: string
  token: string
}

/** The server's nonce, as every frame of this process last heard it (it is the server's, not a key's). */
const nonce = nonceKeeper()

/**
 * A POST to the frame API as the frame makes it: the token in `Authorization: DPoP`, a proof by
 * the frame's key (over the token, with the server's latest nonce) in `DPoP`, made again once
 * when the server answers `use_dpop_nonce` (its answer carries the fresh nonce).
 */
async function frameApi(
  agent: http.Agent,
  base: string,
  origin: string,
  path: string,
  call: FrameCall,
  /** A proof made beforehand for the first attempt (see \`proofFor\`). */
  ready?: string,
) {
  const url = new URL(`${base}${path}`)
  const body = JSON.stringify({ authkey: call.authkey })
  let got = { status: 0, text: '' }
  for (let attempt = 0; attempt < 2; attempt++) {
    const proof = (attempt === 0 ? ready : undefined) ?? proofFor(origin, path, call)
    const res = await post(
      agent,
      url,
      { ...FRAME_HEADERS(origin), Authorization: `DPoP ${call.token}`, DPoP: proof },
      body,
    )
    nonce.take(res.headers)
    got = res
    if (!wantsNonce(res.status, res.text)) break
  }
  return got
}

const proofFor = (origin: string, path: string, call: FrameCall) =>
  keyOf(call).proof({ htm: 'POST', htu: `${origin}${path}`, nonce: nonce.get(), accessToken: call.token })

/** Asks the server once for its nonce (as the frame page carries it), so that timed requests need no retry. */
async function primeNonce(args: { url: string; origin: string }) {
  const agent = new http.Agent({ keepAlive: false })
  const res = await post(agent, new URL(`${args.url}/api/frame/check`), FRAME_HEADERS(args.origin), '{}')
  nonce.take(res.headers)
  agent.destroy()
  if (nonce.get() === null) throw new Error(`no DPoP-Nonce from the server (${res.status})`)
  return nonce.get()
}

export interface SignoutArgs {
  url: string
  origin: string
  /** One per session: the frame that signs out (its token, key and site's authkey), and where to. */
  items: (FrameCall & { sid: number; url?: string })[]
  /** `spread`: one by one, evenly over `spreadMs` with jitter; `burst`: all requested at once. */
  mode: 'spread' | 'burst'
  spreadMs: number
  maxSockets: number
}
export interface SignoutResult {
  /** When each sign-out request was made (CLOCK_MONOTONIC ns). */
  t0: Record<number, string>
  /** Answer time of each request, ms. */
  httpMs: number[]
  bad: number
  /** The sessions whose sign-out was not answered 200 (their sockets are not expected to hear). */
  badSids: number[]
  firstBad?: string
}

/** The frame's sign-out: `POST /api/frame/logout` with its token, as the button in the frame does. */
async function signout(args: SignoutArgs): Promise<SignoutResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: args.maxSockets })
  const t0: Record<number, string> = {}
  const httpMs: number[] = []
  let bad = 0
  const badSids: number[] = []
  let firstBad: string | undefined
  const one = async (item: SignoutArgs['items'][number], startedAt: bigint, proof?: string) => {
    t0[item.sid] = String(startedAt)
    let status = 0
    let text = ''
    try {
      ;({ status, text } = await frameApi(
        agent,
        item.url ?? args.url,
        args.origin,
        '/api/frame/logout',
        item,
        proof,
      ))
    } catch (err) {
      text = String(err)
    }
    httpMs.push(Number(now() - startedAt) / 1e6)
    if (status !== 200 || !text.includes('"signed_out":true')) {
      bad++
      badSids.push(item.sid)
      firstBad ??= `${status} ${text.slice(0, 200)}`
    }
  }
  if (args.mode === 'burst') {
    // Every frame signs its proof on its own device: here one process signs them all, so the
    // proofs are made before the instant the sign-outs are requested.
    const proofs = args.items.map((item) => proofFor(args.origin, '/api/frame/logout', item))
    const at = now()
    await Promise.all(args.items.map((item, i) => one(item, at, proofs[i])))
  } else {
    // Slot i starts at i·gap plus a random part of one gap: even on average, never in lockstep.
    const gap = args.spreadMs / args.items.length
    const start = performance.now()
    await Promise.all(
      args.items.map(async (item, i) => {
        await sleep(Math.max(0, start + (i + Math.random()) * gap - performance.now()))
        await one(item, now())
      }),
    )
  }
  agent.destroy()
  return { t0, httpMs, bad, badSids, ...(firstBad ? { firstBad } : {}) }
}

export interface PollArgs {
  url: string
  origin: string
  items: FrameCall[]
  periodMs: number
}
interface Poller {
  timer?: NodeJS.Timeout
  invalidAt?: bigint
  reason?: string
}
let polling: {
  pollers: Map<string, Poller>
  agent: http.Agent
  requests: number
  bad: number
  firstBad?: string
  checkMs: number[]
} | null = null

/**
 * The polling baseline: every frame asks `POST /api/frame/check` once per period, each at its own
 * random phase, and stops at the first answer that says its token is no longer valid.
 */
function pollStart(args: PollArgs) {
  const agent = new http.Agent({ keepAlive: true })
  const state = {
    pollers: new Map<string, Poller>(),
    agent,
    requests: 0,
    bad: 0,
    firstBad: undefined as string | undefined,
    checkMs: [] as number[],
  }
  polling = state
  const start = performance.now()
  for (const item of args.items) {
    const p: Poller = {}
    state.pollers.set(item.key, p)
    const phase = Math.random() * args.periodMs
    let k = 0
    const tick = async () => {
      if (polling !== state) return
      const sent = now()
      state.requests++
      try {
        const r = await frameApi(agent, args.url, args.origin, '/api/frame/check', item)
        const at = now()
        state.checkMs.push(Number(at - sent) / 1e6)
        if (r.status !== 200) throw new Error(`${r.status} ${r.text.slice(0, 200)}`)
        const body = JSON.parse(r.text) as { valid: boolean; reason: string | null }
        if (!body.valid) {
          p.invalidAt = at
          p.reason = body.reason ?? '?'
          return // the frame knows: it stops polling
        }
      } catch (err) {
        state.bad++
        state.firstBad ??= String(err)
      }
      if (polling !== state) return
      // A fixed schedule from the phase (no drift from the request times).
      k++
      p.timer = setTimeout(tick, Math.max(0, start + phase + k * args.periodMs - performance.now()))
    }
    p.timer = setTimeout(tick, phase)
  }
  return { pollers: state.pollers.size }
}

async function pollWait(args: { keys: string[]; timeoutMs: number }) {
  const state = polling
  if (!state) throw new Error('not polling')
  const deadline = performance.now() + args.timeoutMs
  const missing = () => args.keys.filter((k) => state.pollers.get(k)?.invalidAt === undefined).length
  while (missing() > 0 && performance.now() < deadline) await sleep(20)
  const at: Record<string, string | null> = {}
  const reasons: Record<string, number> = {}
  for (const k of args.keys) {
    const p = state.pollers.get(k)
    at[k] = p?.invalidAt === undefined ? null : String(p.invalidAt)
    if (p?.reason) reasons[p.reason] = (reasons[p.reason] ?? 0) + 1
  }
  return { at, reasons }
}

function pollStop() {
  const state = polling
  if (!state) throw new Error('not polling')
  polling = null
  for (const p of state.pollers.values()) clearTimeout(p.timer)
  state.agent.destroy()
  const falseEnds = [...state.pollers.values()].filter((p) => p.invalidAt !== undefined).length
  return {
    requests: state.requests,
    bad: state.bad,
    ...(state.firstBad ? { firstBad: state.firstBad } : {}),
    checkMs: state.checkMs,
    sawInvalid: falseEnds,
  }
}

// ---------------------------------------------------------------------------------------------

if (import.meta.main) {
  const role = process.argv[2] as Role
  if (role === 'server') {
    let running: Awaited<ReturnType<typeof startServer>> | null = null
    const need = () => {
      if (!running) throw new Error('server not started')
      return running
    }
    serveIpc(
      {
        start: async (args?: ServerStart) => {
          running = await startServer(args ?? {})
          return running.info
        },
        prepare: (args: { jkts: Record<SiteId, string>[]; concurrency?: number }) => need().prepare(args),
        families: (args: { site: SiteId; jkts: (string | null)[] }) => need().families(args),
        liveCount: () => need().liveCount(),
        storeGaveUp: () => need().storeGaveUp(),
        endSessions: (args: { sids: number[] }) => need().endSessions(args),
        probeSitesOf: () => need().probeSitesOf(),
        heap: (args: { flavor: 'regular' | 'last-resort' }) => need().heap(args),
        clock: () => String(now()),
      },
      { usage, hardDeadlineMs: CHILD_DEADLINE_MS, cleanup: () => running?.close() },
    )
  } else if (role === 'client') {
    serveIpc(
      {
        connect,
        stats,
        receipts,
        forget,
        signout,
        primeNonce,
        pollStart,
        pollWait,
        pollStop,
        clock: () => String(now()),
      },
      {
        usage,
        hardDeadlineMs: CHILD_DEADLINE_MS,
        cleanup: () => {
          for (const f of frames.values()) f.ws.terminate()
        },
      },
    )
  } else {
    console.error(`unknown role ${role}`)
    process.exit(2)
  }
}
