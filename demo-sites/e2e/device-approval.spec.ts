import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { BrowserContext, Page } from '@playwright/test'
import { type RunningDemo, startDemo } from '../start.ts'
import { expect, message, ownPorts, signIn, status, test } from './fixtures.ts'

const pushed = { timeout: 1_000 } // the live channel's promise: well under a second, no reload

/**
 * A passport of each test's own: an account takes at most 3 requests per 10 minutes, and a deny
 * blocks it for an hour, so tests sharing one passport (and both cookie modes) would meet each
 * other's limits.
 */
const ports = ownPorts(30)
let demo: RunningDemo
let dataDir: string
const urls = {
  passport: `http://passport.localhost:${ports.passport}`,
  news: `http://news.localhost:${ports.news}/`,
  shop: `http://shop.localhost:${ports.shop}/`,
  evil: `http://evil.localhost:${ports.evil}/`,
}
test.beforeEach(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-approval-'))
  demo = await startDemo({ ports, dataDir, quiet: true })
})
test.afterEach(async () => {
  await demo?.close()
  fs.rmSync(dataDir, { recursive: true, force: true })
})

/** Signed in on News in this browser, its frame on the live channel. */
async function trustedNews(context: BrowserContext, username = 'alice') {
  const news = await context.newPage()
  await signIn(news, urls.news, username, `${username}-password-1`)
  await expect(status(news)).toHaveText(`Signed in as ${username}`)
  await news.waitForTimeout(500)
  return news
}

/** A new browser on Shop asks to sign in with another device (the passport's answer is returned). */
async function ask(context: BrowserContext, username = 'alice') {
  const shop = await context.newPage()
  await shop.goto(urls.shop)
  await shop.getByRole('button', { name: 'Sign in', exact: true }).click()
  await expect(shop).toHaveURL(/passport\.localhost/)
  await shop.getByLabel('Username for sign-in with another device').fill(username)
  const answered = shop.waitForResponse(
    (r) => r.url().endsWith('/login/device') && r.request().method() === 'POST',
  )
  await shop.getByRole('button', { name: 'Sign in with another device' }).click()
  return { shop, status: (await answered).status() }
}

/** As `ask`, for a request that opens: returns its page and the code it shows. */
async function askFromNewDevice(context: BrowserContext, username = 'alice') {
  const { shop } = await ask(context, username)
  const code = (await shop.locator('#approval-code').textContent())?.trim() ?? ''
  expect(code).toMatch(/^\d\d$/)
  return { shop, code }
}

const prompt = (page: Page) =>
  page.frameLocator('iframe[title="Passport"]').getByRole('dialog', { name: 'Sign-in request' })

async function typeCode(page: Page, code: string) {
  await prompt(page).getByRole('textbox').fill(code)
  await prompt(page).getByRole('button', { name: 'Approve' }).click()
}

/** A two-digit code other than `code`. */
const otherThan = (code: string) => String((Number(code) + 1) % 100).padStart(2, '0')

test.describe('sign in with another device', () => {
  // Each test starts a passport of its own: more time than the shared one needs.
  test.describe.configure({ timeout: 60_000 })

  test('the signed-in device types the code the new device shows: the new device is signed in on Shop', async ({
    browserContext,
    newDevice,
  }) => {
    // What the trusted device's frame receives, from the browser's own log (issue 16): the socket
    // says only that a request is open; who asks comes in a JWE under the frame's one-time key.
    const socketFrames: string[] = []
    const details: Promise<string>[] = []
    browserContext.on('page', (p) => {
      p.on('websocket', (ws) => ws.on('framereceived', (f) => socketFrames.push(String(f.payload))))
      p.on('response', (r) => {
        if (r.url().endsWith('/api/frame/approval/details')) details.push(r.text())
      })
    })
    const news = await trustedNews(browserContext)
    const { shop, code } = await askFromNewDevice(await newDevice())

    await expect(prompt(news)).toContainText('Sign in to Shop on another device?', pushed)
    const announced = socketFrames.map((f) => JSON.parse(f)).filter((m) => m.type === 'approval_request')
    expect(announced.length).toBeGreaterThanOrEqual(1)
    for (const m of announced)
      expect(Object.keys(m).sort()).toEqual(['expires_at', 'id', 'same_network', 'type'])
    const answers = await Promise.all(details)
    expect(answers.length).toBeGreaterThanOrEqual(1)
    for (const a of answers) {
      expect((JSON.parse(a) as { sealed?: string }).sealed?.split('.')).toHaveLength(5)
      expect(a).not.toMatch(/Shop|shop|127\.0\.0\.1|Chrom/)
    }
    // Neither the code nor numbers to choose from: only a field to type it into.
    await expect(prompt(news).getByText(code, { exact: true })).toHaveCount(0)
    expect(await prompt(news).getByRole('button').allTextContents()).toEqual([
      'Approve',
      'Deny, I did not ask for this',
    ])
    const field = prompt(news).getByRole('textbox')
    await expect(field).toHaveAttribute('inputmode', 'numeric')
    await expect(field).toHaveAttribute('autocomplete', 'off')
    await expect(field).not.toBeFocused()
    // The page itself sees a frame, never the code.
    expect(await news.content()).not.toContain(`>${code}<`)

    await typeCode(news, code)
    await expect(prompt(news)).toHaveCount(0, { timeout: 3_000 })
    await expect(status(shop)).toHaveText('Signed in as alice')
    await expect(shop).toHaveURL(urls.shop)
    // The trusted device is untouched.
    await expect(status(news)).toHaveText('Signed in as alice')
  })

  test('one wrong code cancels, and the new device is told', async ({ browserContext, newDevice }) => {
    const news = await trustedNews(browserContext)
    const { shop, code } = await askFromNewDevice(await newDevice())
    await expect(prompt(news)).toBeVisible(pushed)
    await typeCode(news, otherThan(code))
    await expect(shop.getByRole('alert')).toContainText('a wrong number was entered')
    await expect(shop.getByRole('button', { name: 'Continue' })).toHaveCount(0)
    await expect(prompt(news)).toHaveCount(0, { timeout: 3_000 })
  })

  test('"Deny, I did not ask for this" cancels, the new device is told, and a new request is refused', async ({
    browserContext,
    newDevice,
  }) => {
    const news = await trustedNews(browserContext)
    const { shop } = await askFromNewDevice(await newDevice())
    await prompt(news).getByRole('button', { name: 'Deny, I did not ask for this' }).click()
    await expect(shop.getByRole('alert')).toHaveText('The sign-in was denied on your other device.')

    const again = await ask(await newDevice())
    expect(again.status).toBe(403)
    await expect(again.shop.getByRole('alert')).toHaveText(
      'Sign-in with another device is not available for this account right now.',
    )
    await news.waitForTimeout(500)
    await expect(prompt(news)).toHaveCount(0)
  })

  test('a fourth request within 10 minutes is refused and reaches no device', async ({
    browserContext,
    newDevice,
  }) => {
    const news = await trustedNews(browserContext, 'bob')
    const device = await newDevice() // one browser asking again and again
    for (let i = 0; i < 3; i++) {
      const { shop } = await askFromNewDevice(device, 'bob')
      await shop.getByRole('button', { name: 'Cancel this request' }).click()
      await expect(shop.getByRole('alert')).toContainText('cancelled')
      await shop.close()
    }
    const fourth = await ask(device, 'bob')
    expect(fourth.status).toBe(429)
    await expect(fourth.shop.getByRole('alert')).toContainText('Too many sign-in requests')
    await news.waitForTimeout(500)
    await expect(prompt(news)).toHaveCount(0)
  })

  test('"Your devices": signing the approved device out shows on its Shop tab within a second', async ({
    browserContext,
    newDevice,
  }) => {
    const news = await trustedNews(browserContext)
    const { shop, code } = await askFromNewDevice(await newDevice())
    await typeCode(news, code)
    await expect(status(shop)).toHaveText('Signed in as alice')
    await shop.waitForTimeout(500) // its frame on the live channel

    const account = await browserContext.newPage()
    await account.goto(`${urls.passport}/account`)
    const other = account.locator('li.device', { hasText: 'approval on another device' }).first()
    await expect(other).toContainText('Shop')
    await other.getByRole('button', { name: 'Sign out this device' }).click()
    await expect(message(shop)).toHaveText('Your sign-in was revoked.', pushed)
  })

  test('the account page takes the typed code too, and never shows it', async ({
    browserContext,
    newDevice,
  }) => {
    await trustedNews(browserContext)
    const { shop, code } = await askFromNewDevice(await newDevice())
    const account = await browserContext.newPage()
    // The request's details travel sealed (issue 16): read from the browser's own network log.
    const received: Promise<{ url: string; body: string }>[] = []
    account.on('response', (r) =>
      received.push(
        r.text().then(
          (body) => ({ url: r.url(), body }),
          () => ({ url: r.url(), body: '' }),
        ),
      ),
    )
    await account.goto(`${urls.passport}/account`)
    const request = account.locator('li.approval')
    await expect(request).toContainText('Sign-in request for Shop')
    await expect(request.getByText(code, { exact: true })).toHaveCount(0)
    const shown = [
      (await request.locator('span.site').textContent()) ?? '',
      (await request.getAttribute('data-approval')) ?? '',
    ]
    expect(shown.every((t) => t.length > 0)).toBe(true)
    const bodies = await Promise.all(received)
    const sealed = bodies.filter((b) => b.url === `${urls.passport}/account/approvals/sealed`)
    expect(sealed.length).toBeGreaterThanOrEqual(1)
    for (const { url, body } of bodies.filter(
      (b) => b.url.startsWith(urls.passport) && !b.url.endsWith('.js'),
    )) {
      for (const text of [...shown, 'Sign-in request for'])
        expect(body, `${url} carries "${text}"`).not.toContain(text)
    }
    await request.getByLabel('If this is you, type the number shown on that device:').fill(code)
    await request.getByRole('button', { name: 'Approve' }).click()
    await expect(status(shop)).toHaveText('Signed in as alice')
    await expect(account.locator('li.approval')).toHaveCount(0)
  })

  test('evil.localhost never sees a request or its code', async ({ browserContext, newDevice }) => {
    const news = await trustedNews(browserContext)
    const evil = await browserContext.newPage()
    await evil.goto(urls.evil)
    await evil.waitForFunction(() => (window as unknown as { attackDone?: boolean }).attackDone === true)
    const { code } = await askFromNewDevice(await newDevice())
    await expect(prompt(news)).toBeVisible(pushed)
    await evil.waitForTimeout(500)
    // No message reached the page, and the frame it tried to embed (refused) shows no prompt.
    expect(await evil.evaluate(() => (window as unknown as { received: unknown[] }).received)).toEqual([])
    expect(await evil.locator('#log').textContent()).toBe('')
    await expect(evil.frameLocator('iframe').getByRole('dialog')).toHaveCount(0)
    await expect(evil.frameLocator('iframe').getByText(code, { exact: true })).toHaveCount(0)
  })
})
