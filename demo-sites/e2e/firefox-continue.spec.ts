import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import puppeteer, { type Browser, type Frame, type Page } from 'puppeteer-core'
import { type RunningDemo, startDemo } from '../start.ts'
import { expect, ownPorts, test } from './fixtures.ts'

/**
 * "Continue with Passport" in Firefox (issue 17 §4, docs/fedcm.md): no FedCM there, and Total
 * Cookie Protection partitions the passport frame under each site (../shared/platform.md §7).
 * The frame's own button asks for storage access on a click (a gesture on the passport's
 * origin); after the grant the frame sends the passport's cookie and the page signs in with no
 * password and no navigation.
 *
 * Playwright cannot drive a stock Firefox: Debian's `firefox-esr` is launched here by
 * `puppeteer-core` over WebDriver BiDi. A headless Firefox cannot show its storage-access
 * prompt; the prefs `dom.storage_access.prompt.testing` + `dom.storage_access.prompt.testing.allow`
 * (what Firefox's own tests use) answer it "Allow" in place of the user, after every check the
 * real prompt would come after (a click in the frame, a prior top-level visit to the passport).
 */
const FIREFOX = process.env.PASSPORT_FIREFOX ?? '/usr/bin/firefox-esr'
const ports = ownPorts(20)
const urls = {
  news: `http://news.localhost:${ports.news}/`,
  shop: `http://shop.localhost:${ports.shop}/`,
}

// The browser is not Playwright's: one run is enough, in the blocked-cookies project (Firefox's
// own partitioning applies whatever Playwright's project says).
// Firefox runs once, in 3pc-blocked (playwright.config.ts): it launches its own browser.
test.setTimeout(60_000)

let demo: RunningDemo
let dataDir: string
let browser: Browser
test.beforeAll(async () => {
  // CI installs firefox-esr: its absence is a failure with a reason, never a silent skip.
  if (!existsSync(FIREFOX))
    throw new Error(
      `Firefox ESR not found at ${FIREFOX}: apt-get install -y firefox-esr (or set PASSPORT_FIREFOX)`,
    )
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'passport-firefox-'))
  demo = await startDemo({ ports, dataDir, quiet: true, scramIterations: 10_000 })
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      'dom.storage_access.prompt.testing': true,
      'dom.storage_access.prompt.testing.allow': true,
      // Firefox's web-compat heuristics grant a third party storage access on their own after a
      // redirect through it (the silent hop News -> passport -> News, then a sign-in there):
      // measured here, News's frame then had access with no click. Off, so that the grant
      // asserted below is the button's.
      'privacy.antitracking.enableWebcompat': false,
    },
  })
})
test.afterAll(async () => {
  await browser?.close()
  await demo?.close()
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

const statusText = (page: Page) => page.$eval('#status', (el) => el.textContent ?? '')
async function waitForStatus(page: Page, pattern: RegExp, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout
  let last = ''
  while (Date.now() < deadline) {
    last = await statusText(page).catch(() => '')
    if (pattern.test(last)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`#status never matched ${pattern}: last "${last}"`)
}
const passportFrame = (page: Page): Frame | undefined =>
  page.frames().find((f) => f.url().includes('/frame/'))

test('Firefox: the frame button gets storage access and signs News in with no password', async () => {
  const page = await browser.newPage()
  // News first, signed out: its one silent trip to the passport comes back signed out, so that
  // later only the button can sign it in (no silent redirect for a minute after).
  await page.goto(urls.news)
  await waitForStatus(page, /not signed in/)

  // A password sign-in on Shop: the passport's own (unpartitioned) session cookie, set top-level.
  await page.goto(urls.shop)
  await waitForStatus(page, /not signed in/)
  await page.locator('button::-p-text(Sign in)').click()
  await page.waitForSelector('#username')
  await page.type('#username', 'alice')
  await page.type('#password', 'alice-password-1')
  await Promise.all([page.waitForNavigation(), page.click('#sign-in button[type=submit]')])
  await waitForStatus(page, /Signed in as alice/)

  // Back on News: signed out (its frame is partitioned and sees no passport session), the button.
  await page.goto(urls.news)
  await waitForStatus(page, /not signed in/)
  const navigations: string[] = []
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations.push(frame.url())
  })
  const frame = passportFrame(page)
  expect(frame, 'the passport frame on News').toBeDefined()
  const inFrame = frame as Frame
  expect(await inFrame.evaluate(() => document.hasStorageAccess())).toBe(false)
  const button = await inFrame.waitForSelector('#passport-continue button', { visible: true })
  expect(await button?.evaluate((el) => el.textContent)).toBe('Continue with Passport')
  await new Promise((r) => setTimeout(r, 800)) // the button's clickjacking brake (600 ms)
  await button?.click()

  // The grant, and the sign-in from the passport session: no password, no navigation.
  await waitForStatus(page, /Signed in as alice/)
  expect(await inFrame.evaluate(() => document.hasStorageAccess())).toBe(true)
  expect(navigations).toEqual([])
  expect(await inFrame.$('#passport-continue')).toBeNull()
  await page.close()
})
