import { chromium } from '@playwright/test'
import { CHROMIUM, chromiumArgs, expect, signIn, status, test, urls } from './fixtures.ts'

/**
 * Issue 16 item 3 on the account page: "Your devices" travels sealed. The page's script wraps a
 * one-time key to the passport's `enc` key and fetches the list from `POST
 * /account/devices/sealed`; the answer is a JWE under that key. Read from the browser's own
 * network log: neither that answer nor the /account page itself carries any device name, site
 * list, session id or user agent string the page then shows.
 */
test.describe('sealed "Your devices"', () => {
  test.setTimeout(90_000)
  const slow = { timeout: 30_000 }

  test('the device list is shown, and unreadable in every response the browser received', async ({
    browserContext,
    newDevice,
  }) => {
    const mine = await browserContext.newPage()
    await signIn(mine, urls.news, 'alice', 'alice-password-1')
    await expect(status(mine)).toHaveText('Signed in as alice', slow)
    const other = await (await newDevice()).newPage()
    await signIn(other, urls.shop, 'alice', 'alice-password-1')
    await expect(status(other)).toHaveText('Signed in as alice', slow)

    const bodies: { url: string; body: string }[] = []
    const pending: Promise<void>[] = []
    mine.on('response', (r) => {
      pending.push(
        r
          .text()
          .then((body) => {
            bodies.push({ url: r.url(), body })
          })
          .catch(() => {}),
      )
    })
    await mine.goto(`${urls.passport}/account`)
    const devices = mine.locator('li.device')
    // Other tests' sign-ins of alice may still be live on this passport: at least these two.
    await expect(devices.filter({ hasText: '(this device)' })).toContainText('Sites: News', slow)
    await expect(devices.filter({ hasText: 'Sites: Shop' }).first()).toBeVisible()
    expect(await devices.count()).toBeGreaterThanOrEqual(2)
    expect(await mine.getByRole('button', { name: 'Sign out this device' }).count()).toBe(
      (await devices.count()) - 1,
    )
    await Promise.all(pending)

    // What the page shows, in pieces: device names, site lines, session ids, the user agent.
    const names = await devices.locator('strong').allTextContents()
    const lines = await devices.locator('span.site').allTextContents()
    const ids = await devices.evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.session ?? ''))
    const userAgent = await mine.evaluate(() => navigator.userAgent)
    const shown = [...names, ...lines, ...ids, userAgent, 'Sites: ', 'Chrome', 'Linux']
    expect(names.every((n) => n.length > 0)).toBe(true)
    expect(ids.every((id) => id.length > 0)).toBe(true)

    const sealed = bodies.filter((b) => b.url === `${urls.passport}/account/devices/sealed`)
    expect(sealed).toHaveLength(1)
    const answer = JSON.parse(sealed[0]?.body ?? '{}') as { sealed?: string }
    // A compact JWE (five parts), `dir` / `A256GCM`: nothing but the key holder reads it.
    expect(answer.sealed?.split('.')).toHaveLength(5)
    const page = bodies.find((b) => b.url === `${urls.passport}/account`)
    expect(page?.body).toContain('data-sealed="devices"')
    // Every passport response but its scripts (whose code holds the row template's words).
    const answers = bodies.filter((b) => b.url.startsWith(urls.passport) && !b.url.endsWith('.js'))
    expect(answers.length).toBeGreaterThanOrEqual(3) // the page, the JWKS, the sealed answer
    for (const { url, body } of answers) {
      for (const text of shown) expect(body, `${url} carries "${text}"`).not.toContain(text)
    }
  })

  test('without JavaScript the plain page lists the devices', async ({ browserContext }) => {
    const mine = await browserContext.newPage()
    await signIn(mine, urls.news, 'alice', 'alice-password-1')
    await expect(status(mine)).toHaveText('Signed in as alice', slow)
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: chromiumArgs, headless: true })
    const noScript = await browser.newContext({ javaScriptEnabled: false })
    await noScript.addCookies(await browserContext.cookies(urls.passport))
    const plain = await noScript.newPage()
    await plain.goto(`${urls.passport}/account`)
    await plain.getByRole('link', { name: 'Show them without JavaScript' }).click()
    await expect(plain.locator('li.device', { hasText: '(this device)' })).toContainText('Sites: News')
    await browser.close()
  })
})
