import type { Hono } from 'hono'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../app.ts'
import {
  authorizeRequest,
  authorizeUrl,
  basicAuth,
  type CookieJar,
  formPost,
  frameApi,
  loginForm,
  openSignInPage,
  signIn,
  sitePost,
} from '../../test-flows.ts'
import { addSite, addUser, createTestDeps, type TestDeps } from '../../test-support.ts'
import type { Store } from '../types.ts'
import { openPostgresStore } from './index.ts'
import { type OwnPostgres, startOwnPostgres } from './test-own-postgres.ts'

/**
 * PostgreSQL going away under a running passport, on a server of the test's own: stopped
 * (connections ended, new ones refused) and frozen (nothing answers). Sign-in, refresh and
 * introspection answer 503 temporarily_unavailable within 2 s, nothing is minted, and once the
 * database is back the same store serves again by itself (the pool opens new connections).
 */
describe('postgres outage', () => {
  let server: OwnPostgres
  let store: Store
  let deps: TestDeps
  let app: Hono
  let news: Awaited<ReturnType<typeof addSite>>
  let alice: Awaited<ReturnType<typeof addUser>>

  beforeAll(async () => {
    server = await startOwnPostgres()
    await server.createDatabase('passport')
    store = await openPostgresStore(server.url('passport'), { poolSize: 4 })
    deps = await createTestDeps({ store })
    app = createApp(deps)
    alice = await addUser(deps, 'alice')
    news = await addSite(deps, { id: 'news' })
  }, 90_000)
  afterAll(async () => {
    await store?.close()
    await server?.dispose()
  }, 60_000)

  /** What the database holds that a request could have minted (read on a connection of its own). */
  const minted = async () => {
    const client = new pg.Client({ connectionString: server.url('passport') })
    await client.connect()
    try {
      const count = async (table: string) =>
        Number((await client.query(`SELECT COUNT(*) AS n FROM ${table}`)).rows[0]?.n)
      return {
        tokens: await count('tokens'),
        refresh: await count('refresh_tokens'),
        codes: await count('codes'),
      }
    } finally {
      await client.end()
    }
  }

  /** The requests a device and a site backend make, each timed. */
  const requests = async (
    device: { refresh: string; token: string },
    signingIn: { jar: CookieJar; csrf: string; req: ReturnType<typeof authorizeRequest> },
  ) => {
    const timed = async (name: string, send: () => Response | Promise<Response>) => {
      const started = performance.now()
      const res = await send()
      return { name, ms: performance.now() - started, status: res.status, body: await res.text() }
    }
    return [
      await timed('sign-in page', () =>
        app.request(authorizeUrl(authorizeRequest('news', news.site.redirectUris[0]))),
      ),
      await timed('sign-in', () =>
        formPost(
          app,
          '/login',
          signingIn.jar,
          Object.fromEntries(loginForm(signingIn.req, alice, signingIn.csrf)),
        ),
      ),
      await timed('refresh', () =>
        frameApi(app, 'token', {
          grant_type: 'refresh_token',
          authkey: news.authkey,
          refresh_token: device.refresh,
        }),
      ),
      await timed('introspect', () =>
        sitePost(app, '/token/introspect', { token: device.token }, basicAuth('news', news.clientSecret)),
      ),
    ]
  }

  const expectUnavailable = (answers: Awaited<ReturnType<typeof requests>>) => {
    for (const answer of answers) {
      expect(answer.status, answer.name).toBe(503)
      expect(JSON.parse(answer.body), answer.name).toEqual({ error: 'temporarily_unavailable' })
      expect(answer.ms, answer.name).toBeLessThan(2000)
    }
  }

  /** Waits (bounded) until the app answers introspection again, without anything being reopened. */
  const recovered = async (token: string) => {
    const deadline = Date.now() + 15_000
    for (;;) {
      const res = await sitePost(app, '/token/introspect', { token }, basicAuth('news', news.clientSecret))
      if (res.status === 200) return (await res.json()) as { active: boolean }
      if (Date.now() > deadline) throw new Error(`not recovered: ${res.status}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  const prepare = async () => {
    const device = await signIn(app, news, alice)
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', news.site.redirectUris[0])
    const csrf = await openSignInPage(app, jar, req)
    return {
      device: { refresh: device.body.refresh_token, token: device.token },
      signingIn: { jar, req, csrf },
    }
  }

  const stillWorks = async (device: { refresh: string; token: string }) => {
    expect((await recovered(device.token)).active).toBe(true)
    const res = await frameApi(app, 'token', {
      grant_type: 'refresh_token',
      authkey: news.authkey,
      refresh_token: device.refresh,
    })
    expect(res.status).toBe(200)
    await signIn(app, news, alice)
  }

  it('stopped: 503 within 2 s for sign-in, refresh and introspection, nothing minted; recovers when it is back', async () => {
    const { device, signingIn } = await prepare()
    const before = await minted()
    await server.stop()
    try {
      expectUnavailable(await requests(device, signingIn))
    } finally {
      await server.start()
    }
    expect(await minted()).toEqual(before)
    await stillWorks(device)
  }, 90_000)

  it('frozen (nothing answers, nothing refuses): 503 within 2 s, nothing minted; recovers when it thaws', async () => {
    const { device, signingIn } = await prepare()
    const before = await minted()
    server.freeze()
    try {
      expectUnavailable(await requests(device, signingIn))
    } finally {
      server.thaw()
    }
    expect(await minted()).toEqual(before)
    await stillWorks(device)
  }, 90_000)
})
