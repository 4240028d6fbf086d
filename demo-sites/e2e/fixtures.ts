import { type BrowserContext, test as base, expect, type Page } from '@playwright/test'
import { launchProfile, type ThirdPartyCookies } from './browser-profile.ts'

export { CHROMIUM, chromiumArgs, launchProfile, type ThirdPartyCookies } from './browser-profile.ts'

// E2E_PORT_BASE moves the whole set, so several checkouts can run their browser tests at once.
const portBase = Number(process.env.E2E_PORT_BASE) || 18080
const PORTS = {
  passport: portBase,
  news: portBase + 1,
  shop: portBase + 2,
  evil: portBase + 3,
  docs: portBase + 4,
  /** The passport's management listener (metrics), loopback. */
  management: portBase + 9,
}
export const urls = {
  passport: `http://passport.localhost:${PORTS.passport}`,
  news: `http://news.localhost:${PORTS.news}/`,
  shop: `http://shop.localhost:${PORTS.shop}/`,
  evil: `http://evil.localhost:${PORTS.evil}/`,
  docs: `http://docs.localhost:${PORTS.docs}/`,
}
export const testPorts = PORTS
/** Ports for a spec that starts a passport of its own: `offset` (10..99) past the shared base. */
export const ownPorts = (offset: number) => ({
  passport: portBase + offset,
  news: portBase + offset + 1,
  shop: portBase + offset + 2,
  evil: portBase + offset + 3,
  docs: portBase + offset + 4,
})

export const test = base.extend<{
  thirdPartyCookies: ThirdPartyCookies
  browserContext: BrowserContext
  /** Another device: a second, independent profile in the same mode. */
  newDevice: () => Promise<BrowserContext>
}>({
  thirdPartyCookies: ['blocked', { option: true }],
  browserContext: async ({ thirdPartyCookies }, use) => {
    const context = await launchProfile(thirdPartyCookies)
    await use(context)
    await context.close()
  },
  newDevice: async ({ thirdPartyCookies }, use) => {
    const opened: BrowserContext[] = []
    await use(async () => {
      const context = await launchProfile(thirdPartyCookies)
      opened.push(context)
      return context
    })
    for (const context of opened) await context.close()
  },
})
export { expect }

/** Signs in through the passport's own page, starting from a demo site's "Sign in" button. */
export async function signIn(page: Page, siteUrl: string, username: string, password: string): Promise<void> {
  await page.goto(siteUrl)
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await expect(page).toHaveURL(/passport\.localhost/)
  await page.getByLabel('Username', { exact: true }).fill(username)
  await page.getByLabel('Password', { exact: true }).fill(password)
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
}

export const status = (page: Page) => page.locator('#status')
export const message = (page: Page) => page.locator('#message')
