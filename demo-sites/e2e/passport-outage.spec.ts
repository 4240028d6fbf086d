import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Page } from '@playwright/test'
import { type RunningDemo, startDemo } from '../start.ts'
import { expect, message, ownPorts, signIn, status, test } from './fixtures.ts'

/**
 * @see issue 14, K5: a passing outage looked like a sign-out. A passport of this spec's own,
 * stopped for 5 s while the sites keep serving.
 */
const ports = ownPorts(70)
const news = `http://news.localhost:${ports.news}/`
const shop = `http://shop.localhost:${ports.shop}/`
const OUTAGE_MS = 5_000

type PageWindow = {
  states: string[]
  passport: {
    getToken(): Promise<string>
    check(): Promise<unknown>
    onChange(fn: (s: { status: string }) => void): void
  }
}

/** Records every state the page's SDK reports from now on. */
const recordStates = (page: Page) =>
  page.evaluate(() => {
    const w = window as unknown as PageWindow
    w.states = []
    w.passport.onChange((s) => w.states.push(s.status))
  })
const states = (page: Page) => page.evaluate(() => (window as unknown as PageWindow).states)

test('the passport down for 5 s: News stays signed in, and a sign-out made after it still reaches News', async ({
  browserContext,
}) => {
  test.setTimeout(120_000)
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-outage-'))
  const demo: RunningDemo = await startDemo({ ports, dataDir, quiet: true })
  try {
    const newsTab = await browserContext.newPage()
    await signIn(newsTab, news, 'alice', 'alice-password-1')
    await expect(status(newsTab)).toHaveText('Signed in as alice')
    await recordStates(newsTab)
    await expect.poll(() => demo.passport.liveConnectionCount()).toBe(1) // News's frame is on the live channel

    await demo.stopPassport()
    const down = Date.now()
    // The page's API keeps the sign-in: the token it holds, and an error (not a sign-out) for a check.
    expect(await newsTab.evaluate(() => (window as unknown as PageWindow).passport.getToken())).toMatch(
      /^eyJ/,
    )
    const checked = await newsTab.evaluate(() =>
      (window as unknown as PageWindow).passport.check().then(
        () => 'answered',
        (err: { code?: string }) => err.code,
      ),
    )
    expect(['temporarily_unavailable', 'timeout']).toContain(checked)
    // A News tab opened now loads a frame from a passport that is not there: it waits.
    const lateTab = await browserContext.newPage()
    await lateTab.goto(news)
    while (Date.now() - down < OUTAGE_MS) {
      await expect(status(newsTab)).toHaveText('Signed in as alice')
      await expect(status(lateTab)).not.toHaveText('You are not signed in.')
      await newsTab.waitForTimeout(250)
    }
    await demo.startPassport()

    // The late tab gives up on its dead frame, loads a fresh one and is signed in.
    await expect(status(lateTab)).toHaveText('Signed in as alice', { timeout: 30_000 })
    // Shop signs in through the passport; News's frame has reconnected (backoff with jitter).
    const shopTab = await browserContext.newPage()
    await shopTab.goto(shop)
    await expect(status(shopTab)).toHaveText('Signed in as alice', { timeout: 10_000 })
    await expect.poll(() => demo.passport.liveConnectionCount(), { timeout: 40_000 }).toBe(2)
    expect(await states(newsTab)).toEqual([])

    await shopTab.getByRole('button', { name: 'Sign out' }).click()
    for (const tab of [newsTab, lateTab])
      await expect(message(tab)).toHaveText('You were signed out on another site.', { timeout: 2_000 })
    expect(await states(newsTab)).toEqual(['signed_out'])
  } finally {
    await demo.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
})
