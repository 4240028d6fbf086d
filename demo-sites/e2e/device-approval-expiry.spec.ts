import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { type RunningDemo, startDemo } from '../start.ts'
import { expect, ownDemoPorts, signIn, status, test } from './fixtures.ts'

/** A passport of this spec's own, whose clock the test moves two minutes ahead. */
const ports = ownDemoPorts(1)
const news = `http://news.localhost:${ports.news}/`
const shop = `http://shop.localhost:${ports.shop}/`

test('a request nobody answers expires: the prompt goes away and the new device is told', async ({
  browserContext,
  newDevice,
}) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-expiry-'))
  let skewMs = 0
  const demo: RunningDemo = await startDemo({
    ports,
    dataDir,
    quiet: true,
    clock: { now: () => Date.now() + skewMs },
  })
  try {
    const trusted = await browserContext.newPage()
    await signIn(trusted, news, 'alice', 'alice-password-1')
    await expect(status(trusted)).toHaveText('Signed in as alice')
    await trusted.waitForTimeout(500)

    const fresh = await (await newDevice()).newPage()
    await fresh.goto(shop)
    await fresh.getByRole('button', { name: 'Sign in', exact: true }).click()
    await fresh.getByLabel('Username for sign-in with another device').fill('alice')
    await fresh.getByRole('button', { name: 'Sign in with another device' }).click()
    await expect(fresh.locator('#approval-code')).toHaveText(/^\d\d$/)
    const prompt = trusted
      .frameLocator('iframe[title="Passport"]')
      .getByRole('dialog', { name: 'Sign-in request' })
    await expect(prompt).toBeVisible({ timeout: 1_000 })

    skewMs = 2 * 60_000 + 1_000 // the passport's two minutes are up
    // The expiry sweep (every 5 s) ends it and pushes the news to both sides.
    await expect(fresh.getByRole('alert')).toHaveText('The sign-in request expired before it was approved.', {
      timeout: 10_000,
    })
    await expect(prompt).toHaveCount(0, { timeout: 5_000 })
    await expect(fresh.getByRole('button', { name: 'Continue' })).toHaveCount(0)
  } finally {
    await demo.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
})
