import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { type BrowserContext, test as base, chromium, expect, type Page } from '@playwright/test'

/**
 * Every spec runs in the browser users really have: Debian Chromium with storage partitioning
 * ON and third-party cookies BLOCKED (or, in the second project, allowed).
 *
 * Playwright's own launch adds `--disable-features=…,ThirdPartyStoragePartitioning,…`; a later
 * `--disable-features` switch without it wins, which turns partitioning back on
 * (../shared/platform.md §4, microsoft/playwright#32230). Third-party cookies are set through
 * the profile preference `cookie_controls_mode` (1 blocks, 0 allows) of a fresh profile.
 */
const FEATURES_OFF = [
  'AvoidUnnecessaryBeforeUnloadCheckSync',
  'DestroyProfileOnBrowserClose',
  'HttpsUpgrades',
  'HttpsFirstBalancedModeAutoEnable',
  'LensOverlay',
  'MediaRouter',
  'PaintHolding',
  'AvoidCorsURLLoaderRestartOnRedirect',
  'TcpPortRandomizationWin',
  'OptimizationHints',
  'NetworkTimeServiceQuerying',
  'AimEnabled',
  'PreconnectToSearch',
].join(',')
export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  `--disable-features=${FEATURES_OFF}`,
]
export const CHROMIUM = '/usr/bin/chromium'

export type ThirdPartyCookies = 'blocked' | 'allowed'

/** A fresh Chromium profile: a separate "device" as far as the passport can tell. */
export async function launchProfile(mode: ThirdPartyCookies): Promise<BrowserContext> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-profile-'))
  fs.mkdirSync(path.join(dir, 'Default'), { recursive: true })
  fs.writeFileSync(
    path.join(dir, 'Default', 'Preferences'),
    JSON.stringify({ profile: { cookie_controls_mode: mode === 'allowed' ? 0 : 1 } }),
  )
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    args: chromiumArgs,
    headless: true,
  })
  // Chromium may still be flushing the profile as it exits; a leftover temp dir is harmless.
  context.on('close', () =>
    fs.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }, () => {}),
  )
  return context
}

const PORTS = { passport: 18080, news: 18081, shop: 18082, evil: 18083 }
export const urls = {
  passport: `http://passport.localhost:${PORTS.passport}`,
  news: `http://news.localhost:${PORTS.news}/`,
  shop: `http://shop.localhost:${PORTS.shop}/`,
  evil: `http://evil.localhost:${PORTS.evil}/`,
}
export const testPorts = PORTS

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
  await page.getByRole('button', { name: 'Sign in' }).click()
  await expect(page).toHaveURL(/passport\.localhost/)
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

export const status = (page: Page) => page.locator('#status')
export const message = (page: Page) => page.locator('#message')
