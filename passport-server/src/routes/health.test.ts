import { describe, expect, it } from 'vitest'
import { createApp } from '../app.ts'
import { StoreUnavailableError } from '../errors.ts'
import { createTestDeps } from '../test-support.ts'
import { createDrainState, STORE_PROBE_TIMEOUT_MS } from './health.ts'

async function world() {
  const deps = await createTestDeps()
  const drain = createDrainState()
  const app = createApp(deps, { drain })
  return { deps, drain, app }
}

describe('health checks for the load balancer (issue 15)', () => {
  it('/healthz: 200 {status: ok}, no-store, nothing else in it', async () => {
    const { app } = await world()
    const res = await app.request('/healthz')
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    expect(await res.json()).toEqual({ status: 'ok' })
  })

  it('/readyz: 200 while the store answers and the instance is not draining', async () => {
    const { app } = await world()
    const res = await app.request('/readyz')
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    expect(await res.json()).toEqual({ status: 'ok', store: 'ok', bus: 'ok', draining: false })
  })

  it('/readyz: 503 once draining (SIGTERM), so the balancer stops sending; /healthz stays 200', async () => {
    const { app, drain } = await world()
    drain.draining = true
    const res = await app.request('/readyz')
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ status: 'unavailable', store: 'ok', bus: 'ok', draining: true })
    expect((await app.request('/healthz')).status).toBe(200)
  })

  it('/readyz: 503 when the store fails its trivial query', async () => {
    const { app, deps } = await world()
    deps.store.events.latestId = async () => {
      throw new StoreUnavailableError('down')
    }
    const res = await app.request('/readyz')
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({
      status: 'unavailable',
      store: 'unavailable',
      bus: 'ok',
      draining: false,
    })
  })

  it('/readyz: 503 within about a second when the store hangs', async () => {
    const { app, deps } = await world()
    deps.store.events.latestId = () => new Promise<number>(() => {})
    const started = Date.now()
    const res = await app.request('/readyz')
    const took = Date.now() - started
    expect(res.status).toBe(503)
    expect(took).toBeGreaterThanOrEqual(STORE_PROBE_TIMEOUT_MS - 50)
    expect(took).toBeLessThan(STORE_PROBE_TIMEOUT_MS + 1_000)
    expect(((await res.json()) as { store: string }).store).toBe('unavailable')
  })

  it('/readyz: the bus down is reported but keeps the instance ready (sign-ins work from the store)', async () => {
    const { app, deps } = await world()
    deps.events.ready = () => false
    const res = await app.request('/readyz')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ok', store: 'ok', bus: 'unavailable', draining: false })
  })

  it('an app built without a drain state still answers both (never draining)', async () => {
    const deps = await createTestDeps()
    const app = createApp(deps)
    expect((await app.request('/readyz')).status).toBe(200)
    expect((await app.request('/healthz')).status).toBe(200)
  })
})
