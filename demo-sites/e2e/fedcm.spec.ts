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
// Third-party cookies blocked only (playwright.config.ts): that is where FedCM earns its keep.
// Each case signs in a few times over; the shared test machine can be slow.
test.setTimeout(120_000)

interface Watched {
  page: Page
  /** Account choosers the browser showed on this page. */
  dialogs: string[]
  /** Top-level navigations after the first load. */
  navigations: string[]
}

/** A tab whose FedCM dialogs are answered with the first account, its navigations counted. */
async function watchedPage(
  context: BrowserContext,
  { chooseAccount = true, continueToSignIn = false } = {},
): Promise<Watched> {
  const page = await context.newPage()
  const cdp = await context.newCDPSession(page)
  const dialogs: string[] = []
  const navigations: string[] = []
  await cdp.send('FedCm.enable', { disableRejectionDelay: true })
  cdp.on('FedCm.dialogShown', (event) => {
    dialogs.push(event.dialogType)
    // A dialog without accounts (the passport signed out: "sign in to passport?") is closed
    // unless asked to go on to `login_url`. The notice of an automatic sign-in (`AutoReauthn`)
    // is left alone: closing it cancels the sign-in.
    if (event.dialogType === 'AutoReauthn') return
    if (chooseAccount && event.dialogType === 'AccountChooser')
      cdp.send('FedCm.selectAccount', { dialogId: event.dialogId, accountIndex: 0 }).catch(() => {})
    else if (continueToSignIn && event.dialogType === 'ConfirmIdpLogin')
      cdp
        .send('FedCm.clickDialogButton', {
          dialogId: event.dialogId,
          dialogButton: 'ConfirmIdpLoginContinue',
        })
        .catch(() => {})
    else cdp.send('FedCm.dismissDialog', { dialogId: event.dialogId }).catch(() => {})
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

/**
 * A FedCM request made straight from a page of `site` (its 404 page: served from the loopback
 * like the site, so the browser's local-network checks pass, and with no SDK that would ask
 * first). What came back, and which dialogs the browser showed for it.
 */
async function fedcmProbe(
  context: BrowserContext,
  site: string,
  clientId: string,
  mediation: CredentialMediationRequirement,
): Promise<{ result: string; dialogs: string[] }> {
  const probe = await watchedPage(context)
  // Chromium says why it refused only on the console: kept for a failure's message.
  const said: string[] = []
  probe.page.on('console', (m) => said.push(m.text()))
  await probe.page.goto(`${site}fedcm-probe`)
  const result = await probe.page.evaluate(
    ([configURL, id, m]) =>
      navigator.credentials
        .get({
          identity: { providers: [{ configURL, clientId: id, params: { nonce: 'x'.repeat(43) } }] },
          mediation: m,
        } as CredentialRequestOptions)
        .then(
          (c) => `token auto=${(c as unknown as { isAutoSelected: boolean }).isAutoSelected}`,
          // IdentityCredentialError: the passport's `error.code` as `error`, where CORS lets it through.
          (e: Error & { error?: string }) => `refused:${e.name}${e.error ? `:${e.error}` : ''}`,
        ),
    [`${urls.passport}/fedcm/config.json`, clientId, mediation],
  )
  await probe.page.close()
  if (result.startsWith('refused')) console.info(`FedCM ${mediation} on ${site} refused: ${said.join(' | ')}`)
  return { result, dialogs: probe.dialogs }
}

test('sign in on News with FedCM (one chooser, no navigation); Shop signs in without navigating, with its own chooser once (Chromium: no silent sign-in on a site never chosen); after that, a new passport sign-in opens both with no dialog and no navigation', async ({
  browserContext,
}) => {
  await passportSession(browserContext)
  const news = await watchedPage(browserContext)
  await news.page.goto(urls.news)
  await expect(status(news.page)).toHaveText('Signed in as alice')
  expect(news.dialogs).toEqual(['AccountChooser'])
  expect(news.navigations).toEqual([])

  // News is connected, the passport session live: Chromium still signs Shop in silently only if
  // the user chose the passport on Shop before, in this browser (docs/fedcm.md, measured).
  expect(await fedcmProbe(browserContext, urls.shop, 'shop', 'silent')).toEqual({
    result: 'refused:NetworkError',
    dialogs: [],
  })
  const shop = await watchedPage(browserContext)
  await shop.page.goto(urls.shop)
  await expect(status(shop.page)).toHaveText('Signed in as alice')
  expect(shop.navigations).toEqual([])
  expect(shop.dialogs).toEqual(['AccountChooser'])

  // A returning site: `silent` signs in with no chooser (a brief "signing you in" notice).
  expect(await fedcmProbe(browserContext, urls.news, 'news', 'silent')).toEqual({
    result: 'token auto=true',
    dialogs: ['AutoReauthn'],
  })

  // Signed out everywhere, then signed in again at the passport on a site without FedCM: both
  // connected sites, opened in new tabs, are signed in by their frames with no dialog at all.
  await shop.page.getByRole('button', { name: 'Sign out' }).click()
  await expect(status(news.page)).toHaveText('You are not signed in.')
  await news.page.close()
  await shop.page.close()
  await passportSession(browserContext)
  for (const site of [urls.shop, urls.news]) {
    const again = await watchedPage(browserContext)
    await again.page.goto(site)
    await expect(status(again.page)).toHaveText('Signed in as alice')
    expect(again.dialogs).toEqual([])
    expect(again.navigations).toEqual([])
  }
})

/** News and Shop both connected through FedCM in this profile, both signed in. */
async function connectBoth(context: BrowserContext): Promise<{ news: Watched; shop: Watched }> {
  await passportSession(context)
  const news = await watchedPage(context)
  await news.page.goto(urls.news)
  await expect(status(news.page)).toHaveText('Signed in as alice')
  const shop = await watchedPage(context)
  await shop.page.goto(urls.shop)
  await expect(status(shop.page)).toHaveText('Signed in as alice')
  return { news, shop }
}

test('a Shop tab opened signed out picks up a sign-in made on News within a second, no reload', async ({
  browserContext,
}) => {
  const { news, shop } = await connectBoth(browserContext)
  await shop.page.getByRole('button', { name: 'Sign out' }).click()
  await expect(status(news.page)).toHaveText('You are not signed in.')
  await shop.page.close()

  const waiting = await watchedPage(browserContext)
  await waiting.page.goto(urls.shop)
  await expect(status(waiting.page)).toHaveText('You are not signed in.')
  const settled = waiting.navigations.length

  // Sign in on News again (the passport has no session now: its password page).
  await news.page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await expect(news.page).toHaveURL(/passport\.localhost/)
  await news.page.getByLabel('Username', { exact: true }).fill('alice')
  await news.page.getByLabel('Password', { exact: true }).fill('alice-password-1')
  await news.page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await expect(status(news.page)).toHaveText('Signed in as alice')
  const signedInAt = Date.now()
  await expect(status(waiting.page)).toHaveText('Signed in as alice', { timeout: 1_500 })
  console.info(`Shop picked the sign-in up ${Date.now() - signedInAt} ms after News showed it`)
  expect(waiting.navigations.length).toBe(settled)
})

test('the browser still thinks the passport signed in, the passport does not: the "sign in to the passport" dialog answered Continue opens login_url, which closes itself, and the tab goes on to the passport\'s sign-in, no dead end', async ({
  browserContext,
}) => {
  // A password sign-in on News (a top-level passport page: the browser records "logged in"),
  // then a sign-out through News's frame, which has no storage access here: the browser keeps
  // its "logged in" record while the passport has no session (as after a session expiry).
  const tab = await watchedPage(browserContext, { continueToSignIn: true })
  await signIn(tab.page, urls.news, 'alice', 'alice-password-1')
  await expect(status(tab.page)).toHaveText('Signed in as alice')
  await tab.page.getByRole('button', { name: 'Sign out' }).click()
  await expect(status(tab.page)).toHaveText('You are not signed in.')
  expect(tab.dialogs).toEqual([])

  const popup = browserContext.waitForEvent('page')
  await tab.page.getByRole('button', { name: 'Sign in', exact: true }).click()
  // The accounts come back 401: the browser's own dialog, answered Continue, opens its pop-up
  // at the passport's login_url ...
  const opened = await popup
  expect(new URL(opened.url()).pathname).toBe('/fedcm/sign-in')
  expect(tab.dialogs).toEqual(['ConfirmIdpLogin'])
  // ... which closes itself at once (IdentityProvider.close) ...
  await expect.poll(() => opened.isClosed(), { timeout: 5_000 }).toBe(true)
  // ... and the site's tab goes on to the passport's sign-in page, which comes back signed in.
  await expect(tab.page).toHaveURL(/passport\.localhost.*\/authorize/)
  await tab.page.getByLabel('Username', { exact: true }).fill('alice')
  await tab.page.getByLabel('Password', { exact: true }).fill('alice-password-1')
  await tab.page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await expect(status(tab.page)).toHaveText('Signed in as alice')
})

test('a sign-out on Shop reaches News with the live channel blocked', async ({ browserContext }) => {
  await browserContext.routeWebSocket(/\/live/, (ws) => ws.close())
  const { news, shop } = await connectBoth(browserContext)
  await shop.page.getByRole('button', { name: 'Sign out' }).click()
  await expect(status(shop.page)).toHaveText('You are not signed in.')
  await expect(status(news.page)).toHaveText('You are not signed in.', { timeout: 2_000 })
})

/** A request to the passport from outside the browser, with the profile's passport cookies. */
async function passportRequest(context: BrowserContext, pathname: string, init: RequestInit = {}) {
  const cookies = await context.cookies(urls.passport)
  // Node does not resolve *.localhost: the loopback address, the cookies by hand.
  return fetch(`http://127.0.0.1:${ports.passport}${pathname}`, {
    ...init,
    headers: {
      ...(init.headers as Record<string, string>),
      Cookie: cookies.map((c) => `${c.name}=${c.value}`).join('; '),
    },
  })
}

/** Whether the passport frame embedded in `page` holds (or can get, unprompted) storage access. */
async function frameStorageAccess(page: Page): Promise<boolean> {
  const frame = page.frames().find((f) => f.url().startsWith(`${urls.passport}/frame/`))
  if (!frame) throw new Error('no passport frame')
  return frame.evaluate(() =>
    document.requestStorageAccess().then(
      () => true,
      () => false,
    ),
  )
}

test('disconnect: after IdentityCredential.disconnect the site is not auto-granted any more, and its sign-in ends', async ({
  browserContext,
}) => {
  const { news } = await connectBoth(browserContext)
  expect(await frameStorageAccess(news.page)).toBe(true)
  const accounts = await passportRequest(browserContext, '/fedcm/accounts', {
    headers: { 'Sec-Fetch-Dest': 'webidentity' },
  })
  const accountId = ((await accounts.json()) as { accounts: { id: string }[] }).accounts[0]?.id
  await news.page.evaluate(
    ([configURL, accountHint]) =>
      (
        window as unknown as {
          IdentityCredential: {
            disconnect(o: { configURL: string; clientId: string; accountHint: string }): Promise<void>
          }
        }
      ).IdentityCredential.disconnect({
        configURL: configURL as string,
        clientId: 'news',
        accountHint: accountHint as string,
      }),
    [`${urls.passport}/fedcm/config.json`, accountId],
  )
  // The passport ended this device's sign-in on News (pushed to the tab) ...
  await expect(status(news.page)).toHaveText('You are not signed in.')
  // ... and the browser no longer lets News's passport frame in unprompted.
  const again = await watchedPage(browserContext, { chooseAccount: false })
  await again.page.goto(urls.news)
  await expect(status(again.page)).toHaveText('You are not signed in.')
  expect(await frameStorageAccess(again.page)).toBe(false)
})

test("hostile twins: no assertion for evil.localhost or for another site's client_id, none without webidentity", async ({
  browserContext,
}) => {
  await connectBoth(browserContext)
  const ask = (page: Page, clientId: string) =>
    page.evaluate(
      ([configURL, id]) =>
        navigator.credentials
          .get({
            identity: { providers: [{ configURL, clientId: id, params: { nonce: 'x'.repeat(43) } }] },
            mediation: 'optional',
          } as CredentialRequestOptions)
          .then(
            (c) => `token:${(c as unknown as { token: string }).token}`,
            (e: Error) => `refused:${e.name}`,
          ),
      [`${urls.passport}/fedcm/config.json`, clientId],
    )
  // evil.localhost, not registered, from a page its own server sends (a page Playwright made up
  // would be refused by the browser before the passport is asked: local-network checks). The
  // browser shows the chooser (the passport session is live; the accounts request names no
  // site), alice is picked, and the passport refuses the assertion.
  for (const clientId of ['news', 'evil']) {
    // The passport's 403 has no CORS header, so not even its error code reaches the page; the
    // browser says "something went wrong" in a dialog of its own.
    expect(await fedcmProbe(browserContext, urls.evil, clientId, 'optional')).toEqual({
      result: 'refused:IdentityCredentialError',
      dialogs: ['AccountChooser', 'Error'],
    })
  }
  // Shop, registered, asking with News's client_id.
  const shop = await watchedPage(browserContext)
  await shop.page.goto(urls.shop)
  await expect(status(shop.page)).toHaveText('Signed in as alice')
  expect(await ask(shop.page, 'news')).toMatch(/^refused:/)
  // A request the browser's FedCM did not make (no Sec-Fetch-Dest: webidentity), cookies and all.
  const forged = await passportRequest(browserContext, '/fedcm/assertion', {
    method: 'POST',
    headers: { Origin: urls.news.slice(0, -1), 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: 'news', account_id: 'x', nonce: 'x'.repeat(43) }).toString(),
  })
  expect(forged.status).toBe(403)
  expect(forged.headers.get('access-control-allow-origin')).toBeNull()
})
