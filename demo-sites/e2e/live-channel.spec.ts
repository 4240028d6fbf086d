import type { BrowserContext, Page } from '@playwright/test'
import { expect, message, signIn, status, test, urls } from './fixtures.ts'

const pushed = { timeout: 1_000 } // the live channel's promise: well under a second, no reload

async function signedInTab(page: Page, url: string) {
  await page.goto(url)
  await expect(status(page)).toHaveText('Signed in as alice')
  return page
}

/** Alice signed in, with two News tabs and a Shop tab open, their frames on the live channel. */
async function twoNewsTabsAndShop(context: BrowserContext) {
  const news1 = await context.newPage()
  await signIn(news1, urls.news, 'alice', 'alice-password-1')
  await expect(status(news1)).toHaveText('Signed in as alice')
  const news2 = await signedInTab(await context.newPage(), urls.news)
  const shop = await signedInTab(await context.newPage(), urls.shop)
  // Let every frame settle on its channel (leader socket or broadcast listener).
  await news1.waitForTimeout(500)
  return { news1, news2, shop }
}

test.describe('live channel', () => {
  test('sign out on Shop: two News tabs and the Shop tab show it within a second, without a reload', async ({
    browserContext,
  }) => {
    const { news1, news2, shop } = await twoNewsTabsAndShop(browserContext)
    const navigations: string[] = []
    for (const page of [news1, news2])
      page.on('framenavigated', (f) => f === page.mainFrame() && navigations.push(f.url()))

    await shop.getByRole('button', { name: 'Sign out' }).click()
    await expect(message(shop)).toHaveText('You signed out.')
    for (const page of [news1, news2]) {
      await expect(message(page)).toHaveText('You were signed out on another site.', pushed)
      await expect(page.getByRole('button', { name: 'Sign in', exact: true })).toBeVisible()
    }
    expect(navigations).toEqual([])
  })

  test("a sign-in on another device: the first device's News tabs show it within a second", async ({
    browserContext,
    newDevice,
  }) => {
    const { news1, news2, shop } = await twoNewsTabsAndShop(browserContext)
    const other = await (await newDevice()).newPage()
    await signIn(other, urls.news, 'alice', 'alice-password-1')
    await expect(status(other)).toHaveText('Signed in as alice')
    for (const page of [news1, news2]) {
      await expect(message(page)).toHaveText(
        'You were signed out because your account signed in on another device.',
        pushed,
      )
    }
    // Newest wins per site: Shop on the first device is untouched.
    await shop.waitForTimeout(300)
    await expect(status(shop)).toHaveText('Signed in as alice')
  })

  test('ten News tabs share one socket', async ({ browserContext }) => {
    const sockets: string[] = []
    // Live-channel sockets only: the sign-in page's SCRAM socket (/login/socket) is another matter.
    browserContext.on('page', (page) =>
      page.on('websocket', (ws) => {
        if (new URL(ws.url()).pathname === '/live') sockets.push(ws.url())
      }),
    )
    const first = await browserContext.newPage()
    await signIn(first, urls.news, 'alice', 'alice-password-1')
    await expect(status(first)).toHaveText('Signed in as alice')
    for (let i = 0; i < 9; i++) await signedInTab(await browserContext.newPage(), urls.news)
    await first.waitForTimeout(500)
    expect(sockets).toHaveLength(1)
    // No credential in the URL: the frame answers the socket's challenge with a proof by its key.
    expect(sockets[0]).toMatch(/^ws:\/\/passport\.localhost:\d+\/live\?site=news$/)
    // The closed leader hands over: another tab opens the one socket.
    await first.close()
    await expect.poll(() => sockets.length).toBe(2)
  })

  test('"Your devices": signing the other device out shows on its open tab within a second', async ({
    browserContext,
    newDevice,
  }) => {
    const mine = await browserContext.newPage()
    await signIn(mine, urls.news, 'alice', 'alice-password-1')
    await expect(status(mine)).toHaveText('Signed in as alice')
    // The demo server is shared by the specs: sign out alice's devices left by earlier ones.
    await mine.goto(`${urls.passport}/account`)
    // The list arrives sealed, after the page: wait for it (this device is always in it).
    const listed = () => expect(mine.locator('li.device', { hasText: '(this device)' })).toBeVisible()
    await listed()
    while ((await mine.getByRole('button', { name: 'Sign out this device' }).count()) > 0) {
      await mine.getByRole('button', { name: 'Sign out this device' }).first().click()
      await expect(mine.getByText('That device is signed out.')).toBeVisible()
      await listed()
    }
    const other = await (await newDevice()).newPage()
    await signIn(other, urls.shop, 'alice', 'alice-password-1')
    await expect(status(other)).toHaveText('Signed in as alice')
    await other.waitForTimeout(500)

    await mine.goto(`${urls.passport}/account`)
    await expect(mine.getByRole('heading', { name: 'Your devices' })).toBeVisible()
    await expect(mine.locator('li.device')).toHaveCount(2)
    await mine.getByRole('button', { name: 'Sign out this device' }).click()
    await expect(mine.getByText('That device is signed out.')).toBeVisible()
    await expect(message(other)).toHaveText('Your sign-in was revoked.', pushed)
    await expect(mine.locator('li.device')).toHaveCount(1)
  })
})
