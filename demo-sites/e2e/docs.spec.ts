import type { BrowserContext, Page } from '@playwright/test'
import { expect, message, signIn, status, test, urls } from './fixtures.ts'

const docsOrigin = urls.docs.slice(0, -1)

/** Signed in on News with the password, then Docs opened in a new tab of the same browser. */
async function signedInOnDocs(
  context: BrowserContext,
  username = 'alice',
): Promise<{ docs: Page; news: Page }> {
  const news = await context.newPage()
  await signIn(news, urls.news, username, `${username}-password-1`)
  await expect(status(news)).toHaveText(`Signed in as ${username}`)
  const docs = await context.newPage()
  await docs.goto(urls.docs)
  await expect(status(docs)).toHaveText(`Signed in as ${username}`)
  return { docs, news }
}

test.describe('Docs, a server-rendered site (session middleware)', () => {
  test('signed in on News, Docs arrives signed in: the first HTML already says so', async ({
    browserContext,
  }) => {
    const news = await browserContext.newPage()
    await signIn(news, urls.news, 'alice', 'alice-password-1')
    await expect(status(news)).toHaveText('Signed in as alice')

    const docs = await browserContext.newPage()
    const topLevel: string[] = []
    const pages: Promise<string>[] = []
    docs.on('response', (r) => {
      if (!r.request().isNavigationRequest() || r.frame() !== docs.mainFrame()) return
      topLevel.push(`${r.status()} ${r.url()}`)
      if (r.status() === 200) pages.push(r.text())
    })
    await docs.goto(urls.docs)
    await expect(status(docs)).toHaveText('Signed in as alice')
    // Three redirects (Docs → passport → Docs's callback → the page) and one page: no form, no click.
    expect(topLevel).toEqual([
      `302 ${urls.docs}`,
      expect.stringMatching(new RegExp(`^303 ${urls.passport}/authorize\\?.*prompt=none`)),
      expect.stringMatching(new RegExp(`^302 ${docsOrigin}/passport/callback\\?code=`)),
      `200 ${urls.docs}`,
    ])
    const [firstHtml] = await Promise.all(pages)
    expect(firstHtml).toContain('Signed in as alice')
    expect(firstHtml).not.toContain('Checking your sign-in')
    expect(docs.url()).toBe(urls.docs)
  })

  test('signed out everywhere: Docs renders "Sign in" after one silent try, and signs in on a click', async ({
    browserContext,
  }) => {
    const docs = await browserContext.newPage()
    const authorize: string[] = []
    docs.on('request', (r) => {
      if (r.url().startsWith(`${urls.passport}/authorize`)) authorize.push(r.url())
    })
    await docs.goto(urls.docs)
    await expect(status(docs)).toHaveText('You are not signed in.')
    await docs.reload()
    await expect(status(docs)).toHaveText('You are not signed in.')
    expect(authorize).toHaveLength(1)
    await docs.getByRole('button', { name: 'Sign in', exact: true }).click()
    await docs.getByLabel('Username', { exact: true }).fill('alice')
    await docs.getByLabel('Password', { exact: true }).fill('alice-password-1')
    await docs.getByRole('button', { name: 'Sign in', exact: true }).click()
    await expect(status(docs)).toHaveText('Signed in as alice')
    expect(docs.url()).toBe(urls.docs)
  })

  test('a sign-out on Shop reaches the open Docs tab within a second', async ({ browserContext }) => {
    const { docs } = await signedInOnDocs(browserContext)
    const shop = await browserContext.newPage()
    await shop.goto(urls.shop)
    await expect(status(shop)).toHaveText('Signed in as alice')
    await shop.getByRole('button', { name: 'Sign out' }).click()
    await expect(status(docs)).toHaveText('You are not signed in.', { timeout: 1000 })
    await expect(message(docs)).toHaveText('You were signed out on another site.')
    // And it stays signed out on the next load (the passport session ended).
    await docs.reload()
    await expect(status(docs)).toHaveText('You are not signed in.')
  })

  test('signing out on Docs signs out News too', async ({ browserContext }) => {
    const { docs, news } = await signedInOnDocs(browserContext)
    await docs.getByRole('button', { name: 'Sign out' }).click()
    await expect(status(docs)).toHaveText('You are not signed in.')
    await expect(status(news)).toHaveText('You are not signed in.')
  })

  test('a newer device signing in on Docs replaces this one, and the open tab says why', async ({
    browserContext,
    newDevice,
  }) => {
    const { docs } = await signedInOnDocs(browserContext)
    const other = await newDevice()
    await signedInOnDocs(other)
    await expect(message(docs)).toHaveText(
      'You were signed out because your account signed in on another device.',
    )
    await expect(status(docs)).toHaveText('You are not signed in.')
  })

  test("hostile twin: evil.localhost cannot plant its code at Docs's callback, nor redirect away", async ({
    browserContext,
    newDevice,
  }) => {
    // The attacker (bob, his own browser) gets a code for Docs and stops before his callback.
    const attacker = await newDevice()
    const news = await attacker.newPage()
    await signIn(news, urls.news, 'bob', 'bob-password-1')
    await expect(status(news)).toHaveText('Signed in as bob')
    // He asks the passport himself for a Docs code (his own state and PKCE). His browser follows
    // to Docs's callback, which refuses it (no sign-in of Docs in flight there): the code is unspent.
    const authorize = new URL('/authorize', urls.passport)
    authorize.search = new URLSearchParams({
      response_type: 'code',
      client_id: 'docs',
      redirect_uri: `${docsOrigin}/passport/callback`,
      state: 'attacker-state',
      code_challenge: 'A'.repeat(43),
      code_challenge_method: 'S256',
      prompt: 'none',
    }).toString()
    const page = await attacker.newPage()
    const issued = page.waitForResponse((r) => r.url().startsWith(`${urls.passport}/authorize`))
    await page.goto(authorize.href)
    const planted = (await issued).headers().location ?? ''
    expect(planted).toContain('code=')

    // The victim's browser is made to open that callback from evil.localhost.
    const victim = await browserContext.newPage()
    await victim.goto(urls.evil)
    const callback = victim.waitForResponse((r) => r.url() === planted)
    await victim.evaluate((url) => {
      location.href = url
    }, planted)
    expect((await callback).status()).toBe(400)
    await victim.goto(urls.docs)
    await expect(status(victim)).toHaveText('You are not signed in.')

    // Return URLs that lead off Docs end on Docs.
    for (const target of [
      `${docsOrigin}/passport/login?return_to=${encodeURIComponent(urls.evil)}`,
      `${docsOrigin}//evil.localhost/`,
    ]) {
      await victim.goto(urls.evil)
      await victim.evaluate((url) => {
        location.href = url
      }, target)
      await victim.waitForLoadState('load')
      await expect(victim).toHaveURL(new RegExp(`^${docsOrigin}/|^${urls.passport}/authorize`))
    }
  })
})
