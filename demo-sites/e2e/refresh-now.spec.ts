import type { Page } from '@playwright/test'
import { expect, signIn, status, test, urls } from './fixtures.ts'

type State = { status: string; expiresAt?: number }

/** Starts recording the page's onChange states. */
async function recordChanges(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as {
      passport: { onChange(l: (s: unknown) => void): void }
      changes: unknown[]
    }
    w.changes = []
    w.passport.onChange((s) => w.changes.push(s))
  })
}
const changes = (page: Page) => page.evaluate(() => (window as unknown as { changes: State[] }).changes)
const currentToken = (page: Page) =>
  page.evaluate(() =>
    (window as unknown as { passport: { getToken(): Promise<string> } }).passport.getToken(),
  )

test.describe('refresh now (issue 19: the site backend asks)', () => {
  test("the News backend asks for a refresh: both News tabs' onChange see a new expiry, no reload", async ({
    browserContext,
  }) => {
    await browserContext.clock.install()
    const news1 = await browserContext.newPage()
    await signIn(news1, urls.news, 'alice', 'alice-password-1')
    await expect(status(news1)).toHaveText('Signed in as alice')
    const news2 = await browserContext.newPage()
    await news2.goto(urls.news)
    await expect(status(news2)).toHaveText('Signed in as alice')
    await news1.waitForTimeout(500) // the frames settle on the live channel (leader and listener)
    const before = await currentToken(news1)
    const expiresBefore = (await news1.evaluate(
      () => (window as unknown as { passport: { state: State } }).passport.state.expiresAt,
    )) as number
    for (const page of [news1, news2]) await recordChanges(page)
    const navigations: string[] = []
    for (const page of [news1, news2])
      page.on('framenavigated', (f) => f === page.mainFrame() && navigations.push(f.url()))
    // Past the frame's forced-refresh limit (a token younger than 30 s answers for itself).
    await browserContext.clock.fastForward('00:45')

    const asked = await news1.evaluate(async (token) => {
      const res = await fetch('/api/refresh-request', {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}` },
      })
      return { status: res.status, body: await res.json() }
    }, before)
    expect(asked).toMatchObject({ status: 202, body: { live_sockets: 1 } })

    for (const page of [news1, news2]) {
      await expect
        .poll(async () => (await changes(page)).at(-1)?.expiresAt ?? 0, { timeout: 3_000 })
        .toBeGreaterThan(expiresBefore)
      expect((await changes(page)).at(-1)?.status).toBe('signed_in')
    }
    const after = await currentToken(news2)
    expect(after).not.toBe(before)
    expect(await currentToken(news1)).toBe(after)
    // The new token works at the site's backend; the page never reloaded.
    const me = await news2.evaluate(
      async (token) => (await fetch('/api/me', { headers: { Authorization: `Bearer ${token}` } })).status,
      after,
    )
    expect(me).toBe(200)
    expect(navigations).toEqual([])
    await expect(status(news1)).toHaveText('Signed in as alice')
  })
})
