import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { BrowserContext, Page } from '@playwright/test'
import { type RunningDemo, startDemo } from '../start.ts'
import { expect, ownPorts, signIn, status, test } from './fixtures.ts'

/**
 * FedCM (issue 17, docs/fedcm.md) in Chromium with third-party cookies blocked and storage
 * partitioning on. A demo of this spec's own, with News and Shop registered `--fedcm true`.
 * The browser's account chooser is answered over CDP (`FedCm` domain; ../shared/platform.md §8).
 */
const ports = ownPorts(80)
const urls = {
  passport: `http://passport.localhost:${ports.passport}`,
  news: `http://news.localhost:${ports.news}/`,
  shop: `http://shop.localhost:${ports.shop}/`,
  docs: `http://docs.localhost:${ports.docs}/`,
  evil: `http://evil.localhost:${ports.evil}/`,
}

let demo: RunningDemo
let dataDir: string
test.beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-fedcm-'))
  demo = await startDemo({ ports, dataDir, quiet: true, fedcm: true })
})
test.afterAll(async () => {
  await demo?.close()
  fs.rmSync(dataDir, { recursive: true, force: true })
})
// Third-party cookies blocked only: that is where FedCM earns its keep.
test.skip(({ thirdPartyCookies }) => thirdPartyCookies !== 'blocked')
test.setTimeout(60_000)

interface Watched {
  page: Page
  /** Account choosers the browser showed on this page. */
  dialogs: string[]
  /** Top-level navigations after the first load. */
  navigations: string[]
}

/** A tab whose FedCM dialogs are answered with the first account, its navigations counted. */
async function watchedPage(context: BrowserContext, answer = true): Promise<Watched> {
  const page = await context.newPage()
  page.on('console', (m) => console.info(`console: ${m.text()}`))
  const cdp = await context.newCDPSession(page)
  const dialogs: string[] = []
  const navigations: string[] = []
  await cdp.send('FedCm.enable', { disableRejectionDelay: true })
  cdp.on('FedCm.dialogShown', (event) => {
    dialogs.push(event.dialogType)
    if (answer) void cdp.send('FedCm.selectAccount', { dialogId: event.dialogId, accountIndex: 0 })
    else void cdp.send('FedCm.dismissDialog', { dialogId: event.dialogId })
  })
  let first = true
  page.on('framenavigated', (frame) => {
    if (frame !== page.mainFrame()) return
    if (first) first = false
    else navigations.push(frame.url())
  })
  return { page, dialogs, navigations }
}

/** A passport session made the old way: a password sign-in on Docs (not a FedCM site). */
async function passportSession(context: BrowserContext): Promise<void> {
  const page = await context.newPage()
  await signIn(page, urls.docs, 'alice', 'alice-password-1')
  await expect(status(page)).toHaveText('Signed in as alice')
  await page.close()
}

test('sign in on News with FedCM (one chooser, no navigation); Shop then opens signed in without navigating', async ({
  browserContext,
}) => {
  await passportSession(browserContext)
  const news = await watchedPage(browserContext)
  await news.page.goto(urls.news)
  await expect(status(news.page)).toHaveText('Signed in as alice')
  console.info(JSON.stringify(news))
  expect(news.dialogs).toHaveLength(1)
  expect(news.navigations).toEqual([])

  const shop = await watchedPage(browserContext)
  await shop.page.goto(urls.shop)
  await shop.page.waitForTimeout(3000)
  console.info(`shop: ${JSON.stringify(shop)}`)
  await expect(status(shop.page)).toHaveText('Signed in as alice')
  expect(shop.navigations).toEqual([])
  console.info(`shop dialogs: ${JSON.stringify(shop.dialogs)}`)
})
