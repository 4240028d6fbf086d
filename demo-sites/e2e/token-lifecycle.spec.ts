import type { BrowserContext, Page } from '@playwright/test'
import { expect, signIn, status, test, urls } from './fixtures.ts'

/** Refresh requests the frames send to the passport, counted across every tab of the context. */
function countRefreshes(context: BrowserContext): string[] {
  const seen: string[] = []
  context.on('request', (r) => {
    if (r.url() === `${urls.passport}/api/frame/token` && r.postData()?.includes('"refresh_token"')) {
      seen.push(r.frame().url())
    }
  })
  return seen
}

/** What the site's backend says about the page's current token. */
async function backendSays(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const token = await (
      window as unknown as { passport: { getToken(): Promise<string> } }
    ).passport.getToken()
    return (await fetch('/api/me', { headers: { Authorization: `Bearer ${token}` } })).status
  })
}

test.describe('token lifecycle', () => {
  test('three News tabs due for refresh at once: one refresh request, all stay signed in', async ({
    browserContext,
  }) => {
    await browserContext.clock.install()
    const tabs = [await browserContext.newPage()]
    await signIn(tabs[0] as Page, urls.news, 'alice', 'alice-password-1')
    // The first tab has finished signing in (code exchanged, hint written) before the others open:
    // a tab opened mid-sign-in would find no sign-in yet and, its silent try spent, stay signed out.
    await expect(status(tabs[0] as Page)).toHaveText('Signed in as alice')
    for (let i = 0; i < 2; i++) {
      const page = await browserContext.newPage()
      await page.goto(urls.news)
      tabs.push(page)
    }
    for (const page of tabs) await expect(status(page)).toHaveText('Signed in as alice')

    const refreshes = countRefreshes(browserContext)
    // Tokens live 15 minutes and are refreshed 5 minutes before expiry.
    await browserContext.clock.fastForward('10:05')
    await expect.poll(() => refreshes.length).toBe(1)
    await tabs[0]?.waitForTimeout(500)
    expect(refreshes).toHaveLength(1)
    for (const page of tabs) {
      await expect(status(page)).toHaveText('Signed in as alice')
      expect(await backendSays(page)).toBe(200)
    }
  })

  for (const [label, offset] of [
    ['2 hours ahead', 2 * 3600_000],
    ['2 hours behind', -2 * 3600_000],
  ] as const) {
    test(`a client clock ${label} still refreshes once, at the right time`, async ({ browserContext }) => {
      await browserContext.clock.install({ time: Date.now() + offset })
      const news = await browserContext.newPage()
      await signIn(news, urls.news, 'alice', 'alice-password-1')
      await expect(status(news)).toHaveText('Signed in as alice')
      const refreshes = countRefreshes(browserContext)

      await browserContext.clock.fastForward('09:00')
      await news.waitForTimeout(500)
      expect(refreshes).toHaveLength(0)

      await browserContext.clock.fastForward('01:30')
      await expect.poll(() => refreshes.length).toBe(1)
      await browserContext.clock.fastForward('01:00')
      await news.waitForTimeout(500)
      expect(refreshes).toHaveLength(1)
      await expect(status(news)).toHaveText('Signed in as alice')
      expect(await backendSays(news)).toBe(200)
    })
  }

  test('a reload within validity makes no token request', async ({ browserContext }) => {
    const news = await browserContext.newPage()
    await signIn(news, urls.news, 'alice', 'alice-password-1')
    await expect(status(news)).toHaveText('Signed in as alice')
    const tokenRequests: string[] = []
    browserContext.on('request', (r) => {
      const path = new URL(r.url()).pathname
      if (r.url().startsWith(urls.passport) && (path === '/authorize' || path === '/api/frame/token')) {
        tokenRequests.push(path)
      }
    })
    await news.reload()
    await expect(status(news)).toHaveText('Signed in as alice')
    expect(tokenRequests).toEqual([])
  })
})
