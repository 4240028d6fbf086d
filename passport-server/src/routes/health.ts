import { Hono } from 'hono'
import type { AppDeps } from '../deps.ts'

/** How long `/readyz` waits for the store's trivial query before calling it unavailable. */
export const STORE_PROBE_TIMEOUT_MS = 1_000

/**
 * The instance's own lifecycle, shared by the health routes and the shutdown: once `draining`
 * is set (SIGTERM), `/readyz` answers 503 so the load balancer stops sending new work here
 * while what is in flight finishes.
 */
export interface DrainState {
  draining: boolean
}

export function createDrainState(): DrainState {
  return { draining: false }
}

/**
 * Resolves true when the store answers a trivial query (the event log's head) within `ms`,
 * false when it throws or is slower. A query left hanging settles on its own; nothing waits.
 */
export async function storeAnswers(
  deps: Pick<AppDeps, 'store'>,
  ms = STORE_PROBE_TIMEOUT_MS,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([
      deps.store.events.latestId().then(
        () => true,
        () => false,
      ),
      late,
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Health checks for a load balancer, on the main listener:
 *
 * - `GET /healthz`: 200 `{"status":"ok"}` while the process serves (liveness: restart it if not).
 * - `GET /readyz`: 200 when the store answers within 1 s and the instance is not draining, else
 *   503 `{"status":"unavailable","store","bus","draining"}` (readiness: send it work or not).
 *   The bus (`events.ready()`) is reported but never makes it 503: with the bus down, sign-ins
 *   and refreshes still work from the store, and pushes catch up when it is back.
 *
 * Both `no-store`; neither says anything beyond these fields (no version, no address, no error).
 */
export function healthRoutes(deps: Pick<AppDeps, 'store' | 'events'>, drain: DrainState): Hono {
  const app = new Hono()
  app.get('/healthz', (c) => {
    c.header('Cache-Control', 'no-store')
    return c.json({ status: 'ok' })
  })
  app.get('/readyz', async (c) => {
    c.header('Cache-Control', 'no-store')
    const store = (await storeAnswers(deps)) ? 'ok' : 'unavailable'
    const bus = deps.events.ready() ? 'ok' : 'unavailable'
    const ready = store === 'ok' && !drain.draining
    return c.json(
      { status: ready ? 'ok' : 'unavailable', store, bus, draining: drain.draining },
      ready ? 200 : 503,
    )
  })
  return app
}
