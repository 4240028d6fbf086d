import type { BrowserContext, Page } from '@playwright/test'
import { expect, message, signIn, status, test, urls } from './fixtures.ts'

const pushed = { timeout: 1_000 } // the live channel's promise: well under a second, no reload

/** Signed in on News in this browser, its frame on the live channel. */
async function trustedNews(context: BrowserContext, username = 'alice') {
  const news = await context.newPage()
  await signIn(news, urls.news, username, `${username}-password-1`)
  await expect(status(news)).toHaveText(`Signed in as ${username}`)
  await news.waitForTimeout(500)
  return news
}

/** Waiting pages of this test's requests: withdrawn after each test, pass or fail. */
const waitingPages: Page[] = []
test.afterEach(async () => {
  // A request left pending would be the first prompt the next test's trusted device shows.
  for (const page of waitingPages.splice(0)) {
    const cancel = page.getByRole('button', { name: 'Cancel this request' })
    if (!page.isClosed() && (await cancel.count()) > 0) await cancel.click().catch(() => undefined)
  }
})

/** A new browser on Shop asks to sign in with another device; returns its page and the code it shows. */
async function askFromNewDevice(context: BrowserContext, username = 'alice') {
  const shop = await context.newPage()
  waitingPages.push(shop)
  await shop.goto(urls.shop)
  await shop.getByRole('button', { name: 'Sign in', exact: true }).click()
  await expect(shop).toHaveURL(/passport\.localhost/)
  await shop.getByLabel('Username for sign-in with another device').fill(username)
  await shop.getByRole('button', { name: 'Sign in with another device' }).click()
  const code = (await shop.locator('#approval-code').textContent())?.trim() ?? ''
  expect(code).toMatch(/^\d\d$/)
  return { shop, code }
}

const prompt = (page: Page) =>
  page.frameLocator('iframe[title="Passport"]').getByRole('dialog', { name: 'Sign-in request' })

async function choicesOn(page: Page): Promise<string[]> {
  const texts = await prompt(page).getByRole('button').allTextContents()
  return texts.filter((t) => /^\d\d$/.test(t))
}

test.describe('sign in with another device', () => {
  test('the signed-in device picks the code the new device shows: the new device is signed in on Shop', async ({
    browserContext,
    newDevice,
  }) => {
    const news = await trustedNews(browserContext)
    const { shop, code } = await askFromNewDevice(await newDevice())

    await expect(prompt(news)).toContainText('Sign in to Shop on another device?', pushed)
    const choices = await choicesOn(news)
    expect(choices).toHaveLength(3)
    expect(choices).toContain(code)
    // The page itself sees a frame, never the numbers.
    expect(await news.content()).not.toContain(`>${code}<`)

    await prompt(news).getByRole('button', { name: code, exact: true }).click()
    await expect(prompt(news)).toHaveCount(0, { timeout: 3_000 })
    await expect(status(shop)).toHaveText('Signed in as alice')
    await expect(shop).toHaveURL(urls.shop)
    // The trusted device is untouched.
    await expect(status(news)).toHaveText('Signed in as alice')
  })

  test('three wrong picks cancel, and the new device is told', async ({ browserContext, newDevice }) => {
    const news = await trustedNews(browserContext)
    const { shop, code } = await askFromNewDevice(await newDevice())
    await expect(prompt(news)).toBeVisible(pushed)
    for (let pick = 0; pick < 3; pick++) {
      const wrong = (await choicesOn(news)).find((c) => c !== code) as string
      await prompt(news).getByRole('button', { name: wrong, exact: true }).click()
      if (pick < 2) await expect(prompt(news)).toContainText('That is not the number shown')
    }
    await expect(shop.getByRole('alert')).toContainText('wrong number was picked three times')
    await expect(shop.getByRole('button', { name: 'Continue' })).toHaveCount(0)
  })

  test('deny cancels, and the new device is told', async ({ browserContext, newDevice }) => {
    const news = await trustedNews(browserContext)
    const { shop } = await askFromNewDevice(await newDevice())
    await prompt(news).getByRole('button', { name: "Deny, this isn't me" }).click()
    await expect(shop.getByRole('alert')).toHaveText('The sign-in was denied on your other device.')
  })

  test('a fourth pending request is refused; withdrawn ones free the slots', async ({ newDevice }) => {
    const waiting: Page[] = []
    for (let i = 0; i < 3; i++) waiting.push((await askFromNewDevice(await newDevice(), 'bob')).shop)
    const fourth = await (await newDevice()).newPage()
    await fourth.goto(urls.shop)
    await fourth.getByRole('button', { name: 'Sign in', exact: true }).click()
    await fourth.getByLabel('Username for sign-in with another device').fill('bob')
    const refused = fourth.waitForResponse(
      (r) => r.url().endsWith('/login/device') && r.request().method() === 'POST',
    )
    await fourth.getByRole('button', { name: 'Sign in with another device' }).click()
    expect((await refused).status()).toBe(429)
    await expect(fourth.getByRole('alert')).toContainText(
      'Too many sign-in requests are waiting for this account',
    )
    for (const page of waiting) {
      await page.getByRole('button', { name: 'Cancel this request' }).click()
      await expect(page.getByRole('alert')).toContainText('cancelled')
    }
  })

  test('"Your devices": signing the approved device out shows on its Shop tab within a second', async ({
    browserContext,
    newDevice,
  }) => {
    const news = await trustedNews(browserContext)
    const { shop, code } = await askFromNewDevice(await newDevice())
    await prompt(news).getByRole('button', { name: code, exact: true }).click()
    await expect(status(shop)).toHaveText('Signed in as alice')
    await shop.waitForTimeout(500) // its frame on the live channel

    const account = await browserContext.newPage()
    await account.goto(`${urls.passport}/account`)
    // Newest first: the device this test just approved (earlier tests approved others).
    const other = account.locator('li.device', { hasText: 'approval on another device' }).first()
    await expect(other).toContainText('Shop')
    await other.getByRole('button', { name: 'Sign out this device' }).click()
    await expect(message(shop)).toHaveText('Your sign-in was revoked.', pushed)
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
