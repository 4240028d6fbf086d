import type { Page } from '@playwright/test'
import WebSocket from 'ws'
import { createTestFrameKey } from '../../passport-server/src/test-dpop.ts'
import { expect, message, signIn, status, test, testPorts, urls } from './fixtures.ts'

/**
 * Issue 13: a site token opens nothing but its site. Everything a page (or a site backend, or a
 * log) holds is taken from a real signed-in News tab and replayed from a program outside the
 * browser, with any Origin and any header: the frame's API and the live socket refuse it, and
 * the tab stays signed in. The frame itself keeps working because only it holds its key.
 */

const passportInternal = `http://127.0.0.1:${testPorts.passport}`
const liveUrl = `ws://127.0.0.1:${testPorts.passport}/live?site=news`
const forged = { Origin: urls.passport, 'Sec-Fetch-Site': 'same-origin', 'Content-Type': 'application/json' }
const thief = createTestFrameKey()

/** What News's page holds: its token (from the SDK), its authkey (in its HTML). */
async function takenFromNewsPage(page: Page) {
  const token = await page.evaluate(() =>
    (window as unknown as { passport: { getToken(): Promise<string> } }).passport.getToken(),
  )
  const authkey = (await page.locator('script[data-authkey]').getAttribute('data-authkey')) ?? ''
  // What a copy of the frame's own storage holds (the refresh credential; the key is not there).
  const frame = page.frames().find((f) => f.url().includes('/frame/news'))
  const stored = JSON.parse(
    (await frame?.evaluate(() => localStorage.getItem('passport:token:news'))) ?? '{}',
  )
  return { token, authkey, refreshToken: String(stored.refreshToken ?? '') }
}

/** A POST from a program: forged browser headers, optionally the thief's own valid DPoP proof. */
async function replay(
  path: string,
  body: Record<string, unknown>,
  headers: Record<string, string>,
  proof: boolean,
) {
  const url = `${urls.passport}${path}`
  const send = async (nonce: string | null) =>
    fetch(`${passportInternal}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: {
        ...forged,
        ...headers,
        ...(proof
          ? {
              DPoP: thief.proof({
                url,
                nonce,
                ...(headers.Authorization?.startsWith('DPoP ')
                  ? { accessToken: headers.Authorization.slice(5) }
                  : {}),
              }),
            }
          : {}),
      },
    })
  const first = await send(null)
  // Give the thief every advantage: a fresh server nonce, as the frame would use.
  return first.status === 401 && proof ? send(first.headers.get('DPoP-Nonce')) : first
}

/** Opens the live socket from a program and answers its challenge with the thief's proof. */
function liveWithStolenToken(token: string): Promise<{ code: number; heard: string[] }> {
  return new Promise((resolve) => {
    const heard: string[] = []
    const ws = new WebSocket(liveUrl, ['passport.v2'], { headers: { Origin: urls.passport } })
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { type: string; nonce?: string }
      if (msg.type !== 'challenge') {
        heard.push(msg.type)
        return
      }
      const proof = thief.proof({
        method: 'GET',
        url: `${urls.passport.replace(/^http/, 'ws')}/live`,
        accessToken: token,
        nonce: msg.nonce ?? '',
      })
      ws.send(JSON.stringify({ type: 'auth', token, proof }))
    })
    ws.on('close', (code) => resolve({ code, heard }))
    ws.on('error', () => resolve({ code: -1, heard }))
  })
}

test.describe('frame-bound credentials (DPoP)', () => {
  test("a live token taken from News's page opens nothing at the frame's API or the live socket; the tab stays signed in", async ({
    browserContext,
  }) => {
    await browserContext.clock.install() // to move past the forced-refresh spacing at the end
    const news = await browserContext.newPage()
    await signIn(news, urls.news, 'alice', 'alice-password-1')
    await expect(status(news)).toHaveText('Signed in as alice')
    const taken = await takenFromNewsPage(news)
    expect(taken.token.split('.')).toHaveLength(3)
    expect(taken.refreshToken).toMatch(/^[0-9a-f-]{36}\.\d+\.[A-Za-z0-9_-]{43}$/)

    const attempts: [string, Record<string, unknown>, Record<string, string>][] = [
      ['/api/frame/check', { authkey: taken.authkey }, { Authorization: `DPoP ${taken.token}` }],
      [
        '/api/frame/check',
        { authkey: taken.authkey, token: taken.token },
        { Authorization: `Bearer ${taken.token}` },
      ],
      ['/api/frame/logout', { authkey: taken.authkey }, { Authorization: `DPoP ${taken.token}` }],
      ['/api/frame/logout', { authkey: taken.authkey, token: taken.token }, {}],
      [
        '/api/frame/approval',
        { authkey: taken.authkey, approval_id: 'x', deny: true },
        { Authorization: `DPoP ${taken.token}` },
      ],
      ['/api/frame/live-ticket', { authkey: taken.authkey, token: taken.token }, {}],
      [
        '/api/frame/token',
        { grant_type: 'refresh_token', authkey: taken.authkey, refresh_token: taken.refreshToken },
        {},
      ],
      [
        '/api/frame/token',
        { grant_type: 'session', authkey: taken.authkey },
        { Authorization: `DPoP ${taken.token}` },
      ],
    ]
    for (const [path, body, headers] of attempts) {
      for (const proof of [false, true]) {
        const res = await replay(path, body, headers, proof)
        expect([400, 401, 403, 404], `${path} proof=${proof}`).toContain(res.status)
        expect(await res.text()).not.toContain('access_token')
      }
    }
    const socket = await liveWithStolenToken(taken.token)
    expect(socket.code).toBe(4401)
    expect(socket.heard).toEqual([])

    // Nothing changed: the tab is signed in, its token is valid, and its own frame still refreshes
    // with the very credential that was copied (it was never consumed).
    await news.waitForTimeout(300)
    await expect(status(news)).toHaveText('Signed in as alice')
    const check = await news.evaluate(() =>
      (window as unknown as { passport: { check(): Promise<{ valid: boolean }> } }).passport.check(),
    )
    expect(check.valid).toBe(true)
    await browserContext.clock.fastForward('00:31') // a forced refresh rotates once per 30 s
    const refreshed = await news.evaluate(() =>
      (window as unknown as { passport: { refresh(): Promise<string> } }).passport.refresh(),
    )
    expect(refreshed).not.toBe(taken.token)
  })

  test('a reload of News within validity makes no non-GET request to the passport, and a sign-out on Shop still arrives within a second', async ({
    browserContext,
  }) => {
    const news = await browserContext.newPage()
    await signIn(news, urls.news, 'alice', 'alice-password-1')
    await expect(status(news)).toHaveText('Signed in as alice')
    const shop = await browserContext.newPage()
    await shop.goto(urls.shop)
    await expect(status(shop)).toHaveText('Signed in as alice')

    const writes: string[] = []
    const sockets: WebSocketLike[] = []
    browserContext.on('request', (r) => {
      if (r.url().startsWith(urls.passport) && r.method() !== 'GET') writes.push(`${r.method()} ${r.url()}`)
    })
    news.on('websocket', (ws) => sockets.push(ws))
    await news.reload()
    await expect(status(news)).toHaveText('Signed in as alice')
    await expect.poll(() => sockets.length).toBe(1)
    // The socket carries no credential in its URL: it authenticates on the socket itself.
    expect(sockets[0]?.url()).toMatch(/\/live\?site=news(&last_event_id=\d+)?$/)
    await news.waitForTimeout(500)
    expect(writes).toEqual([])

    await shop.getByRole('button', { name: 'Sign out' }).click()
    await expect(message(news)).toHaveText('You were signed out on another site.', { timeout: 1_000 })
  })
})

type WebSocketLike = { url(): string }

test("a page on News's own origin, holding News's token, cannot approve a device sign-in", async ({
  browserContext,
  newDevice,
}) => {
  const news = await browserContext.newPage()
  // bob: the device-approval specs spend alice's request quota on this shared passport
  await signIn(news, urls.news, 'bob', 'bob-password-1')
  await expect(status(news)).toHaveText('Signed in as bob')
  const asking = await (await newDevice()).newPage()
  await asking.goto(urls.shop)
  await asking.getByRole('button', { name: 'Sign in', exact: true }).click()
  await asking.getByLabel('Username for sign-in with another device').fill('bob')
  await asking.getByRole('button', { name: 'Sign in with another device' }).click()
  const code = (await asking.locator('#approval-code').textContent())?.trim() ?? ''
  expect(code).toMatch(/^\d\d$/)
  const prompt = news
    .frameLocator('iframe[title="Passport"]')
    .getByRole('dialog', { name: 'Sign-in request' })
  await expect(prompt).toBeVisible({ timeout: 2_000 })

  // Script on News (an XSS, or News itself) tries every way a page has to reach the frame's API.
  const outcomes = await news.evaluate(
    async ({ passport, code }) => {
      const token = await (
        window as unknown as { passport: { getToken(): Promise<string> } }
      ).passport.getToken()
      const authkey = document.querySelector('script[data-authkey]')?.getAttribute('data-authkey') ?? ''
      const body = JSON.stringify({ authkey, token, approval_id: 'any', pick: code, code })
      const tries = [
        () =>
          fetch(`${passport}/api/frame/approval`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Authorization: `DPoP ${token}` },
            body,
            credentials: 'include',
          }),
        () =>
          fetch(`${passport}/api/frame/approval`, {
            method: 'POST',
            mode: 'no-cors',
            body,
            credentials: 'include',
          }),
      ]
      const out: string[] = []
      for (const attempt of tries) {
        try {
          const res = await attempt()
          out.push(`status ${res.status}`)
        } catch {
          out.push('blocked')
        }
      }
      return out
    },
    { passport: urls.passport, code },
  )
  // CORS blocks the first outright; the opaque no-cors post is refused by the server.
  expect(outcomes[0]).toBe('blocked')
  await asking.waitForTimeout(500)
  // The request is still open: the new device still waits, the trusted device is still asked.
  await expect(asking.locator('#approval-code')).toHaveText(code)
  await expect(prompt).toBeVisible()
  await asking.getByRole('button', { name: 'Cancel this request' }).click()
})

test("Shop's tokens are DPoP-bound: what a log or a proxy saw of its requests opens nothing at its backend", async ({
  browserContext,
}) => {
  const shop = await browserContext.newPage()
  await signIn(shop, urls.shop, 'alice', 'alice-password-1')
  await expect(status(shop)).toHaveText('Signed in as alice') // the page's own calls carry the frame's proofs
  // What a log or a proxy sees of one request the page makes to its backend.
  const seen = shop.waitForRequest((r) => r.url().endsWith('/api/me'))
  await shop.reload()
  const headers = (await seen).headers()
  const token = (headers.authorization ?? '').replace(/^DPoP /, '')
  expect(headers.authorization).toMatch(/^DPoP /)
  expect(headers.dpop?.split('.')).toHaveLength(3)
  await expect(status(shop)).toHaveText('Signed in as alice')

  const api = `http://127.0.0.1:${testPorts.shop}/api/me`
  const asBrowser = `${urls.shop}api/me`
  const attempts: Record<string, string>[] = [
    { Authorization: `Bearer ${token}` },
    { Authorization: `DPoP ${token}` },
    { Authorization: `DPoP ${token}`, DPoP: headers.dpop ?? '' }, // the proof it saw, replayed
    {
      Authorization: `DPoP ${token}`,
      DPoP: thief.proof({ method: 'GET', url: asBrowser, accessToken: token }),
    },
  ]
  for (const attempt of attempts) {
    const res = await fetch(api, { headers: attempt })
    expect(res.status).toBe(401)
    expect(await res.json()).toEqual({ error: 'invalid_token', reason: 'invalid_proof' })
  }
  await expect(status(shop)).toHaveText('Signed in as alice')
})
