import type { MiddlewareHandler } from 'hono'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { AppDeps } from '../deps.ts'
import type { Logger } from '../errors.ts'

/**
 * Prometheus metrics of one passport (one `Registry` per app, never prom-client's global
 * default: tests build several apps in one process, and two passports in one process must not
 * add up each other's counts).
 *
 * Where the numbers come from, so that the code paths they measure stay untouched:
 * - latency and outcome of sign-in, mint, refresh and introspection: the HTTP edge, which
 *   knows each request's route and, for the two token endpoints, its grant type;
 * - sign-ins by method, login failures and lockouts, token reuse, back-channel pushes: the
 *   structured log events those paths already write (`tapLog`);
 * - pushes on the live channel: the live server, per message type;
 * - approvals and session endings: the event bus, which every instance hears;
 * - live sockets, pending approvals, store and bus health: read at scrape time.
 */
export type Operation = 'sign_in' | 'mint' | 'refresh' | 'introspection' | 'token_status' | 'refresh_request'

export interface PassportMetrics {
  readonly registry: Registry
  /** Counts and times every HTTP request; classifies the ones that are an operation above. */
  middleware(): MiddlewareHandler
  /** A logger that also counts the log events metrics are made of, then logs as `log`. */
  tapLog(log: Logger): Logger
  /** One message pushed to a device or a site backend. */
  pushed(channel: 'live' | 'backchannel', type: string, outcome?: 'sent' | 'failed'): void
  /** Where scrapes read this instance's open live sockets from (the live server). */
  setLiveSockets(read: () => number): void
  /** Subscribes to the bus (approvals, endings) and reads the store and bus at scrape time. */
  watch(deps: Pick<AppDeps, 'events' | 'store' | 'clock'>): () => void
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
/** A store that does not answer a trivial read within this is reported down. */
const STORE_PING_TIMEOUT_MS = 1_000

/** Which operation a request is, from its route and (token endpoints) its grant type. */
async function operationOf(method: string, route: string, body: Promise<string> | undefined) {
  if (method !== 'POST') return null
  switch (route) {
    // The password form, and the completions of a SCRAM exchange and of a passkey ceremony.
    case '/login':
    case '/login/scram':
    case '/login/passkey':
      return 'sign_in'
    case '/token/introspect':
      return 'introspection'
    case '/token/status':
      return 'token_status'
    case '/token/refresh-request':
      return 'refresh_request'
    case '/api/frame/token':
    case '/token': {
      // Only the text the handler read (Hono keeps it): a body it refused unread stays unread.
      const text = body ? await body.catch(() => '') : ''
      const grant =
        route === '/token'
          ? new URLSearchParams(text).get('grant_type')
          : /"grant_type"\s*:\s*"([a-z_:.-]{1,64})"/.exec(text)?.[1]
      return grant === 'refresh_token' ? 'refresh' : grant ? 'mint' : null
    }
    default:
      return null
  }
}

export function createMetrics(options: { processMetrics?: boolean } = {}): PassportMetrics {
  const registry = new Registry()
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]

  const httpRequests = new Counter({
    name: 'passport_http_requests_total',
    help: 'HTTP requests by route pattern, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers,
  })
  const httpSeconds = new Histogram({
    name: 'passport_http_request_duration_seconds',
    help: 'HTTP request latency by route pattern.',
    labelNames: ['route'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  })
  const operations = new Counter({
    name: 'passport_operations_total',
    help: 'Sign-ins, mints, refreshes, introspections, token-status checks and refresh requests, by HTTP status.',
    labelNames: ['operation', 'status'] as const,
    registers,
  })
  const operationSeconds = new Histogram({
    name: 'passport_operation_duration_seconds',
    help: 'Latency of sign-in, mint, refresh, introspection, token-status and refresh-request calls.',
    labelNames: ['operation'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  })
  const signIns = new Counter({
    name: 'passport_sign_ins_total',
    help: 'Passport sessions started, by method (password, device, ciba).',
    labelNames: ['method'] as const,
    registers,
  })
  const loginFailures = new Counter({
    name: 'passport_login_failures_total',
    help: 'Refused password sign-ins; locked = the failure that locked the account.',
    labelNames: ['result'] as const,
    registers,
  })
  const tokensMinted = new Counter({
    name: 'passport_tokens_minted_total',
    help: 'Site tokens minted for a new sign-in on a site (every way in).',
    registers,
  })
  const tokenReuse = new Counter({
    name: 'passport_refresh_reuse_total',
    help: 'Refresh credentials presented again outside the rules (the family was revoked).',
    registers,
  })
  const pushes = new Counter({
    name: 'passport_pushes_total',
    help: 'Messages pushed: to frames on the live channel (by type) and to site backends (back-channel logout).',
    labelNames: ['channel', 'type', 'outcome'] as const,
    registers,
  })
  const approvals = new Counter({
    name: 'passport_approvals_total',
    help: 'Sign-in-with-another-device and CIBA requests: requested, then approved, denied, cancelled or expired.',
    labelNames: ['outcome'] as const,
    registers,
  })
  const endings = new Counter({
    name: 'passport_session_endings_total',
    help: 'Ends of a session (scope session) or of one site on a session (scope site), by reason.',
    labelNames: ['scope', 'reason'] as const,
    registers,
  })

  let liveSockets: () => number = () => 0
  new Gauge({
    name: 'passport_live_sockets',
    help: 'Authenticated live-channel WebSockets this instance holds.',
    registers,
    collect() {
      this.set(liveSockets())
    },
  })
  /** approval id -> expiry (ms): requests heard and not yet closed. */
  const pending = new Map<string, number>()
  let clockNow: () => number = () => Date.now()
  new Gauge({
    name: 'passport_approvals_pending',
    help: 'Approval requests open now (heard on the bus, not closed, not past expiry).',
    registers,
    collect() {
      const now = clockNow()
      for (const [id, expiresAt] of pending) if (expiresAt <= now) pending.delete(id)
      this.set(pending.size)
    },
  })
  let ping: (() => Promise<unknown>) | null = null
  let busReady: () => boolean = () => true
  /** One trivial read per scrape, shared by the two store gauges (collected in parallel). */
  let scrapePing: Promise<{ up: boolean; seconds: number }> | null = null
  const pingStore = () => {
    scrapePing ??= (async () => {
      const started = performance.now()
      let timer: ReturnType<typeof setTimeout> | undefined
      const up = ping
        ? await Promise.race([
            ping().then(
              () => true,
              () => false,
            ),
            new Promise<boolean>((resolve) => {
              timer = setTimeout(() => resolve(false), STORE_PING_TIMEOUT_MS)
            }),
          ])
        : false
      clearTimeout(timer)
      setTimeout(() => {
        scrapePing = null
      }, 0)
      return { up, seconds: (performance.now() - started) / 1000 }
    })()
    return scrapePing
  }
  new Gauge({
    name: 'passport_store_up',
    help: `1 when the store answered a trivial read within ${STORE_PING_TIMEOUT_MS} ms at this scrape.`,
    registers,
    async collect() {
      this.set((await pingStore()).up ? 1 : 0)
    },
  })
  new Gauge({
    name: 'passport_store_ping_seconds',
    help: 'How long the trivial read of the store took at this scrape.',
    registers,
    async collect() {
      this.set((await pingStore()).seconds)
    },
  })
  new Gauge({
    name: 'passport_bus_ready',
    help: '1 while the event bus can deliver across instances (always 1 in-process).',
    registers,
    collect() {
      this.set(busReady() ? 1 : 0)
    },
  })

  /** Log events that are counts of something. Only the event name and safe labels are read. */
  const fromLog = (event: string, fields: Record<string, unknown> | undefined) => {
    switch (event) {
      case 'session_created': {
        const method = fields?.method
        signIns.inc({ method: typeof method === 'string' && method.length <= 16 ? method : 'other' })
        return
      }
      case 'authn_login_fail':
        return loginFailures.inc({ result: 'failed' })
      case 'authn_login_lock':
        return loginFailures.inc({ result: 'locked' })
      case 'authn_token_created':
        return tokensMinted.inc()
      case 'authn_token_reuse':
        return tokenReuse.inc()
      case 'backchannel_logout_sent':
        return pushes.inc({ channel: 'backchannel', type: 'logout_token', outcome: 'sent' })
      case 'backchannel_logout_failed':
        return pushes.inc({ channel: 'backchannel', type: 'logout_token', outcome: 'failed' })
    }
  }

  return {
    registry,
    middleware: () => async (c, next) => {
      const started = performance.now()
      await next()
      const seconds = (performance.now() - started) / 1000
      const status = c.res.status
      // Unmatched paths share one label: a scanner's URLs must not become series.
      const route = status === 404 && c.req.routePath === '/*' ? 'unmatched' : c.req.routePath
      const method = c.req.method
      httpRequests.inc({ route, method: method.length <= 7 ? method : 'OTHER', status: String(status) })
      httpSeconds.observe({ route }, seconds)
      // Hono keeps the promise of the text it read (typed as the text itself).
      const read = c.req.bodyCache.text
      const operation = await operationOf(
        method,
        route,
        read === undefined ? undefined : Promise.resolve(read),
      )
      if (operation) {
        operations.inc({ operation, status: String(status) })
        operationSeconds.observe({ operation }, seconds)
      }
    },
    tapLog: (log) => (event, fields) => {
      fromLog(event, fields)
      log(event, fields)
    },
    pushed: (channel, type, outcome = 'sent') => pushes.inc({ channel, type, outcome }),
    setLiveSockets: (read) => {
      liveSockets = read
    },
    watch: (deps) => {
      clockNow = () => deps.clock.now()
      ping = () => deps.store.events.latestId()
      busReady = () => deps.events.ready()
      const stopApprovals = deps.events.subscribeApprovals((notice) => {
        if (notice.type === 'approval_request') {
          approvals.inc({ outcome: 'requested' })
          pending.set(notice.prompt.id, notice.prompt.expiresAt)
        } else {
          approvals.inc({ outcome: notice.outcome })
          pending.delete(notice.approvalId)
        }
      })
      const stopEndings = deps.events.subscribe((event) => {
        endings.inc({ scope: event.siteId ? 'site' : 'session', reason: event.reason })
      })
      return () => {
        stopApprovals()
        stopEndings()
      }
    },
  }
}
