import { describe, expect, it } from 'vitest'
import { randomSecret } from '../crypto/random.ts'
import type { LiveCommand, SessionEndEvent } from '../events/bus.ts'
import { CSRF_COOKIE } from '../middleware/csrf.ts'
import { listAudit, purgeAudit, recordAudit } from '../services/audit.ts'
import { SESSION_COOKIE, startSession } from '../services/sessions.ts'
import { signIn } from '../test-flows.ts'
import { addUser, createTestWorld, EVIL_ORIGIN, TEST_ISSUER } from '../test-support.ts'

/** @see issue 19: the operator console. */
async function consoleWorld() {
  const world = await createTestWorld()
  const { deps } = world
  const root = await addUser(deps, 'root')
  await deps.store.users.setAdmin(root.id, true)
  const adminSession = await startSession(deps, root.id, 'Mozilla/5.0 Chrome/156.0 Linux', 'password')
  const aliceSession = await startSession(deps, world.alice.id, 'Mozilla/5.0 Chrome/156.0 Linux', 'password')
  const csrf = randomSecret()
  const cookieOf = (sessionValue: string | null) =>
    [sessionValue ? `${SESSION_COOKIE}=${sessionValue}` : '', `${CSRF_COOKIE}=${csrf}`]
      .filter(Boolean)
      .join('; ')
  const call = (
    method: string,
    path: string,
    options: {
      as?: 'admin' | 'alice' | 'nobody'
      origin?: string | null
      csrf?: string | null
      body?: unknown
    } = {},
  ) => {
    const as = options.as ?? 'admin'
    const sessionValue =
      as === 'admin' ? adminSession.cookieValue : as === 'alice' ? aliceSession.cookieValue : null
    const headers: Record<string, string> = { Cookie: cookieOf(sessionValue) }
    const origin = options.origin === undefined ? TEST_ISSUER : options.origin
    if (origin !== null) headers.Origin = origin
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json'
      const token = options.csrf === undefined ? csrf : options.csrf
      if (token !== null) headers['X-Passport-CSRF'] = token
    }
    return world.app.request(path, {
      method,
      headers,
      ...(method !== 'GET' ? { body: JSON.stringify(options.body ?? {}) } : {}),
    })
  }
  return { ...world, root, adminSession, aliceSession, call }
}

type World = Awaited<ReturnType<typeof consoleWorld>>

/** Every console route with a request that succeeds for an admin, and the audit type it writes. */
function routesOf(w: World): { method: string; path: string; body?: unknown; audit?: string }[] {
  const sid = encodeURIComponent(w.aliceSession.session.id)
  const alice = encodeURIComponent(w.alice.id)
  return [
    { method: 'GET', path: '/admin' },
    { method: 'GET', path: '/admin/api/sites' },
    { method: 'GET', path: '/admin/api/users' },
    { method: 'GET', path: '/admin/api/sessions' },
    { method: 'GET', path: '/admin/api/audit' },
    { method: 'GET', path: '/admin/api/sites/news/authkey', audit: 'console_authkey_shown' },
    {
      method: 'POST',
      path: '/admin/api/sites',
      body: { id: 'blog', origins: ['http://blog.localhost:8084'] },
      audit: 'console_site_registered',
    },
    {
      method: 'POST',
      path: '/admin/api/sites/news',
      body: {
        name: 'News!',
        origins: ['http://news.localhost:8081'],
        loginModes: ['password', 'device', 'ciba'],
      },
      audit: 'console_site_updated',
    },
    { method: 'POST', path: '/admin/api/sites/news/rotate-authkey', audit: 'console_authkey_rotated' },
    {
      method: 'POST',
      path: '/admin/api/sites/news/refresh-before',
      body: { seconds: 120 },
      audit: 'console_refresh_lead_changed',
    },
    {
      method: 'POST',
      path: '/admin/api/users',
      body: { username: 'carol', password: 'carol-password-1' },
      audit: 'console_user_added',
    },
    {
      method: 'POST',
      path: `/admin/api/users/${alice}/admin`,
      body: { isAdmin: false },
      audit: 'console_admin_revoked',
    },
    {
      method: 'POST',
      path: `/admin/api/sessions/${sid}/sites/news/refresh`,
      audit: 'console_refresh_now',
    },
    { method: 'POST', path: `/admin/api/sessions/${sid}/sites/news/end`, audit: 'console_site_ended' },
    { method: 'POST', path: `/admin/api/sessions/${sid}/sign-out`, audit: 'console_device_signed_out' },
    { method: 'POST', path: `/admin/api/users/${alice}/sign-out`, audit: 'console_user_signed_out' },
    {
      method: 'POST',
      path: `/admin/api/users/${alice}/password`,
      body: { password: 'alice-password-2' },
      audit: 'console_password_reset',
    },
    {
      method: 'POST',
      path: `/admin/api/users/${alice}/disabled`,
      body: { disabled: true },
      audit: 'console_user_disabled',
    },
    { method: 'POST', path: '/admin/api/sites/shop/remove', audit: 'console_site_removed' },
    { method: 'POST', path: '/admin/logout', audit: 'console_sign_out' },
  ]
}

describe('operator console routes', () => {
  it('refuses every console route to a non-admin, to another origin, and (changes) without the CSRF value', async () => {
    const w = await consoleWorld()
    const before = JSON.stringify(await w.deps.store.sites.list())
    for (const route of routesOf(w)) {
      const refusals = [
        await w.call(route.method, route.path, { as: 'alice', body: route.body }),
        await w.call(route.method, route.path, { origin: EVIL_ORIGIN, body: route.body }),
        await w.call(route.method, route.path, { as: 'nobody', body: route.body }),
      ]
      if (route.method !== 'GET') {
        refusals.push(await w.call(route.method, route.path, { csrf: null, body: route.body }))
        refusals.push(await w.call(route.method, route.path, { csrf: randomSecret(), body: route.body }))
        // A change needs the Origin header itself (every browser sends it with a POST).
        refusals.push(await w.call(route.method, route.path, { origin: null, body: route.body }))
      }
      for (const [i, res] of refusals.entries()) {
        // Signed in nowhere: the console page answers with its sign-in form (401), all else 403.
        const expected = route.path === '/admin' && i === 2 ? 401 : 403
        expect({ route: `${route.method} ${route.path}`, i, status: res.status }).toEqual({
          route: `${route.method} ${route.path}`,
          i,
          status: expected,
        })
      }
    }
    // Nothing changed, and nobody was signed out.
    expect(JSON.stringify(await w.deps.store.sites.list())).toBe(before)
    expect((await w.deps.store.sessions.get(w.aliceSession.session.id))?.endedAt).toBeNull()
    expect(await w.deps.store.users.findByUsername('carol')).toBeNull()
    // A cross-site navigation to the page is refused too; the address bar is not.
    const crossSite = await w.app.request('/admin', {
      headers: { Cookie: `${SESSION_COOKIE}=${w.adminSession.cookieValue}`, 'Sec-Fetch-Site': 'cross-site' },
    })
    expect(crossSite.status).toBe(403)
    const typed = await w.app.request('/admin', {
      headers: { Cookie: `${SESSION_COOKIE}=${w.adminSession.cookieValue}`, 'Sec-Fetch-Site': 'none' },
    })
    expect(typed.status).toBe(200)
  })

  it('serves the console page framed by nobody, with scripts from the passport only', async () => {
    const w = await consoleWorld()
    const res = await w.call('GET', '/admin')
    expect(res.status).toBe(200)
    const csp = res.headers.get('Content-Security-Policy') ?? ''
    expect(csp).toContain("frame-ancestors 'none'")
    expect(csp).toContain("script-src 'self'")
    expect(csp).not.toMatch(/https?:\/\/(?!passport\.localhost)/)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
  })

  it('records every console action in the audit log, with the admin as actor', async () => {
    const w = await consoleWorld()
    for (const route of routesOf(w)) {
      const res = await w.call(route.method, route.path, { body: route.body })
      expect({ route: route.path, status: res.status }).toEqual({ route: route.path, status: 200 })
      if (route.audit) {
        const rows = await listAudit(w.deps, { type: route.audit })
        expect({ route: route.path, actor: rows[0]?.actor }).toEqual({ route: route.path, actor: 'root' })
      }
    }
  })

  it('signs a device out with the event pushed, and records the session end', async () => {
    const w = await consoleWorld()
    const events: SessionEndEvent[] = []
    w.deps.events.subscribe((e) => events.push(e))
    const res = await w.call(
      'POST',
      `/admin/api/sessions/${encodeURIComponent(w.aliceSession.session.id)}/sign-out`,
    )
    expect(res.status).toBe(200)
    expect(events).toMatchObject([
      { type: 'session_ended', sessionId: w.aliceSession.session.id, reason: 'revoked' },
    ])
    expect(await listAudit(w.deps, { type: 'session_ended', userId: w.alice.id })).toHaveLength(1)
  })

  it('ends one site for a device (pushed) and keeps its other sites', async () => {
    const w = await consoleWorld()
    const signedIn = await signIn(w.app, w.news, w.alice)
    const sessionId = (await w.deps.store.sessions.listByUser(w.alice.id)).find(
      (s) => s.method === 'password' && s.id !== w.aliceSession.session.id,
    )?.id as string
    const events: SessionEndEvent[] = []
    w.deps.events.subscribe((e) => events.push(e))
    const res = await w.call('POST', `/admin/api/sessions/${encodeURIComponent(sessionId)}/sites/news/end`)
    expect(await res.json()).toEqual({ ended: true })
    expect(events).toMatchObject([
      { type: 'site_access_ended', sessionId, siteId: 'news', reason: 'revoked' },
    ])
    expect(signedIn.token).toBeTruthy()
    expect((await w.deps.store.sessions.get(sessionId))?.endedAt).toBeNull()
  })

  it('"Refresh now" publishes refresh_now for the device and site', async () => {
    const w = await consoleWorld()
    const commands: LiveCommand[] = []
    w.deps.events.subscribeCommands((c) => commands.push(c))
    const sid = w.aliceSession.session.id
    const res = await w.call('POST', `/admin/api/sessions/${encodeURIComponent(sid)}/sites/shop/refresh`)
    expect(res.status).toBe(200)
    expect(commands).toMatchObject([{ type: 'refresh_now', sessionId: sid, siteId: 'shop' }])
  })

  it('disabling a user ends every session (pushed) and refuses their sign-in', async () => {
    const w = await consoleWorld()
    const signedIn = await signIn(w.app, w.news, w.alice)
    const events: SessionEndEvent[] = []
    w.deps.events.subscribe((e) => events.push(e))
    const res = await w.call('POST', `/admin/api/users/${encodeURIComponent(w.alice.id)}/disabled`, {
      body: { disabled: true },
    })
    expect(await res.json()).toEqual({ sessionsEnded: 2 })
    expect(events.filter((e) => e.type === 'session_ended')).toHaveLength(2)
    expect(signedIn.token).toBeTruthy()
    await expect(signIn(w.app, w.news, w.alice)).rejects.toThrow(/login failed: 401/)
    // Enabled again: signs in.
    await w.call('POST', `/admin/api/users/${encodeURIComponent(w.alice.id)}/disabled`, {
      body: { disabled: false },
    })
    await expect(signIn(w.app, w.news, w.alice)).resolves.toBeTruthy()
  })

  it('lists live sessions with their sites, tokens and sign-in method', async () => {
    const w = await consoleWorld()
    await signIn(w.app, w.news, w.alice)
    const res = await w.call('GET', '/admin/api/sessions')
    const body = (await res.json()) as {
      sessions: { username: string; sites: { siteId: string }[]; method: string }[]
    }
    const alice = body.sessions.filter((s) => s.username === 'alice')
    expect(alice).toHaveLength(2)
    expect(alice.flatMap((s) => s.sites.map((x) => x.siteId))).toEqual(['news'])
  })

  it('editing a site keeps its client secret and authkey unless the origins change or a rotation is asked', async () => {
    const w = await consoleWorld()
    const before = await w.deps.store.sites.get('news')
    const res = await w.call('POST', '/admin/api/sites/news', {
      body: { origins: ['http://news.localhost:8081'], tokenTtlSeconds: 600, loginModes: ['password'] },
    })
    const body = (await res.json()) as { rotated: boolean; site: Record<string, unknown> }
    expect(body.rotated).toBe(false)
    expect(body.site).not.toHaveProperty('clientSecretHash')
    const after = await w.deps.store.sites.get('news')
    expect(after?.clientSecretHash).toBe(before?.clientSecretHash)
    expect(after?.authkeyVersion).toBe(before?.authkeyVersion)
    expect(after?.tokenTtlSeconds).toBe(600)
    const bad = await w.call('POST', '/admin/api/sites/news', { body: { origins: ['http://*.evil'] } })
    expect(bad.status).toBe(400)
  })

  it('filters the audit log by user, site, type and time', async () => {
    const w = await consoleWorld()
    const t0 = w.deps.clock.now()
    await recordAudit(w.deps, { type: 'x', actor: 'root', userId: w.alice.id, siteId: 'news' })
    w.deps.clock.advance(60_000)
    await recordAudit(w.deps, { type: 'y', actor: 'root', userId: w.bob.id, siteId: 'shop' })
    const query = async (q: string) =>
      (
        (await (await w.call('GET', `/admin/api/audit?${q}`)).json()) as { events: { type: string }[] }
      ).events.map((e) => e.type)
    expect(await query('user=alice')).toEqual(['x'])
    expect(await query('site=shop')).toEqual(['y'])
    expect(await query('type=x')).toEqual(['x'])
    expect(await query(`since=${t0 + 1}&type=y`)).toEqual(['y'])
    expect(await query(`until=${t0 + 1}&user=alice`)).toEqual(['x'])
  })

  it('keeps audit rows for the retention and purges older ones', async () => {
    const w = await consoleWorld()
    await recordAudit(w.deps, { type: 'old', actor: null })
    w.deps.clock.advance(91 * 86_400_000)
    await recordAudit(w.deps, { type: 'new', actor: null })
    expect(await purgeAudit(w.deps)).toBeGreaterThanOrEqual(1)
    const types = (await listAudit(w.deps, {})).map((e) => e.type)
    expect(types).toContain('new')
    expect(types).not.toContain('old')
  })

  it('signs an admin in at /admin/login, and gives a non-admin the wrong-password answer', async () => {
    const w = await consoleWorld()
    const form = await w.app.request('/admin/login')
    const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? ''
    const cookie = `${CSRF_COOKIE}=${csrf}`
    const post = (username: string, password: string) =>
      w.app.request('/admin/login', {
        method: 'POST',
        body: new URLSearchParams({ csrf, username, password }),
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          Origin: TEST_ISSUER,
          'Sec-Fetch-Site': 'same-origin',
          Cookie: cookie,
        },
      })
    expect((await post('alice', w.alice.password)).status).toBe(401)
    const ok = await post('root', w.root.password)
    expect(ok.status).toBe(303)
    expect(ok.headers.get('Location')).toBe('/admin')
    expect(await listAudit(w.deps, { type: 'console_sign_in' })).toHaveLength(1)
  })
})
