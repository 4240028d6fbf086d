import type { BrowserContext, Page } from '@playwright/test'
import { expect, signIn, status, test, urls } from './fixtures.ts'

/**
 * Hostile twins run in a real browser: evil.localhost holds a window reference to News (it
 * opened it), so its messages reach News's page and News's passport frame for real, past CSP,
 * and only the frame's and the SDK's own `event.source` / `event.origin` checks stand between.
 */

type Evil = Window & { victim: Window | null; received: unknown[] }

/** Frame API calls made by any page of the profile from now on. */
function watchFrameApi(context: BrowserContext): string[] {
  const calls: string[] = []
  context.on('request', (r) => {
    if (r.url().includes('/api/frame/')) calls.push(r.url())
  })
  return calls
}

/** Alice is signed in on News; evil.localhost opens News in a window of its own. */
async function evilOpensNews(context: BrowserContext): Promise<{ evil: Page; opened: Page }> {
  const news = await context.newPage()
  await signIn(news, urls.news, 'alice', 'alice-password-1')
  await expect(status(news)).toHaveText('Signed in as alice')
  const evil = await context.newPage()
  await evil.goto(urls.evil)
  const popup = context.waitForEvent('page')
  await evil.evaluate((url) => {
    const w = window as unknown as Evil
    w.victim = window.open(url)
  }, urls.news)
  const opened = await popup
  await expect(status(opened)).toHaveText('Signed in as alice')
  // Let the opened tab settle (its frame may fetch a live ticket once) before counting calls.
  await opened.waitForTimeout(1500)
  return { evil, opened }
}

test('A1, A4, A10: evil.localhost opens News and posts into its passport frame: no reply, no frame API call, still signed in', async ({
  browserContext,
}) => {
  const { evil, opened } = await evilOpensNews(browserContext)
  const calls = watchFrameApi(browserContext)
  await evil.evaluate(() => {
    const w = window as unknown as Evil
    const frame = w.victim?.[0] // News's only iframe: the passport frame
    if (!frame) throw new Error('no frame in the opened window')
    for (let i = 0; i < 200; i++) {
      for (const type of ['hello', 'token_request', 'refresh', 'check', 'logout', 'code_exchange']) {
        frame.postMessage(
          { v: 1, type, id: `evil-${type}-${i}`, code: 'a'.repeat(43), codeVerifier: 'v'.repeat(43) },
          '*',
        )
      }
    }
  })
  await evil.waitForTimeout(2000)
  expect(await evil.evaluate(() => (window as unknown as Evil).received)).toEqual([])
  expect(calls).toEqual([])
  await expect(status(opened)).toHaveText('Signed in as alice')
})

test("A8: evil.localhost posts a forged token and a forged sign-out into News's page: the SDK takes neither", async ({
  browserContext,
}) => {
  const { evil, opened } = await evilOpensNews(browserContext)
  const before = await opened.evaluate(() =>
    (window as unknown as { passport: { getToken(): Promise<string> } }).passport.getToken(),
  )
  await evil.evaluate(() => {
    const w = window as unknown as Evil
    for (let i = 1; i <= 50; i++) {
      w.victim?.postMessage({ v: 1, type: 'token_response', id: String(i), token: 'attacker.token.x' }, '*')
      w.victim?.postMessage({ v: 1, type: 'session_event', event: 'signed_out', reason: 'revoked' }, '*')
    }
  })
  await evil.waitForTimeout(1000)
  await expect(status(opened)).toHaveText('Signed in as alice')
  const after = await opened.evaluate(() =>
    (window as unknown as { passport: { getToken(): Promise<string> } }).passport.getToken(),
  )
  expect(after).toBe(before)
})

test('F3: evil.localhost opening the live channel carries its own Origin and gets no socket', async ({
  browserContext,
}) => {
  const evil = await browserContext.newPage()
  await evil.goto(urls.evil)
  const cdp = await browserContext.newCDPSession(evil)
  await cdp.send('Network.enable')
  const sentOrigin = new Promise<string | undefined>((resolve) => {
    cdp.on('Network.webSocketWillSendHandshakeRequest', (e) =>
      resolve(e.request.headers.Origin ?? e.request.headers.origin),
    )
  })
  const outcome = await evil.evaluate(
    (passport) =>
      new Promise<{ opened: boolean; messages: number; code: number }>((resolve) => {
        const ws = new WebSocket(
          `${passport.replace('http', 'ws')}/live?ticket=${'a'.repeat(43)}&site=news`,
          ['passport.v1', `code.${'b'.repeat(43)}`],
        )
        let opened = false
        let messages = 0
        ws.onopen = () => {
          opened = true
        }
        ws.onmessage = () => {
          messages += 1
        }
        ws.onclose = (e) => resolve({ opened, messages, code: e.code })
      }),
    urls.passport,
  )
  // The server answers the upgrade 403 for any Origin but its own (unit test F3, even with a
  // valid ticket); here the browser shows it sends evil's Origin and gets no socket at all.
  expect(await sentOrigin).toBe(urls.evil.slice(0, -1))
  expect(outcome).toEqual({ opened: false, messages: 0, code: 1006 })
})

/**
 * What the passport answered to requests evil.localhost's page made (the browser itself hides
 * the answers from the page: they are cross-origin, and CORP blocks them).
 */
async function answersTo(evil: Page, pattern: string): Promise<Map<string, number>> {
  const statuses = new Map<string, number>()
  await evil.route(pattern, async (route) => {
    // Node does not resolve *.localhost as browsers do: the same request, headers and all, by address.
    const url = new URL(route.request().url())
    url.hostname = '127.0.0.1'
    const response = await route.fetch({ url: url.href })
    statuses.set(new URL(route.request().url()).pathname, response.status())
    await route.fulfill({ response })
  })
  return statuses
}

test('G4 (token lifecycle twin): evil.localhost calling the frame API itself, cookies and all, is refused 403', async ({
  browserContext,
}) => {
  const evil = await browserContext.newPage()
  await evil.goto(urls.evil)
  const statuses = await answersTo(evil, `${urls.passport}/api/frame/**`)
  const paths = ['token', 'check', 'live-ticket', 'approval', 'approval/details', 'logout']
  await evil.evaluate(
    ({ passport, paths }) =>
      Promise.all(
        paths.map((path) =>
          // text/plain: a "simple" request the browser sends without a preflight, as an attacker would.
          fetch(`${passport}/api/frame/${path}`, {
            method: 'POST',
            mode: 'no-cors',
            credentials: 'include',
            headers: { 'Content-Type': 'text/plain' },
            body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: 'x'.repeat(43) }),
          }).catch(() => null),
        ),
      ),
    { passport: urls.passport, paths },
  )
  expect(Object.fromEntries(statuses)).toEqual(Object.fromEntries(paths.map((p) => [`/api/frame/${p}`, 403])))
})

test('CIBA twin (H6): evil.localhost can neither start nor poll a backchannel request from the browser', async ({
  browserContext,
}) => {
  const evil = await browserContext.newPage()
  await evil.goto(urls.evil)
  const statuses = await answersTo(evil, `${urls.passport}/{bc-authorize,token}`)
  await evil.evaluate(
    (passport) =>
      Promise.all([
        fetch(`${passport}/bc-authorize`, {
          method: 'POST',
          mode: 'no-cors',
          body: new URLSearchParams({ scope: 'openid', login_hint: 'alice', client_id: 'news' }),
        }).catch(() => null),
        fetch(`${passport}/token`, {
          method: 'POST',
          mode: 'no-cors',
          body: new URLSearchParams({
            grant_type: 'urn:openid:params:grant-type:ciba',
            auth_req_id: 'a'.repeat(43),
            client_id: 'news',
          }),
        }).catch(() => null),
      ]),
    urls.passport,
  )
  expect(Object.fromEntries(statuses)).toEqual({ '/bc-authorize': 401, '/token': 401 })
})
