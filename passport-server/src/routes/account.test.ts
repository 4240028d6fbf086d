import { describe, expect, test } from 'vitest'
import type { SessionEndEvent } from '../events/bus.ts'
import { type CookieJar, cookieHeader, csrfOf, formPost, signIn, storeCookies } from '../test-flows.ts'
import { createTestWorld, EVIL_ORIGIN } from '../test-support.ts'

/** Opens "Your devices" with this browser's cookies; returns the page and its CSRF value. */
async function openAccount(app: Awaited<ReturnType<typeof createTestWorld>>['app'], jar: CookieJar) {
  const res = await app.request('/account?devices=plain', { headers: { Cookie: cookieHeader(jar) } })
  storeCookies(jar, res)
  const html = await res.text()
  // The page's forms repeat the CSRF cookie (a page with no other device has no form).
  const csrf = csrfOf(html) || (jar.get('__Host-passport_csrf') ?? '')
  return { res, html, csrf }
}

function endDevice(
  app: Awaited<ReturnType<typeof createTestWorld>>['app'],
  jar: CookieJar,
  form: Record<string, string>,
  headers: Record<string, string> = {},
) {
  return formPost(app, '/account/sessions/end', jar, form, headers)
}

const sessionIds = (html: string) => [...html.matchAll(/data-session="([^"]+)"/g)].map((m) => m[1])

describe('Your devices', () => {
  test('without a passport session: 401, nothing listed', async () => {
    const { app } = await createTestWorld()
    const { res, html } = await openAccount(app, new Map())
    expect(res.status).toBe(401)
    expect(html).not.toContain('data-session')
  })

  test("lists the user's live devices and their sites; only other devices get a Sign out", async () => {
    const { app, news, shop, alice, bob } = await createTestWorld()
    const here = await signIn(app, news, alice)
    await signIn(app, shop, alice) // another device, on Shop
    await signIn(app, news, bob) // someone else entirely
    const { res, html } = await openAccount(app, here.jar)
    expect(res.status).toBe(200)
    expect(res.headers.get('Content-Security-Policy')).toContain("frame-ancestors 'none'")
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    expect(sessionIds(html)).toHaveLength(2)
    expect(html).toContain('(this device)')
    expect(html).toContain('Sites: news')
    expect(html).toContain('Sites: shop')
    expect(html.match(/Sign out this device/g)).toHaveLength(1)
  })

  test('by default the page carries no device: its script fetches them sealed; a noscript link offers the plain list', async () => {
    const { app, news, shop, alice } = await createTestWorld()
    const here = await signIn(app, news, alice)
    await signIn(app, shop, alice)
    const res = await app.request('/account', { headers: { Cookie: cookieHeader(here.jar) } })
    const html = await res.text()
    expect(res.status).toBe(200)
    expect(sessionIds(html)).toHaveLength(0)
    expect(html).not.toContain('Sites: ')
    expect(html).toContain('data-sealed="devices"')
    expect(html).toContain('<noscript>')
    expect(html).toContain('href="/account?devices=plain"')
    expect(html).toContain('src="http://passport.localhost:8080/sign-in.js"')
    // The CSP allows that file (a module), not the whole origin.
    expect(res.headers.get('Content-Security-Policy')).toMatch(
      /script-src[^;]*http:\/\/passport\.localhost:8080\/sign-in\.js/,
    )
    expect(res.headers.get('Content-Security-Policy')).not.toMatch(/script-src[^;]*'self'/)
  })

  /** @see issue 16: the password change form posts nothing in clear; without JavaScript, a sentence. */
  test('"Change password" is a script-driven form with no password field name; the plain page only explains', async () => {
    const { app, news, alice } = await createTestWorld()
    const here = await signIn(app, news, alice)
    const sealed = await (
      await app.request('/account', { headers: { Cookie: cookieHeader(here.jar) } })
    ).text()
    const form = /<form id="password-change"[^>]*>[\s\S]*?<\/form>/.exec(sealed)?.[0] ?? ''
    expect(form).toContain('data-username="alice"')
    expect(form).toMatch(/data-iterations="\d+"/)
    expect(form).toMatch(/ hidden>/) // shown by the script only
    // No action, no method, no named field: nothing a browser without the script could post.
    expect(form).not.toMatch(/\s(action|method|name)=/)
    expect(sealed).toMatch(/<noscript>[^<]*<p class="site">Changing your password needs JavaScript/)
    const plain = (await openAccount(app, here.jar)).html
    expect(plain).toContain('Changing your password needs JavaScript')
    expect(plain).not.toContain('id="password-change"')
  })

  test('signing another device out ends its session as revoked and publishes it', async () => {
    const { app, news, shop, alice, deps } = await createTestWorld()
    const events: SessionEndEvent[] = []
    deps.events.subscribe((e) => events.push(e))
    const here = await signIn(app, news, alice)
    await signIn(app, shop, alice)
    const { html, csrf } = await openAccount(app, here.jar)
    const other =
      /<li class="device" data-session="([^"]+)">(?:(?!this device)[\s\S])*?Sign out this device/.exec(
        html,
      )?.[1] ?? ''
    const res = await endDevice(app, here.jar, { csrf, session: other })
    expect(res.status).toBe(200)
    expect(await res.text()).toContain('That device is signed out.')
    expect((await deps.store.sessions.get(other))?.endReason).toBe('revoked')
    expect(events).toEqual([
      expect.objectContaining({ type: 'session_ended', sessionId: other, reason: 'revoked' }),
    ])
  })

  test("another user's device, this device, or an unknown id: 404, nothing ends", async () => {
    const { app, news, alice, bob, deps } = await createTestWorld()
    const here = await signIn(app, news, alice)
    const bobs = await signIn(app, news, bob)
    const bobSession = sessionIds((await openAccount(app, bobs.jar)).html)[0] ?? ''
    const { html, csrf } = await openAccount(app, here.jar)
    const mine = sessionIds(html)[0] ?? ''
    for (const session of [bobSession, mine, 'nope']) {
      expect((await endDevice(app, here.jar, { csrf, session })).status).toBe(404)
    }
    expect((await deps.store.sessions.get(bobSession))?.endedAt).toBeNull()
    expect((await deps.store.sessions.get(mine))?.endedAt).toBeNull()
  })

  test.each([
    ['a cross-site post', { 'Sec-Fetch-Site': 'cross-site' }, true],
    ['a foreign Origin', { Origin: EVIL_ORIGIN }, true],
    ['a missing CSRF value', {}, false],
  ])('%s is refused with 403 and ends nothing', async (_, headers, withCsrf) => {
    const { app, news, shop, alice, deps } = await createTestWorld()
    const here = await signIn(app, news, alice)
    await signIn(app, shop, alice)
    const { html, csrf } = await openAccount(app, here.jar)
    const ids = sessionIds(html)
    for (const session of ids) {
      const res = await endDevice(
        app,
        here.jar,
        { ...(withCsrf ? { csrf } : {}), session: session ?? '' },
        headers,
      )
      expect(res.status).toBe(403)
    }
    for (const id of ids) expect((await deps.store.sessions.get(id ?? ''))?.endedAt).toBeNull()
  })
})
