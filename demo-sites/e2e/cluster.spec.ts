import type { Page } from '@playwright/test'
import { siteBackend } from './cluster-family.ts'
import { type Cluster, startCluster } from './cluster-harness.ts'
import { expect, message, signIn, status, test } from './fixtures.ts'

/**
 * Issue 15, items 4 and 5: two real passport processes on one store behind a real HAProxy
 * (deploy/haproxy.cfg), browsers spread over both. Round robin balances every request anew; to
 * know which instance holds which tab's live socket, a test sends every new request to one
 * instance (the others in maintenance through HAProxy's runtime API: their open sockets stay)
 * while that tab connects, and checks HAProxy's count of open streams per instance.
 *
 * Each test starts its own cluster (ports 19000-19099) and stops every process at its end.
 */
test.describe.configure({ mode: 'serial', timeout: 60_000 })
// One cookie mode is enough here: what is under test is the servers, not the browser.
test.skip(({ thirdPartyCookies }) => thirdPartyCookies !== 'blocked', 'runs once, in 3pc-blocked')

let cluster: Cluster
test.beforeEach(async () => {
  cluster = await startCluster()
})
test.afterEach(async ({}, info) => {
  if (info.status !== info.expectedStatus) await info.attach('cluster logs', { body: cluster?.logs() ?? '' })
  await cluster?.close()
})

const pushed = 1_000

/** Counts the sign-in's endings in the page, and notes when the first arrived. */
async function watchEndings(page: Page) {
  await page.evaluate(() => {
    const w = window as unknown as {
      ends: number
      endedAt: number
      passport: { onChange(fn: (s: { status: string }) => void): void }
    }
    w.ends = 0
    w.endedAt = 0
    w.passport.onChange((s) => {
      if (s.status !== 'signed_out') return
      w.ends += 1
      w.endedAt ||= Date.now()
    })
  })
  return {
    count: () => page.evaluate(() => (window as unknown as { ends: number }).ends),
    at: () => page.evaluate(() => (window as unknown as { endedAt: number }).endedAt),
  }
}

/** Waits until `name` holds at least `n` open streams (the tabs' live sockets). */
const socketsOn = (name: string, n: number) =>
  expect
    .poll(async () => (await cluster.haproxy.stat(name)).current, { timeout: 5_000 })
    .toBeGreaterThanOrEqual(n)

const [A, B] = ['passport1', 'passport2'] as const

test('a sign-out on Shop through instance A reaches a News tab whose socket is on B within a second', async ({
  browserContext,
}) => {
  await cluster.haproxy.only(B)
  const news = await browserContext.newPage()
  await signIn(news, cluster.urls.news, 'alice', 'alice-password-1')
  await expect(status(news)).toHaveText('Signed in as alice')
  const endings = await watchEndings(news)
  await socketsOn(B, 1)

  await cluster.haproxy.only(A)
  const shop = await browserContext.newPage()
  await shop.goto(cluster.urls.shop)
  await expect(status(shop)).toHaveText('Signed in as alice')
  await socketsOn(A, 1)
  expect((await cluster.haproxy.stat(B)).current).toBeGreaterThanOrEqual(1) // News's socket is still on B

  const clicked = Date.now()
  await shop.getByRole('button', { name: 'Sign out' }).click()
  await expect(message(news)).toHaveText('You were signed out on another site.', { timeout: 3_000 })
  const took = (await endings.at()) - clicked
  console.info(`cluster: sign-out A -> socket on B in ${took} ms`)
  expect(took).toBeLessThan(pushed)
  await news.waitForTimeout(500)
  expect(await endings.count()).toBe(1)
})

test("a newer device's sign-in through A replaces a device whose socket is on B", async ({
  browserContext,
  newDevice,
}) => {
  await cluster.haproxy.only(B)
  const old = await browserContext.newPage()
  await signIn(old, cluster.urls.news, 'alice', 'alice-password-1')
  await expect(status(old)).toHaveText('Signed in as alice')
  const endings = await watchEndings(old)
  await socketsOn(B, 1)

  await cluster.haproxy.only(A)
  const fresh = await (await newDevice()).newPage()
  // The mint (newest wins) is the frame's code exchange: its answer is when the old device ends.
  const minted = fresh.waitForResponse((r) => r.url().endsWith('/api/frame/token') && r.status() === 200)
  await signIn(fresh, cluster.urls.news, 'alice', 'alice-password-1')
  await minted
  const mintedAt = Date.now()
  await expect(status(fresh)).toHaveText('Signed in as alice')
  await expect(message(old)).toHaveText(
    'You were signed out because your account signed in on another device.',
    { timeout: 3_000 },
  )
  const took = (await endings.at()) - mintedAt
  console.info(`cluster: replaced A -> socket on B in ${took} ms (after the mint's answer)`)
  expect(took).toBeLessThan(pushed)
  expect(await endings.count()).toBe(1)
})

test('20 parallel refreshes of one family, spread over both instances: one successor, no sign-out', async () => {
  await cluster.haproxy.all()
  const backend = siteBackend({
    internalUrl: `http://127.0.0.1:${cluster.ports.haproxy}`,
    issuer: cluster.urls.passport,
    site: cluster.sites.docs,
  })
  const first = await backend.signIn('alice', 'alice-password-1')
  const answers = await Promise.all(Array.from({ length: 20 }, () => backend.refresh(first)))
  const byInstance = new Map<string, number>()
  for (const a of answers) byInstance.set(a.instance, (byInstance.get(a.instance) ?? 0) + 1)
  console.info(`cluster: 20 refreshes answered by ${JSON.stringify(Object.fromEntries(byInstance))}`)
  expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200))
  expect(new Set(answers.map((a) => a.instance))).toEqual(new Set([A, B]))
  // One successor: every answer is the same, byte for byte (the grace answer).
  expect(new Set(answers.map((a) => a.body)).size).toBe(1)
  const successor = answers[0]?.refreshToken ?? ''
  expect(successor).not.toBe(first)
  // Not revoked: the successor rotates on either instance.
  const next = await backend.refresh(successor)
  expect(next.status).toBe(200)
})
