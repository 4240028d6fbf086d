import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import WebSocket from 'ws'
import { post, serveIpc } from './ipc.ts'

/**
 * The child processes of `bench/live.ts`, one role each (argv[2]), driven over IPC:
 *
 * - `server`: the real passport (`listen()` from server.ts: HTTP, the `/live` WebSocket channel,
 *   the event-log tail, the sweeper) on a temp SQLite file. It prepares users, sessions, site
 *   tokens and live tickets in-process, ends sessions in-process on request, and reports its heap.
 * - `client`: holds the WebSockets (`ws`, no compression), stamps every `session_event` on
 *   arrival, sends sign-outs (`POST /api/frame/logout`) and runs the polling baseline
 *   (`POST /api/frame/check` every period, random phase).
 *
 * Every timestamp is `process.hrtime.bigint()`: CLOCK_MONOTONIC, one clock for every process of
 * the machine, passed over IPC as a decimal string. Every child exits when the parent goes away
 * (IPC disconnect), and on a hard deadline in any case, so nothing outlives a run.
 */

export type Role = 'server' | 'client'
export interface Usage {
  cpuUs: number
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
  const u = process.cpuUsage()
  return { cpuUs: u.user + u.system, now: String(now()) }
}

// ---------------------------------------------------------------------------------------------
// server

export interface ServerInfo {
  url: string
  issuer: string
  authkeys: Record<SiteId, string>
  pid: number
}

/** One prepared session: its number, and the site token of each site (as each frame holds). */
export interface PreparedSession {
  sid: number
  tokens: Record<SiteId, string>
}

export interface TicketItem {
  /** `${sid}.${site}`: one frame, one socket. */
  key: string
  site: SiteId
  ticket: string
  code: string
  lastEventId: number
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

async function startServer() {
  const { resolveConfig } = await import('../passport-server/src/config.ts')
  const { silentLogger } = await import('../passport-server/src/deps.ts')
  const { createDeps, listen } = await import('../passport-server/src/server.ts')
  const { addSite, testMasterKey } = await import('../passport-server/src/test-support.ts')
  const { hashPassword } = await import('../passport-server/src/auth/password.ts')
  const { endSession, startSession } = await import('../passport-server/src/services/sessions.ts')
  const { mintSiteToken } = await import('../passport-server/src/services/minting.ts')
  const { issueLiveTicket } = await import('../passport-server/src/services/live-tickets.ts')
  type SessionRecord = Awaited<ReturnType<typeof startSession>>['session']

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-bench-live-'))
  const deps = await createDeps({
    // Capacity is the point here: no cap of our own below the fd limit.
    config: resolveConfig({ issuer: BENCH_ISSUER, scryptCost: 1024, liveMaxConnections: 1_000_000 }),
    storeFile: path.join(dir, 'passport.sqlite'),
    masterKey: testMasterKey(),
    log: silentLogger,
  })
  const sites = {
    news: await addSite(deps, { id: 'news', origins: [SITE_ORIGINS.news] }),
    shop: await addSite(deps, { id: 'shop', origins: [SITE_ORIGINS.shop] }),
  }
  // The real server: HTTP, the live channel with its default limits, and the background jobs.
  const server = await listen(deps, 0, '127.0.0.1')
  // Users are written straight to the store with one precomputed hash: nobody signs in with a
  // password here, and hashing one per user would dominate the preparation.
  const passwordHash = await hashPassword('bench-password-1', deps.config.scryptCost)
  const sessions = new Map<number, { session: SessionRecord; tokens: Record<SiteId, string> }>()
  let nextSid = 0

  const info: ServerInfo = {
    url: server.internalUrl,
    issuer: BENCH_ISSUER,
    authkeys: { news: sites.news.authkey, shop: sites.shop.authkey },
    pid: process.pid,
  }
  return {
    info,
    /**
     * `count` signed-in devices: one user each, one passport session, signed in on both sites
     * (a site token each, minted by the same code as a sign-in: `mintSiteToken`).
     */
    prepare: async (args: { count: number }): Promise<PreparedSession[]> => {
      const out: PreparedSession[] = []
      for (let i = 0; i < args.count; i++) {
        const sid = nextSid++
        const userId = `u_bench${sid}`
        await deps.store.users.create({
          id: userId,
          username: `bench${sid}`,
          name: `Bench ${sid}`,
          passwordHash,
          createdAt: deps.clock.now(),
        })
        const { session } = await startSession(deps, userId, 'passport-bench-live')
        const tokens = {
          news: (await mintSiteToken(deps, sites.news.site, session)).token,
          shop: (await mintSiteToken(deps, sites.shop.site, session)).token,
        }
        sessions.set(sid, { session, tokens })
        out.push({ sid, tokens })
      }
      return out
    },
    /** A live ticket per site for each session (what `/api/frame/live-ticket` issues). */
    tickets: async (args: { sids: number[] }): Promise<TicketItem[]> => {
      const out: TicketItem[] = []
      for (const sid of args.sids) {
        const s = sessions.get(sid)
        if (!s) throw new Error(`no session ${sid}`)
        for (const site of SITES) {
          const t = await issueLiveTicket(deps, sites[site].site, s.tokens[site])
          out.push({
            key: `${sid}.${site}`,
            site,
            ticket: t.ticket,
            code: t.registrationCode,
            lastEventId: t.lastEventId,
          })
        }
      }
      return out
    },
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

export interface ConnectArgs {
  url: string
  origin: string
  items: TicketItem[]
  /**
   * Source addresses `${localNet}.2` … `.9` in turn. Binding one source address for thousands of
   * sockets makes the kernel's search for a free port slow (connects fell to ~500/s at 10k).
   */
  localNet?: string
  inFlight: number
}
export interface ConnectResult {
  opened: number
  failed: number
  failures: Record<string, number>
  ms: number
}

let attempts = 0

function openFrame(args: ConnectArgs, item: TicketItem): Promise<string | null> {
  const localAddress = args.localNet ? `${args.localNet}.${2 + (attempts++ % 8)}` : undefined
  const query = new URLSearchParams({
    ticket: item.ticket,
    site: item.site,
    last_event_id: String(item.lastEventId),
  })
  const ws = new WebSocket(
    `${args.url.replace(/^http/, 'ws')}/live?${query}`,
    ['passport.v1', `code.${item.code}`],
    {
      headers: { Origin: args.origin },
      perMessageDeflate: false,
      handshakeTimeout: 15_000,
      ...(localAddress ? { localAddress } : {}),
    },
  )
  const frame: Frame = { ws, welcomed: false }
  ws.on('message', (data) => {
    const at = now() // stamped first: what follows is the frame's own work
    const msg = JSON.parse(String(data)) as { type: string; reason?: string }
    if (msg.type === 'welcome') {
      frame.welcomed = true
      welcomed++
    } else if (msg.type === 'session_event' && frame.eventAt === undefined) {
      frame.eventAt = at
      frame.reason = msg.reason
      eventsTotal++
    }
  })
  return new Promise((resolve) => {
    let settled = false
    const done = (failure: string | null) => {
      if (settled) return
      settled = true
      resolve(failure)
    }
    ws.on('open', () => {
      frames.set(item.key, frame)
      done(null)
    })
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
  let ok = 0
  let next = 0
  const lane = async () => {
    while (next < args.items.length) {
      const item = args.items[next++] as TicketItem
      const failure = await openFrame(args, item)
      if (failure === null) ok++
      else failures[failure] = (failures[failure] ?? 0) + 1
    }
  }
  await Promise.all(Array.from({ length: Math.min(args.inFlight, args.items.length) }, lane))
  return { opened: ok, failed: args.items.length - ok, failures, ms: performance.now() - t0 }
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

export interface SignoutArgs {
  url: string
  origin: string
  /** One per session: the site token of the frame that signs out, and that site's authkey. */
  items: { sid: number; authkey: string; token: string }[]
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
  firstBad?: string
}

/** The frame's sign-out: `POST /api/frame/logout` with its token, as the button in the frame does. */
async function signout(args: SignoutArgs): Promise<SignoutResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: args.maxSockets })
  const url = new URL(`${args.url}/api/frame/logout`)
  const headers = FRAME_HEADERS(args.origin)
  const t0: Record<number, string> = {}
  const httpMs: number[] = []
  let bad = 0
  let firstBad: string | undefined
  const one = async (item: SignoutArgs['items'][number], startedAt: bigint) => {
    t0[item.sid] = String(startedAt)
    let status = 0
    let text = ''
    try {
      ;({ status, text } = await post(
        agent,
        url,
        headers,
        JSON.stringify({ authkey: item.authkey, token: item.token }),
      ))
    } catch (err) {
      text = String(err)
    }
    httpMs.push(Number(now() - startedAt) / 1e6)
    if (status !== 200 || !text.includes('"signed_out":true')) {
      bad++
      firstBad ??= `${status} ${text.slice(0, 200)}`
    }
  }
  if (args.mode === 'burst') {
    const at = now()
    await Promise.all(args.items.map((item) => one(item, at)))
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
  return { t0, httpMs, bad, ...(firstBad ? { firstBad } : {}) }
}

export interface PollArgs {
  url: string
  origin: string
  items: { key: string; authkey: string; token: string }[]
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
  const url = new URL(`${args.url}/api/frame/check`)
  const headers = FRAME_HEADERS(args.origin)
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
        const r = await post(
          agent,
          url,
          headers,
          JSON.stringify({ authkey: item.authkey, token: item.token }),
        )
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
        start: async () => {
          running = await startServer()
          return running.info
        },
        prepare: (args: { count: number }) => need().prepare(args),
        tickets: (args: { sids: number[] }) => need().tickets(args),
        endSessions: (args: { sids: number[] }) => need().endSessions(args),
        probeSitesOf: () => need().probeSitesOf(),
        heap: (args: { flavor: 'regular' | 'last-resort' }) => need().heap(args),
        clock: () => String(now()),
      },
      { usage, cleanup: () => running?.close() },
    )
  } else if (role === 'client') {
    serveIpc(
      {
        connect,
        stats,
        receipts,
        forget,
        signout,
        pollStart,
        pollWait,
        pollStop,
        clock: () => String(now()),
      },
      {
        usage,
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
