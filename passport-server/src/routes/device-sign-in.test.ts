import { describe, expect, test } from 'vitest'
import { openSealed, type SealedPurpose, wrapContentKey } from '../../../passport-frame/src/sign-in/sealed.ts'
import type { ApprovalNotice } from '../events/bus.ts'
import { APPROVAL_TTL_MS, BLOCK_AFTER_DENY_MS, RATE_WINDOW_MS } from '../services/device-approval.ts'
import {
  type AuthorizeRequest,
  authorizeRequest,
  authorizeUrl,
  type CookieJar,
  cookieHeader,
  csrfOf,
  exchangeCode,
  formPost,
  fragmentOf,
  frameApi,
  openSignInPage,
  signIn,
  storeCookies,
} from '../test-flows.ts'
import { addSite, allLogText, createTestWorld, EVIL_ORIGIN, TEST_ISSUER } from '../test-support.ts'
import { APPROVAL_COOKIE } from './device-sign-in.ts'

type World = Awaited<ReturnType<typeof createTestWorld>>

/** The new browser: opens Shop's sign-in page and asks to sign in with another device. */
async function askToSignIn(
  world: World,
  username = 'alice',
  jar: CookieJar = new Map(),
  site: { site: { id: string; redirectUris: string[] } } = world.shop,
) {
  const req = authorizeRequest(site.site.id, site.site.redirectUris[0])
  const csrf = await openSignInPage(world.app, jar, req)
  const res = await formPost(world.app, '/login/device', jar, {
    csrf,
    client_id: req.clientId,
    redirect_uri: req.redirectUri,
    state: req.state,
    code_challenge: req.challenge,
    response_mode: 'fragment',
    username,
  })
  return { req, jar, csrf, res }
}

async function waitingPage(world: World, jar: CookieJar) {
  const res = await world.app.request('/login/device', { headers: { Cookie: cookieHeader(jar) } })
  const html = await res.text()
  return { res, html, code: /id="approval-code"[^>]*>(\d\d)</.exec(html)?.[1] }
}

function pendingOf(world: World, userId = 'u_alice') {
  return world.deps.store.approvals.listPending(userId, world.deps.clock.now())
}

/** The trusted device (signed in on News) answers through its frame. */
function answerFromFrame(world: World, token: string, body: Record<string, unknown>, headers = {}) {
  return frameApi(world.app, 'approval', { authkey: world.news.authkey, token, ...body }, headers)
}

async function complete(world: World, jar: CookieJar, csrf: string) {
  return formPost(world.app, '/login/device/complete', jar, { csrf })
}

describe('sign in with another device: the new browser', () => {
  test('asks, is shown the code, is approved, and signs in on Shop with a normal session', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    const notices: ApprovalNotice[] = []
    world.deps.events.subscribeApprovals((n) => notices.push(n))

    const { req, jar, csrf, res } = await askToSignIn(world)
    expect(res.status).toBe(303)
    expect(res.headers.get('Location')).toBe('/login/device')
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith(`${APPROVAL_COOKIE}=`)) ?? ''
    expect(cookie).toMatch(/HttpOnly/i)
    expect(cookie).toMatch(/SameSite=Strict/i)
    expect(cookie).toMatch(/Secure/i)

    const page = await waitingPage(world, jar)
    expect(page.res.status).toBe(200)
    expect(page.res.headers.get('Cache-Control')).toBe('no-store')
    expect(page.res.headers.get('Content-Security-Policy')).toContain("frame-ancestors 'none'")
    const [pending] = await pendingOf(world)
    expect(page.code).toBe(pending?.code)
    expect(notices).toHaveLength(1)

    // Not yet approved: "continue" signs nothing in.
    const early = await complete(world, jar, csrf)
    expect(early.status).toBe(200)
    expect(early.headers.getSetCookie().some((c) => c.startsWith('__Host-passport_session='))).toBe(false)

    const picked = await answerFromFrame(world, trusted.token, { approval_id: pending?.id, code: page.code })
    expect(picked.status).toBe(200)
    expect(picked.headers.get('Cache-Control')).toBe('no-store')
    expect(await picked.json()).toEqual({ outcome: 'approved' })

    const wait = await world.app.request('/login/device/wait', { headers: { Cookie: cookieHeader(jar) } })
    expect(await wait.json()).toEqual({ status: 'approved' })

    const done = await complete(world, jar, csrf)
    expect(done.status).toBe(303)
    const fragment = fragmentOf(done)
    expect(fragment.get('state')).toBe(req.state)
    expect(jar.has('__Host-passport_session')).toBe(true)
    expect(jar.has(APPROVAL_COOKIE)).toBe(false)
    const token = await exchangeCode(world.app, world.shop.authkey, req, fragment.get('code') ?? '')
    expect(token.status).toBe(200)
    const sessions = await world.deps.store.sessions.listByUser('u_alice')
    expect(sessions.map((s) => s.method).sort()).toEqual(['device_approval', 'password'])
    expect(allLogText(world.deps.logs)).not.toContain(jar.get('__Host-passport_session'))
  })

  test('a replayed "continue" does nothing: one session, one code', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    const { jar, csrf } = await askToSignIn(world)
    const [pending] = await pendingOf(world)
    await answerFromFrame(world, trusted.token, { approval_id: pending?.id, code: pending?.code })
    const copy: CookieJar = new Map(jar) // the approval cookie, replayed by a copy of the browser
    expect((await complete(world, jar, csrf)).status).toBe(303)
    const again = await complete(world, copy, csrf)
    expect(again.status).toBe(200)
    expect(await again.text()).toContain('already used')
    expect(copy.has('__Host-passport_session')).toBe(false)
    expect(await world.deps.store.sessions.listByUser('u_alice')).toHaveLength(2)
    // A replayed approval from the trusted device does nothing either.
    const late = await answerFromFrame(world, trusted.token, {
      approval_id: pending?.id,
      code: pending?.code,
    })
    expect(late.status).toBe(410)
    expect(await late.json()).toEqual({ outcome: 'gone' })
  })

  test('G4: a cross-site post opens no request (login CSRF)', async () => {
    const world = await createTestWorld()
    const { jar, csrf } = await askToSignIn(world, 'nobody') // a CSRF value to reuse
    const req: AuthorizeRequest = authorizeRequest('shop', world.shop.site.redirectUris[0])
    const form = {
      csrf,
      client_id: 'shop',
      redirect_uri: req.redirectUri,
      state: 's',
      code_challenge: req.challenge,
      username: 'alice',
    }
    const res = await formPost(world.app, '/login/device', jar, form, {
      Origin: EVIL_ORIGIN,
      'Sec-Fetch-Site': 'cross-site',
    })
    expect(res.status).toBe(403)
    expect(await pendingOf(world)).toEqual([])
  })

  test('unknown site or redirect, or no username: 400 and no request', async () => {
    const world = await createTestWorld()
    const { jar, csrf, req } = await askToSignIn(world, 'nobody')
    const base = {
      csrf,
      client_id: 'shop',
      redirect_uri: req.redirectUri,
      state: 's',
      code_challenge: req.challenge,
      username: 'alice',
    }
    for (const bad of [
      { client_id: 'nope' },
      { redirect_uri: 'http://evil.localhost:8083/' },
      { code_challenge: 'short' },
      { username: '' },
      { username: 'a'.repeat(65) },
    ]) {
      expect((await formPost(world.app, '/login/device', jar, { ...base, ...bad })).status).toBe(400)
    }
    expect(await pendingOf(world)).toEqual([])
  })

  test('a fourth request within 10 minutes is refused with 429 and reaches no device', async () => {
    const world = await createTestWorld()
    const notices: ApprovalNotice[] = []
    world.deps.events.subscribeApprovals((n) => notices.push(n))
    for (let i = 0; i < 3; i++) {
      const { jar, csrf, res } = await askToSignIn(world)
      expect(res.status).toBe(303)
      await formPost(world.app, '/login/device/cancel', jar, { csrf }) // withdrawn: still counted
    }
    const fourth = await askToSignIn(world)
    expect(fourth.res.status).toBe(429)
    expect(fourth.res.headers.get('Retry-After')).toMatch(/^\d+$/)
    expect(await fourth.res.text()).toContain('Too many sign-in requests. Try again later.')
    expect(fourth.jar.has(APPROVAL_COOKIE)).toBe(false)
    expect(notices.filter((n) => n.type === 'approval_request')).toHaveLength(3)
    // An unknown username is refused at exactly the same point (no account discovery).
    for (let i = 0; i < 3; i++) expect((await askToSignIn(world, 'nobody')).res.status).toBe(303)
    expect((await askToSignIn(world, 'nobody')).res.status).toBe(429)
    world.deps.clock.advance(RATE_WINDOW_MS)
    expect((await askToSignIn(world)).res.status).toBe(303)
  })

  test('one wrong code from the trusted device ends the request: the waiting page says so', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    const { jar, csrf } = await askToSignIn(world)
    const [pending] = await pendingOf(world)
    const wrong = String((Number(pending?.code) + 1) % 100).padStart(2, '0')
    const res = await answerFromFrame(world, trusted.token, { approval_id: pending?.id, code: wrong })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ outcome: 'mismatch' })
    const wait = await world.app.request('/login/device/wait', { headers: { Cookie: cookieHeader(jar) } })
    expect(await wait.json()).toEqual({ status: 'cancelled' })
    expect((await waitingPage(world, jar)).html).toContain('a wrong number was entered')
    // The right code now comes too late.
    const late = await answerFromFrame(world, trusted.token, {
      approval_id: pending?.id,
      code: pending?.code,
    })
    expect(late.status).toBe(410)
    expect((await complete(world, jar, csrf)).status).toBe(200)
    expect(jar.has('__Host-passport_session')).toBe(false)
  })

  test('after "Deny, I did not ask for this" a new request is refused for an hour, then allowed', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    await askToSignIn(world)
    const [pending] = await pendingOf(world)
    await answerFromFrame(world, trusted.token, { approval_id: pending?.id, deny: true })
    const refused = await askToSignIn(world, 'Alice')
    expect(refused.res.status).toBe(403)
    expect(await refused.res.text()).toContain('not available for this account right now')
    expect(refused.jar.has(APPROVAL_COOKIE)).toBe(false)
    expect(await pendingOf(world)).toEqual([])
    world.deps.clock.advance(BLOCK_AFTER_DENY_MS - 1_000)
    expect((await askToSignIn(world)).res.status).toBe(403)
    world.deps.clock.advance(1_000)
    expect((await askToSignIn(world)).res.status).toBe(303)
  })

  test('a site without the `device` login mode offers no device sign-in and refuses it', async () => {
    const world = await createTestWorld()
    const blog = await addSite(world.deps, { id: 'blog', origins: ['http://blog.localhost:8084'] })
    expect(blog.site.loginModes).toEqual(['password'])
    const page = await world.app.request(authorizeUrl(authorizeRequest('blog', blog.site.redirectUris[0])))
    const html = await page.text()
    expect(html).toContain('action="/login"')
    expect(html).not.toContain('Sign in with another device')
    expect(html).not.toContain('action="/login/device"')
    // The shop (with the mode) offers it.
    const shopPage = await world.app.request(
      authorizeUrl(authorizeRequest('shop', world.shop.site.redirectUris[0])),
    )
    expect(await shopPage.text()).toContain('Sign in with another device')

    const { res } = await askToSignIn(world, 'alice', new Map(), blog)
    expect(res.status).toBe(403)
    expect(await res.text()).toContain('does not offer sign-in with another device')
    expect(await pendingOf(world)).toEqual([])
  })

  test('expiry cancels: the waiting page says so and continue signs nothing in', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    const { jar, csrf } = await askToSignIn(world)
    const [pending] = await pendingOf(world)
    world.deps.clock.advance(APPROVAL_TTL_MS)
    const wait = await world.app.request('/login/device/wait', { headers: { Cookie: cookieHeader(jar) } })
    expect(await wait.json()).toEqual({ status: 'expired' })
    expect((await waitingPage(world, jar)).html).toContain('expired before it was approved')
    const late = await answerFromFrame(world, trusted.token, {
      approval_id: pending?.id,
      code: pending?.code,
    })
    expect(late.status).toBe(410)
    expect(await late.json()).toEqual({ outcome: 'gone' })
    const done = await complete(world, jar, csrf)
    expect(done.status).toBe(200)
    expect(jar.has('__Host-passport_session')).toBe(false)
  })

  test('the long poll returns the moment the request is decided', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    const { jar } = await askToSignIn(world)
    const [pending] = await pendingOf(world)
    const started = Date.now()
    const wait = world.app.request('/login/device/wait', { headers: { Cookie: cookieHeader(jar) } })
    await new Promise((r) => setTimeout(r, 50))
    await answerFromFrame(world, trusted.token, { approval_id: pending?.id, deny: true })
    expect(await (await wait).json()).toEqual({ status: 'denied' })
    expect(Date.now() - started).toBeLessThan(2_000)
    expect((await waitingPage(world, jar)).html).toContain('denied on your other device')
  })

  test('a browser without a request: 404 on the wait and the page', async () => {
    const world = await createTestWorld()
    expect((await world.app.request('/login/device/wait')).status).toBe(404)
    expect((await world.app.request('/login/device')).status).toBe(404)
    const forged = await world.app.request('/login/device/wait', {
      headers: { Cookie: `${APPROVAL_COOKIE}=${'x'.repeat(43)}` },
    })
    expect(forged.status).toBe(404)
  })
})

describe('sign in with another device: the signed-in device answers through its frame', () => {
  test('refused when its own session has ended: 401, the request stays pending', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    await askToSignIn(world)
    const [pending] = await pendingOf(world)
    await frameApi(world.app, 'logout', { authkey: world.news.authkey, token: trusted.token })
    const res = await answerFromFrame(world, trusted.token, { approval_id: pending?.id, code: pending?.code })
    expect(res.status).toBe(401)
    expect(((await res.json()) as { error: string }).error).toBe('invalid_token')
    expect(await pendingOf(world)).toHaveLength(1)
  })

  test("another user's device cannot answer alice's request", async () => {
    const world = await createTestWorld()
    const bobs = await signIn(world.app, world.news, world.bob)
    await askToSignIn(world)
    const [pending] = await pendingOf(world)
    const res = await answerFromFrame(world, bobs.token, { approval_id: pending?.id, code: pending?.code })
    expect(res.status).toBe(403)
    expect(((await res.json()) as { error: string }).error).toBe('access_denied')
    expect(await pendingOf(world)).toHaveLength(1)
  })

  test('malformed answers: 400 invalid_request, nothing changes', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    await askToSignIn(world)
    const [pending] = await pendingOf(world)
    for (const body of [
      { approval_id: pending?.id },
      { approval_id: pending?.id, code: 'abc' },
      { approval_id: pending?.id, code: 42 },
      { approval_id: pending?.id, code: '7' },
      { approval_id: pending?.id, code: '100' },
      { approval_id: pending?.id, pick: pending?.code },
      { approval_id: pending?.id, code: pending?.code, deny: true },
      { approval_id: pending?.id, deny: 'yes' },
      { code: pending?.code },
      { approval_id: 'x'.repeat(65), code: pending?.code },
    ]) {
      const res = await answerFromFrame(world, trusted.token, body)
      expect(res.status).toBe(400)
      expect(((await res.json()) as { error: string }).error).toBe('invalid_request')
    }
    expect(await world.deps.store.approvals.get(pending?.id ?? '')).toMatchObject({ status: 'pending' })
  })

  test('a page on another origin cannot call it (403)', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    await askToSignIn(world)
    const [pending] = await pendingOf(world)
    const res = await answerFromFrame(
      world,
      trusted.token,
      { approval_id: pending?.id, code: pending?.code },
      { Origin: EVIL_ORIGIN, 'Sec-Fetch-Site': 'cross-site' },
    )
    expect(res.status).toBe(403)
    expect(await pendingOf(world)).toHaveLength(1)
  })
})

/**
 * @see issue 16: the live channel tells a signed-in device only that a request is open; what the
 * request says of itself the frame fetches sealed to a one-time key of its own.
 */
describe('sign in with another device: the request details, sealed for the frame', () => {
  async function setUp() {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    await askToSignIn(world)
    const [pending] = await pendingOf(world)
    const jwk = world.deps.keys.encryption.jwks[0]
    if (!jwk || !pending) throw new Error('no enc key or request')
    const wrap = (purpose: SealedPurpose = 'approvals', issuer = TEST_ISSUER) =>
      wrapContentKey(jwk, issuer, purpose, world.deps.clock.now())
    const ask = (token: string, seal: string, approvalId = pending.id, headers = {}) =>
      frameApi(
        world.app,
        'approval/details',
        { authkey: world.news.authkey, token, approval_id: approvalId, seal },
        headers,
      )
    return { world, trusted, pending, wrap, ask }
  }

  test('answers a JWE only the frame key opens: site, browser, address; nothing readable on the wire', async () => {
    const { trusted, wrap, ask } = await setUp()
    const { key, wrapped } = await wrap()
    const res = await ask(trusted.token, wrapped)
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    const text = await res.text()
    expect(text).not.toMatch(/shop|Shop|Firefox|Linux|10\.1|127\.0/)
    const details = await openSealed<Record<string, unknown>>(JSON.parse(text).sealed, key)
    expect(details).toMatchObject({ site_name: 'shop', binding_message: null })
    expect(typeof details.device).toBe('string')
    expect(typeof details.address).toBe('string')
  })

  test('refuses a replayed, tampered, wrong-purpose or wrong-passport seal (400), changing nothing', async () => {
    const { world, trusted, wrap, ask } = await setUp()
    const once = await wrap()
    expect((await ask(trusted.token, once.wrapped)).status).toBe(200)
    expect((await ask(trusted.token, once.wrapped)).status).toBe(400)
    const parts = (await wrap()).wrapped.split('.')
    parts[3] = `${parts[3]?.[0] === 'A' ? 'B' : 'A'}${parts[3]?.slice(1)}`
    expect((await ask(trusted.token, parts.join('.'))).status).toBe(400)
    expect((await ask(trusted.token, (await wrap('devices')).wrapped)).status).toBe(400)
    expect(
      (await ask(trusted.token, (await wrap('approvals', 'https://other.example')).wrapped)).status,
    ).toBe(400)
    expect((await ask(trusted.token, 'not-a-jwe')).status).toBe(400)
    expect(await pendingOf(world)).toHaveLength(1)
  })

  test("refuses another user's device and an unknown request alike (410), a dead token (401), a foreign origin (403)", async () => {
    const { world, trusted, wrap, ask } = await setUp()
    const bobs = await signIn(world.app, world.news, world.bob)
    const theirs = await ask(bobs.token, (await wrap()).wrapped)
    expect(theirs.status).toBe(410)
    expect(await theirs.text()).not.toMatch(/shop|Firefox/)
    expect((await ask(trusted.token, (await wrap()).wrapped, 'no-such-request')).status).toBe(410)
    expect(
      (
        await ask(trusted.token, (await wrap()).wrapped, undefined, {
          Origin: EVIL_ORIGIN,
          'Sec-Fetch-Site': 'cross-site',
        })
      ).status,
    ).toBe(403)
    await frameApi(world.app, 'logout', { authkey: world.news.authkey, token: trusted.token })
    expect((await ask(trusted.token, (await wrap()).wrapped)).status).toBe(401)
  })

  test('a decided or expired request: 410', async () => {
    const { world, trusted, pending, wrap, ask } = await setUp()
    world.deps.clock.advance(APPROVAL_TTL_MS + 1)
    expect((await ask(trusted.token, (await wrap()).wrapped)).status).toBe(410)
    expect(pending.id.length).toBeGreaterThan(0)
  })
})

describe('sign in with another device: the account page', () => {
  test('lists the pending request without its code or choices and takes the typed code', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    await askToSignIn(world)
    const [pending] = await pendingOf(world)
    // The sealed page (the default) names no request: its script fetches them sealed.
    const sealedPage = await world.app.request('/account', { headers: { Cookie: cookieHeader(trusted.jar) } })
    const sealedHtml = await sealedPage.text()
    expect(sealedHtml).toContain('data-sealed="approvals"')
    expect(sealedHtml).not.toContain('Sign-in request for')
    expect(sealedHtml).not.toContain(pending?.id ?? '-')
    // The no-JavaScript page lists it.
    const page = await world.app.request('/account?devices=plain', {
      headers: { Cookie: cookieHeader(trusted.jar) },
    })
    storeCookies(trusted.jar, page)
    const html = await page.text()
    expect(html).toContain('Sign-in request for shop')
    // A field to type the code into; never the code, nor numbers to choose from.
    expect(html).toMatch(/<input id="code-[^"]+" name="code" inputmode="numeric" autocomplete="off"/)
    expect(html).not.toContain(`>${pending?.code}<`)
    expect(html).not.toContain(`value="${pending?.code}"`)
    expect(html).not.toContain('name="pick"')
    expect(html).toContain('Deny, I did not ask for this')
    const csrf = csrfOf(html)
    const form = { csrf, approval: pending?.id ?? '', code: pending?.code ?? '' }
    // Cross-site: refused, nothing decided.
    const forged = await formPost(world.app, '/account/approvals/decide', trusted.jar, form, {
      Origin: EVIL_ORIGIN,
      'Sec-Fetch-Site': 'cross-site',
    })
    expect(forged.status).toBe(403)
    expect(await pendingOf(world)).toHaveLength(1)
    const res = await formPost(world.app, '/account/approvals/decide', trusted.jar, form)
    expect(res.status).toBe(200)
    expect(await res.text()).toContain('Approved: the other device is signing in.')
    expect(await pendingOf(world)).toEqual([])
  })

  test('the watch answers "changed" when a request arrives', async () => {
    const world = await createTestWorld()
    const trusted = await signIn(world.app, world.news, world.alice)
    const watch = world.app.request('/account/approvals/wait', {
      headers: { Cookie: cookieHeader(trusted.jar) },
    })
    await new Promise((r) => setTimeout(r, 50))
    await askToSignIn(world)
    expect(await (await watch).json()).toEqual({ changed: true })
    expect((await world.app.request('/account/approvals/wait')).status).toBe(401)
  })
})
