import type { CDPSession, Page } from '@playwright/test'
import { expect, message, signIn, status, test, urls } from './fixtures.ts'

/**
 * Issue 16 item 1: with JavaScript on, the passport's sign-in page signs in with SCRAM-SHA-256
 * over its socket, and the password is in no request (URL, header, body) and no WebSocket frame
 * the browser sent or received: read from the browser's own network log (Playwright's request
 * events for HTTP, CDP `Network.webSocketFrame*` for the socket).
 */
const PASSWORD = 'alice-password-1'

interface WireLog {
  requests: string[]
  framesSent: string[]
  framesReceived: string[]
  socketUrls: string[]
}

async function recordWire(page: Page): Promise<{ log: WireLog; cdp: CDPSession }> {
  const log: WireLog = { requests: [], framesSent: [], framesReceived: [], socketUrls: [] }
  page.context().on('request', (r) => {
    log.requests.push(`${r.method()} ${r.url()}\n${JSON.stringify(r.headers())}\n${r.postData() ?? ''}`)
  })
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Network.enable')
  cdp.on('Network.webSocketCreated', (e) => log.socketUrls.push(e.url))
  cdp.on('Network.webSocketFrameSent', (e) => log.framesSent.push(e.response.payloadData))
  cdp.on('Network.webSocketFrameReceived', (e) => log.framesReceived.push(e.response.payloadData))
  return { log, cdp }
}

test.describe('SCRAM sign-in (no password on the wire)', () => {
  // PBKDF2 runs in the page; on a loaded shared machine the whole round trip takes a while.
  test.setTimeout(90_000)
  const slow = { timeout: 30_000 }
  test('alice signs in on News over the socket; the password is in no request and no frame; Shop follows with no typing', async ({
    browserContext,
  }) => {
    const news = await browserContext.newPage()
    const { log } = await recordWire(news)
    await signIn(news, urls.news, 'alice', PASSWORD)
    await expect(status(news)).toHaveText('Signed in as alice', slow)

    // The socket was used: client-first, client-final out; server-first, server-final in.
    expect(log.socketUrls.some((u) => u.endsWith('/login/socket'))).toBe(true)
    const sentTypes = log.framesSent.map((f) => JSON.parse(f).type)
    expect(sentTypes).toEqual(['client_first', 'client_final'])
    const receivedTypes = log.framesReceived.map((f) => JSON.parse(f).type)
    expect(receivedTypes).toEqual(['server_first', 'server_final'])
    // The completion was an ordinary top-level post carrying the one-time result, no password.
    const completion = log.requests.find((r) => r.startsWith('POST ') && r.includes('/login/scram'))
    expect(completion).toBeTruthy()
    expect(completion).toContain('result=')
    expect(completion).not.toContain('password=')
    expect(log.requests.some((r) => r.startsWith(`POST ${urls.passport}/login\n`))).toBe(false)

    for (const text of [...log.requests, ...log.framesSent, ...log.framesReceived]) {
      expect(text).not.toContain(PASSWORD)
      expect(text).not.toContain(encodeURIComponent(PASSWORD))
    }

    const shop = await browserContext.newPage()
    await shop.goto(urls.shop)
    await expect(status(shop)).toHaveText('Signed in as alice', slow)
    await expect(shop.getByLabel('Username', { exact: true })).toHaveCount(0)
  })

  test('a wrong password is refused with the generic answer', async ({ browserContext }) => {
    const news = await browserContext.newPage()
    await signIn(news, urls.news, 'alice', 'not-alices-password')
    await expect(news.getByRole('alert')).toHaveText('Wrong username or password.', slow)
    await expect(news).toHaveURL(/passport\.localhost/)
    await expect(message(news)).toHaveCount(0)
  })

  test('hostile twin: evil.localhost opening the sign-in socket is refused by Origin', async ({
    browserContext,
  }) => {
    const evil = await browserContext.newPage()
    await evil.goto(urls.evil)
    const outcome = await evil.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url, 'passport.scram.v1')
          ws.onopen = () => resolve('open')
          ws.onerror = () => resolve('refused')
          setTimeout(() => resolve('timeout'), 5000)
        }),
      `${urls.passport.replace('http', 'ws')}/login/socket`,
    )
    expect(outcome).toBe('refused')
  })
})
