import http from 'node:http'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { registerSite } from '../src/services/registry.ts'
import { endSession } from '../src/services/sessions.ts'
import { COMPACT_TOKEN, type CookieJar, cookieHeader, signIn, storeCookies } from '../src/test-flows.ts'
import { addUser, freePort, startTestServer } from '../src/test-support.ts'
import { type PassportSessionOptions, safeReturnTo } from './passport-session.ts'

/**
 * The server-side session middleware's behaviour, run against the Hono and the Express
 * adapter alike (`hono-session.test.ts`, `express-session.test.ts`): a real passport on
 * loopback, the site's app on loopback, and a small browser of cookie jars in between.
 */

/** The site's public origin (what the passport has registered); requests go to its loopback address. */
export const DOCS_ORIGIN = 'http://docs.localhost:8083'
const EVIL = 'http://evil.localhost:8084'

/**
 * The app under test, with the middleware in front of:
 * - `GET /` and any other page: `user:<username>` or `signed out:<reason>`
 * - `POST /bye`: calls `logout()`, answers `bye`
 */
export type StartSite = (
  options: PassportSessionOptions,
  port: number,
) => Promise<{ url: string; close(): Promise<void> }>

interface Hop {
  url: string
  status: number
  location: string | null
  setCookies: string[]
}

/**
 * An HTTP request with exactly these headers (fetch would set `Sec-Fetch-Mode: cors` itself),
 * answered as a fetch Response (a streamed body, every Set-Cookie).
 */
function rawRequest(url: string, method: string, headers: Record<string, string>): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const out = new Headers()
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        out.append(res.rawHeaders[i] as string, res.rawHeaders[i + 1] as string)
      }
      const status = res.statusCode ?? 500
      const body =
        status === 204 || status === 304 ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>)
      resolve(new Response(body, { status, headers: out }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** Follows redirects like a browser tab, with a cookie jar per server (cookies ignore ports). */
class Browser {
  readonly passportJar: CookieJar = new Map()
  readonly siteJar: CookieJar = new Map()
  private readonly issuer: string
  private readonly siteUrl: string
  constructor(issuer: string, siteUrl: string) {
    this.issuer = issuer
    this.siteUrl = siteUrl
  }

  /** The loopback address a public URL is served at. */
  private route(url: string): { target: string; jar: CookieJar } {
    if (url.startsWith(this.issuer)) return { target: url, jar: this.passportJar }
    if (url.startsWith(DOCS_ORIGIN))
      return { target: this.siteUrl + url.slice(DOCS_ORIGIN.length), jar: this.siteJar }
    throw new Error(`the browser left for ${url}`)
  }

  async request(url: string, init: RequestInit = {}, headers: Record<string, string> = {}) {
    const { target, jar } = this.route(url)
    const res = await rawRequest(target, init.method ?? 'GET', { Cookie: cookieHeader(jar), ...headers })
    storeCookies(jar, res)
    return res
  }

  /** A top-level navigation: every hop, the last one's body. */
  async navigate(url: string, headers: Record<string, string> = {}): Promise<{ hops: Hop[]; body: string }> {
    const hops: Hop[] = []
    let next = url
    for (let i = 0; i < 8; i++) {
      const res = await this.request(
        next,
        {},
        { 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'document', ...headers },
      )
      const location = res.headers.get('Location')
      hops.push({ url: next, status: res.status, location, setCookies: res.headers.getSetCookie() })
      if (res.status < 300 || res.status >= 400 || !location) return { hops, body: await res.text() }
      await res.body?.cancel()
      next = new URL(location, next).href
    }
    throw new Error('redirect loop')
  }
}

export function sessionMiddlewareCases(framework: string, startSite: StartSite): void {
  describe(`${framework}: passportSession()`, () => {
    let passport: Awaited<ReturnType<typeof startTestServer>>
    let site: { url: string; close(): Promise<void> }
    let docs: Awaited<ReturnType<typeof registerSite>>
    let news: Awaited<ReturnType<typeof registerSite>>
    let alice: Awaited<ReturnType<typeof addUser>>
    let siteNow: number

    const newBrowser = () => new Browser(passport.issuer, site.url)
    /** A browser signed in at the passport (on News), not yet on Docs. */
    const signedInBrowser = async () => {
      const browser = newBrowser()
      const signed = await signIn(passport.server.app, news, alice, browser.passportJar, passport.issuer)
      return { browser, newsToken: signed.token }
    }

    beforeEach(async () => {
      passport = await startTestServer()
      siteNow = Date.now()
      alice = await addUser(passport.deps, 'alice')
      news = await registerSite(passport.deps, { id: 'news', origins: ['http://news.localhost:8081'] })
      // The site's port is chosen first: the passport needs its back-channel logout address.
      const port = await freePort()
      docs = await registerSite(passport.deps, {
        id: 'docs',
        origins: [DOCS_ORIGIN],
        redirectUris: [`${DOCS_ORIGIN}/passport/callback`],
        backchannelLogoutUri: `http://127.0.0.1:${port}/passport/backchannel-logout`,
      })
      site = await startSite(
        {
          issuer: passport.issuer,
          siteId: 'docs',
          clientSecret: docs.clientSecret,
          cookieSecret: 'a-test-cookie-secret-of-32-characters!',
          baseUrl: DOCS_ORIGIN,
          silentRetrySeconds: 60,
          now: () => siteNow,
        },
        port,
      )
    })

    afterEach(async () => {
      await site.close()
      await passport.server.close()
    })

    test('signed in at the passport: the first page load arrives signed in, in three redirects', async () => {
      const { browser } = await signedInBrowser()
      const { hops, body } = await browser.navigate(`${DOCS_ORIGIN}/guide?x=1`)
      expect(body).toBe('user:alice')
      expect(hops.map((h) => h.status)).toEqual([302, 303, 302, 200])
      // 1: straight to the passport, silently, with PKCE and state.
      const authorize = new URL(hops[0]?.location ?? '')
      expect(authorize.origin + authorize.pathname).toBe(`${passport.issuer}/authorize`)
      expect(Object.fromEntries(authorize.searchParams)).toMatchObject({
        response_type: 'code',
        client_id: 'docs',
        redirect_uri: `${DOCS_ORIGIN}/passport/callback`,
        prompt: 'none',
        code_challenge_method: 'S256',
      })
      expect(authorize.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(authorize.searchParams.get('response_mode')).toBeNull()
      const auth = hops[0]?.setCookies.find((c) => c.startsWith('__Host-passport_auth='))
      expect(auth).toMatch(/; Path=\/; HttpOnly; SameSite=Lax; Secure; Max-Age=600$/)
      // 3: the callback answers the page asked for, with an opaque session cookie.
      expect(hops[2]?.location).toBe('/guide?x=1')
      const session = hops[2]?.setCookies.find((c) => c.startsWith('__Host-passport_session='))
      expect(session).toMatch(
        /^__Host-passport_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Secure$/,
      )
      expect(hops[2]?.setCookies.find((c) => c.startsWith('__Host-passport_auth='))).toMatch(/Max-Age=0/)
      // No token ever reaches the browser.
      for (const hop of hops) expect(`${hop.location} ${hop.setCookies.join(' ')}`).not.toMatch(COMPACT_TOKEN)
      // The next page: the session, no round trip.
      const again = await browser.navigate(`${DOCS_ORIGIN}/`)
      expect(again.hops).toHaveLength(1)
      expect(again.body).toBe('user:alice')
    })

    test('login_required: back to the page signed out, one silent try per silentRetrySeconds', async () => {
      const browser = newBrowser()
      const first = await browser.navigate(`${DOCS_ORIGIN}/`)
      expect(first.hops.map((h) => h.status)).toEqual([302, 303, 302, 200])
      expect(first.body).toBe('signed out:')
      const silent = first.hops[2]?.setCookies.find((c) => c.startsWith('__Host-passport_silent='))
      expect(silent).toMatch(/HttpOnly; SameSite=Lax; Secure; Max-Age=60$/)
      const second = await browser.navigate(`${DOCS_ORIGIN}/other`)
      expect(second.hops).toHaveLength(1)
      expect(second.body).toBe('signed out:')
      siteNow += 61_000
      const third = await browser.navigate(`${DOCS_ORIGIN}/`)
      expect(third.hops).toHaveLength(4)
    })

    test('a page fetch without a session is not redirected', async () => {
      const res = await newBrowser().request(
        `${DOCS_ORIGIN}/`,
        {},
        { 'Sec-Fetch-Mode': 'cors', 'Sec-Fetch-Dest': 'empty' },
      )
      expect(res.status).toBe(200)
      expect(await res.text()).toBe('signed out:')
    })

    test('state mismatch, a missing or tampered sign-in cookie: 400, no session', async () => {
      const { browser } = await signedInBrowser()
      const start = await browser.request(`${DOCS_ORIGIN}/`, {}, { 'Sec-Fetch-Mode': 'navigate' })
      const authorize = await browser.request(start.headers.get('Location') ?? '')
      const callback = authorize.headers.get('Location') ?? ''
      const state = new URL(callback).searchParams.get('state') ?? ''
      const auth = browser.siteJar.get('__Host-passport_auth') ?? ''
      const cases: [string, string | null][] = [
        [callback.replace(state, 'A'.repeat(43)), auth],
        [callback, null],
        [callback, `${auth.slice(0, 5)}${auth[5] === 'A' ? 'B' : 'A'}${auth.slice(6)}`],
        [callback, auth.replace(/\.[^.]*$/, '.AAAA')],
      ]
      for (const [url, cookie] of cases) {
        if (cookie === null) browser.siteJar.delete('__Host-passport_auth')
        else browser.siteJar.set('__Host-passport_auth', cookie)
        const res = await browser.request(url)
        expect(res.status).toBe(400)
        expect(
          res.headers
            .getSetCookie()
            .some((c) => c.startsWith('__Host-passport_session=') && !/Max-Age=0/.test(c)),
        ).toBe(false)
      }
    })

    test('a replayed callback is refused (the code is spent), and signs nobody in', async () => {
      const { browser } = await signedInBrowser()
      const { hops } = await browser.navigate(`${DOCS_ORIGIN}/`)
      const callback = hops[2]?.url ?? ''
      const other = newBrowser()
      // The same callback URL with the same sign-in cookie, as a copy of the traffic would have it.
      const authCookie = hops[0]?.setCookies[0]?.split(';')[0]?.split('=').slice(1).join('=') ?? ''
      other.siteJar.set('__Host-passport_auth', authCookie)
      const res = await other.request(callback)
      expect(res.status).toBe(400)
      expect(other.siteJar.has('__Host-passport_session')).toBe(false)
    })

    test("PKCE: a code issued to another browser's sign-in does not redeem with this one's verifier", async () => {
      const victim = (await signedInBrowser()).browser
      const attacker = (await signedInBrowser()).browser
      // The attacker's code, delivered into the victim's own sign-in (state matches the victim's cookie).
      const a = await attacker.request(`${DOCS_ORIGIN}/`, {}, { 'Sec-Fetch-Mode': 'navigate' })
      const attackerCallback = new URL(
        (await attacker.request(a.headers.get('Location') ?? '')).headers.get('Location') ?? '',
      )
      const v = await victim.request(`${DOCS_ORIGIN}/`, {}, { 'Sec-Fetch-Mode': 'navigate' })
      const victimCallback = new URL(
        (await victim.request(v.headers.get('Location') ?? '')).headers.get('Location') ?? '',
      )
      victimCallback.searchParams.set('code', attackerCallback.searchParams.get('code') ?? '')
      const res = await victim.request(victimCallback.href)
      expect(res.status).toBe(400)
      expect(victim.siteJar.has('__Host-passport_session')).toBe(false)
    })

    test('an answer whose iss is not the passport is refused (mix-up)', async () => {
      const { browser } = await signedInBrowser()
      const start = await browser.request(`${DOCS_ORIGIN}/`, {}, { 'Sec-Fetch-Mode': 'navigate' })
      const callback = new URL(
        (await browser.request(start.headers.get('Location') ?? '')).headers.get('Location') ?? '',
      )
      callback.searchParams.set('iss', EVIL)
      const res = await browser.request(callback.href)
      expect(res.status).toBe(400)
      expect(browser.siteJar.has('__Host-passport_session')).toBe(false)
    })

    test('a tampered or unknown session cookie is no session', async () => {
      const { browser } = await signedInBrowser()
      await browser.navigate(`${DOCS_ORIGIN}/`)
      browser.siteJar.set('__Host-passport_session', 'A'.repeat(43))
      const res = await browser.request(`${DOCS_ORIGIN}/`, {}, { 'Sec-Fetch-Mode': 'cors' })
      expect(await res.text()).toBe('signed out:')
    })

    test.each([
      ['//evil.localhost:8084/x', '/'],
      ['/\\evil.localhost', '/'],
      ['https://evil.localhost/', '/'],
      ['/..//evil.localhost/x', '/'],
      ['/.//evil.localhost', '/'],
      ['/ok?a=1', '/ok?a=1'],
      ['/%2F%2Fevil', '/%2F%2Fevil'],
      ['javascript:alert(1)', '/'],
      ['/\u0000x', '/'],
    ])('return URL %j comes back as %j', (input, expected) => {
      expect(safeReturnTo(input)).toBe(expected)
    })

    test('open redirect attempts through the page path or /passport/login end on this site', async () => {
      const { browser } = await signedInBrowser()
      const viaLogin = await browser.navigate(
        `${DOCS_ORIGIN}/passport/login?return_to=${encodeURIComponent(EVIL)}`,
      )
      expect(viaLogin.hops.at(-2)?.location).toBe('/')
      expect(viaLogin.body).toBe('user:alice')
      const res = await rawRequest(`${site.url}//evil.localhost:8084/x`, 'GET', {
        'Sec-Fetch-Mode': 'navigate',
      })
      const auth = res.headers.getSetCookie().find((c) => c.startsWith('__Host-passport_auth=')) ?? ''
      const payload = JSON.parse(Buffer.from(auth.split('=')[1]?.split('.')[0] ?? '', 'base64url').toString())
      expect(payload.returnTo).toBe('/')
    })

    test('back-channel logout ends the session at once and tells its open tab', async () => {
      const { browser, newsToken } = await signedInBrowser()
      await browser.navigate(`${DOCS_ORIGIN}/`)
      const events = await browser.request(`${DOCS_ORIGIN}/passport/events`)
      expect(events.headers.get('Content-Type')).toBe('text/event-stream')
      const reader = (events.body as ReadableStream<Uint8Array>).getReader()
      const decoder = new TextDecoder()
      let text = decoder.decode((await reader.read()).value)
      expect(text).toContain(': signed in')
      // A sign-out on News (the whole passport session ends).
      const sid = JSON.parse(Buffer.from(newsToken.split('.')[1] ?? '', 'base64url').toString()).sid
      const session = await passport.deps.store.sessions.get(sid)
      if (!session) throw new Error('no session')
      const started = Date.now()
      await endSession(passport.deps, session, 'signed_out')
      while (!text.includes('event: signed_out')) {
        const chunk = await reader.read()
        if (chunk.done) break
        text += decoder.decode(chunk.value)
      }
      expect(Date.now() - started).toBeLessThan(1000)
      expect(text).toContain('event: signed_out\ndata: {"reason":"signed_out"}')
      const after = await browser.request(`${DOCS_ORIGIN}/`, {}, { 'Sec-Fetch-Mode': 'cors' })
      expect(await after.text()).toBe('signed out:')
    })

    test('newest wins: a newer device on Docs ends the older one, and its page says why', async () => {
      const older = (await signedInBrowser()).browser
      await older.navigate(`${DOCS_ORIGIN}/`)
      const newer = (await signedInBrowser()).browser
      expect((await newer.navigate(`${DOCS_ORIGIN}/`)).body).toBe('user:alice')
      // The back-channel logout arrives asynchronously; the older device's next page is signed out.
      let body = ''
      for (let i = 0; i < 50 && body !== 'signed out:replaced'; i++) {
        await new Promise((r) => setTimeout(r, 20))
        body = (await older.navigate(`${DOCS_ORIGIN}/`)).body
        older.siteJar.delete('__Host-passport_silent')
      }
      expect(body).toBe('signed out:replaced')
    })

    test('logout() signs out here and at the passport, and is not signed straight back in', async () => {
      const { browser, newsToken } = await signedInBrowser()
      await browser.navigate(`${DOCS_ORIGIN}/`)
      const res = await browser.request(
        `${DOCS_ORIGIN}/bye`,
        { method: 'POST' },
        { Origin: DOCS_ORIGIN, 'Sec-Fetch-Site': 'same-origin' },
      )
      expect(await res.text()).toBe('bye')
      expect(browser.siteJar.has('__Host-passport_session')).toBe(false)
      const status = await passport.deps.store.sessions.get(
        JSON.parse(Buffer.from(newsToken.split('.')[1] ?? '', 'base64url').toString()).sid,
      )
      expect(status?.endReason).toBe('signed_out')
      const next = await browser.navigate(`${DOCS_ORIGIN}/`)
      expect(next.hops).toHaveLength(1)
      expect(next.body).toBe('signed out:')
    })

    test('POST /passport/logout from another site is refused and changes nothing', async () => {
      const { browser } = await signedInBrowser()
      await browser.navigate(`${DOCS_ORIGIN}/`)
      const res = await browser.request(
        `${DOCS_ORIGIN}/passport/logout`,
        { method: 'POST' },
        { Origin: EVIL, 'Sec-Fetch-Site': 'cross-site' },
      )
      expect(res.status).toBe(403)
      expect(res.headers.getSetCookie()).toEqual([])
      expect((await browser.navigate(`${DOCS_ORIGIN}/`)).body).toBe('user:alice')
    })

    test('a forged back-channel logout is refused', async () => {
      const res = await fetch(`${site.url}/passport/backchannel-logout`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'logout_token=eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0.',
      })
      expect(res.status).toBe(400)
    })
  })
}
