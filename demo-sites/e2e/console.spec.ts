import { createServer } from 'node:http'
import type { Page } from '@playwright/test'
import WebSocket from 'ws'
import { expect as baseExpect, message, signIn, status, test, urls } from './fixtures.ts'

// Set-up steps wait longer on a loaded machine; the pushed changes keep their own 1 s bound.
const expect = baseExpect.configure({ timeout: 20_000 })

/** @see issue 19: the operator console at /admin. */
const pushed = { timeout: 1_000 }
const portBase = Number(process.env.E2E_PORT_BASE) || 18080
/** A site that exists only in these tests: its page is served by the browser's router. */
const blogOrigin = `http://blog.localhost:${portBase + 8}`

async function openConsole(page: Page, view = 'Sessions') {
  await page.goto(`${urls.passport}/admin`)
  await page.getByLabel('Username', { exact: true }).fill('admin')
  await page.getByLabel('Password', { exact: true }).fill('admin-password-1')
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await expect(page.getByTestId('live-status')).toHaveText('live')
  if (view !== 'Sessions') await page.getByRole('button', { name: view, exact: true }).click()
}

/**
 * Serves a minimal page on `blogOrigin` embedding the passport with `authkey`, from a real
 * loopback server (a page the browser's router made up counts as a public address, and Chromium's
 * local network access then keeps it from loading the passport's script).
 */
async function serveBlog(authkey: string): Promise<() => Promise<void>> {
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>Blog</title>
<script src="${urls.passport}/passport.js" data-authkey="${authkey}"></script></head>
<body><p id="status">Checking…</p><p id="message"></p><p id="expires"></p><button type="button" id="login">Sign in</button>
<script>
  const passport = window.passport
  const render = (s) => {
    document.getElementById('status').textContent = s.status === 'signed_in' ? 'Signed in' : s.status
    document.getElementById('expires').textContent = s.status === 'signed_in' ? String(s.expiresAt) : ''
    document.getElementById('message').textContent = s.status === 'signed_out' ? String(s.reason) : ''
  }
  // The state may be settled already (back from the passport with the answer): show it, then follow.
  passport.onChange(render)
  render(passport.state)
  document.getElementById('login').onclick = () => passport.login()
</script></body></html>`
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' })
    res.end(html)
  })
  await new Promise<void>((resolve) => server.listen(portBase + 8, '127.0.0.1', resolve))
  // The browser keeps its connection open: without closing it, close() waits a minute for it.
  return () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
}

test.describe('operator console', () => {
  // Several browsers and a passport on a shared machine: the steps before the timed ones are slow.
  test.describe.configure({ timeout: 240_000 })
  test('an admin registers a site in the console and its authkey works on a page', async ({
    browserContext,
    newDevice,
  }, testInfo) => {
    const consolePage = await browserContext.newPage()
    await openConsole(consolePage, 'Sites')
    const id = `blog-${testInfo.project.name}-${Date.now().toString(36)}`
    const form = consolePage.getByTestId('register-site')
    await form.getByLabel('Id', { exact: true }).fill(id)
    await form.getByLabel('Name', { exact: true }).fill('Blog')
    await form.getByLabel('Origins', { exact: true }).fill(blogOrigin)
    await form.getByRole('button', { name: 'Register site' }).click()
    const authkey = (await consolePage.getByTestId('authkey').textContent()) ?? ''
    expect(authkey.length).toBeGreaterThan(20)
    await expect(consolePage.getByTestId('sites').locator(`tr[data-site="${id}"]`)).toBeVisible()

    const stopBlog = await serveBlog(authkey)
    try {
      const alice = await newDevice()
      const blog = await alice.newPage()
      await blog.goto(`${blogOrigin}/`)
      await expect(status(blog)).toHaveText('signed_out')
      await signIn(blog, `${blogOrigin}/`, 'alice', 'alice-password-1')
      await expect(status(blog)).toHaveText('Signed in')
    } finally {
      await stopBlog()
    }

    // The registration is in the audit log.
    await consolePage.getByRole('button', { name: 'Audit', exact: true }).click()
    await expect(
      consolePage.getByTestId('audit').locator('tr[data-type="console_site_registered"]').first(),
    ).toBeVisible()
  })

  test("alice's sessions appear live as she signs in on News and Shop; signing her device out shows on its tab within a second", async ({
    browserContext,
    newDevice,
  }) => {
    const consolePage = await browserContext.newPage()
    await openConsole(consolePage)
    const navigations: string[] = []
    consolePage.on('framenavigated', (f) => f === consolePage.mainFrame() && navigations.push(f.url()))

    const alice = await newDevice()
    const news = await alice.newPage()
    await signIn(news, urls.news, 'alice', 'alice-password-1')
    await expect(status(news)).toHaveText('Signed in as alice')
    // Newest wins on News: exactly one of alice's devices holds it, this one.
    const row = consolePage.getByTestId('sessions').locator('tr[data-user="alice"]:has([data-site="news"])')
    await expect(row).toHaveCount(1, { timeout: 2_000 })
    await expect(row.locator('[data-site="shop"]')).toHaveCount(0)

    const shop = await alice.newPage()
    await shop.goto(urls.shop)
    await expect(status(shop)).toHaveText('Signed in as alice')
    await expect(row.locator('[data-site="shop"]')).toBeVisible({ timeout: 2_000 })
    await expect(row.getByTestId('socket')).toContainText('connected', { timeout: 3_000 })
    expect(navigations).toEqual([]) // no reload: the socket brought every change

    await row.getByRole('button', { name: 'Sign out this device' }).click()
    await expect(message(news)).toHaveText('Your sign-in was revoked.', pushed)
    await expect(message(shop)).toHaveText('Your sign-in was revoked.', pushed)
    await expect(row).toHaveCount(0, { timeout: 2_000 })
  })

  test('a non-admin and evil.localhost get 403 from the console and its socket', async ({
    browserContext,
    newDevice,
  }) => {
    // alice is signed in at the passport (first-party), but is no admin.
    const alice = await newDevice()
    const news = await alice.newPage()
    await signIn(news, urls.news, 'alice', 'alice-password-1')
    await expect(status(news)).toHaveText('Signed in as alice')
    const page = await alice.newPage()
    for (const path of ['/admin', '/admin/api/sessions', '/admin/api/audit', '/admin/console.js']) {
      const res = await page.goto(`${urls.passport}${path}`)
      expect({ path, status: res?.status() }).toEqual({ path, status: 403 })
    }
    // The socket with alice's own passport cookie and the passport's origin (every passport page's
    // CSP would stop a socket opened from it before it reached the server, proving nothing).
    const cookie = (await alice.cookies(urls.passport)).find((c) => c.name === '__Host-passport_session')
    expect(cookie).toBeTruthy()
    const upgrade = await new Promise<number>((resolve) => {
      // Node does not resolve *.localhost: the passport's own address, its Origin as the browser's.
      const ws = new WebSocket(`ws://127.0.0.1:${portBase}/admin/live`, 'passport-console.v1', {
        headers: { Origin: urls.passport, Cookie: `${cookie?.name}=${cookie?.value}` },
      })
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      ws.on('open', () => resolve(101))
      ws.on('error', () => resolve(-1))
    })
    expect(upgrade).toBe(403)

    // The admin, signed in at the console, visits evil.localhost: its calls get 403.
    const adminPage = await browserContext.newPage()
    await openConsole(adminPage)
    const evil = await browserContext.newPage()
    await evil.goto(urls.evil)
    // What evil's page sends with the admin's browser changes nothing (the 403 itself, for an
    // Origin of evil.localhost, is asserted route by route in routes/admin.test.ts).
    for (const [method, path] of [
      ['GET', '/admin/api/sessions'],
      ['POST', '/admin/api/users'],
    ] as const) {
      const answer = await evil.evaluate(
        ({ url, method }) =>
          fetch(url, {
            method,
            credentials: 'include',
            ...(method === 'POST' ? { body: '{"username":"mallory","password":"mallory-password"}' } : {}),
          }).then(
            (r) => `read ${r.status}`,
            () => 'unreadable',
          ),
        { url: `${urls.passport}${path}`, method },
      )
      expect({ path, answer }).toEqual({ path, answer: 'unreadable' })
    }
    const users = await adminPage.evaluate(() => fetch('/admin/api/users').then((r) => r.json()))
    expect(JSON.stringify(users)).not.toContain('mallory')
    const evilSocket = await evil.evaluate(
      (url) =>
        new Promise<boolean>((resolve) => {
          const ws = new WebSocket(url, 'passport-console.v1')
          ws.onopen = () => resolve(true)
          ws.onerror = () => resolve(false)
        }),
      `${urls.passport.replace('http', 'ws')}/admin/live`,
    )
    expect(evilSocket).toBe(false)
  })

  test('"Refresh now" in the monitoring terminal changes the tab\'s token with no reload', async ({
    browserContext,
    newDevice,
  }) => {
    const alice = await newDevice()
    // The frame rotates on a forced refresh only a token older than 30 s (else it answers with
    // the one it has): alice's clock is moved past that below.
    await alice.clock.install()
    const news = await alice.newPage()
    await signIn(news, urls.news, 'alice', 'alice-password-1')
    await expect(status(news)).toHaveText('Signed in as alice')
    const expiresAt = () =>
      news.evaluate(() => {
        const state = (window as unknown as { passport: { state: { status: string; expiresAt?: number } } })
          .passport.state
        return state.expiresAt ?? 0
      })
    const before = await expiresAt()
    expect(before).toBeGreaterThan(0)
    const changes: number[] = []
    await news.exposeFunction('sawChange', (at: number) => changes.push(at))
    await news.evaluate(() => {
      const p = (
        window as unknown as { passport: { onChange(l: (s: { expiresAt?: number }) => void): void } }
      ).passport
      p.onChange((s) => (window as unknown as { sawChange(n: number): void }).sawChange(s.expiresAt ?? 0))
    })

    const consolePage = await browserContext.newPage()
    await openConsole(consolePage, 'Monitoring')
    const row = consolePage.getByTestId('tokens').locator('tr[data-user="alice"][data-site="news"]')
    await expect(row).toHaveCount(1, { timeout: 2_000 })
    await expect(row.getByTestId('valid-for')).toHaveText(/^\d+:\d\d$/)
    const rowBefore = await row.getAttribute('data-expires')
    await news.waitForTimeout(1_100) // the new token's expiry (seconds) differs from the old one's
    await alice.clock.fastForward('00:45')
    const navigations: string[] = []
    news.on('framenavigated', (f) => f === news.mainFrame() && navigations.push(f.url()))
    await expect(row.getByRole('button', { name: 'Refresh now' })).toBeEnabled({ timeout: 3_000 })
    await row.getByRole('button', { name: 'Refresh now' }).click()
    await expect.poll(expiresAt, { timeout: 5_000 }).toBeGreaterThan(before)
    expect(changes.some((at) => at > before)).toBe(true)
    expect(navigations).toEqual([])
    // The view shows the new token (its row was pushed again).
    await expect(row).not.toHaveAttribute('data-expires', rowBefore ?? '', { timeout: 2_000 })
  })
})
