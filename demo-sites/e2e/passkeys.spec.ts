import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Page, Request, Response } from '@playwright/test'
import { type RunningDemo, startDemo } from '../start.ts'
import { expect as baseExpect, ownPorts, signIn, status, test } from './fixtures.ts'

/** Patient: the machines these run on are shared, and one ceremony is several round trips. */
const expect = baseExpect.configure({ timeout: 15_000 })

/**
 * Passkeys (issue 16 item 2) in Chromium with a CDP virtual authenticator (platform.md §9): a
 * platform authenticator that verifies the user and holds discoverable credentials. A passport
 * of its own, so alice's passkeys and sign-ins touch no other spec.
 */
const ports = ownPorts(90)
const OLD_PASSWORD = 'alice-password-1'
const NEW_PASSWORD = 'violet-harbor-lantern-7'
let demo: RunningDemo
let dataDir: string
const urls = {
  passport: `http://passport.localhost:${ports.passport}`,
  news: `http://news.localhost:${ports.news}/`,
  shop: `http://shop.localhost:${ports.shop}/`,
  evil: `http://evil.localhost:${ports.evil}/`,
}
test.beforeEach(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-passkeys-'))
  demo = await startDemo({ ports, dataDir, quiet: true })
})
test.afterEach(async () => {
  await demo?.close()
  fs.rmSync(dataDir, { recursive: true, force: true })
})

/**
 * Gives the page's tab a virtual authenticator. With presence simulated it answers every request
 * at once, the autofill one too (a person would pick the passkey from the username field's list).
 */
async function addAuthenticator(page: Page) {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('WebAuthn.enable')
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  })
  return {
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials,
    /** Whether the user "touches" the authenticator whenever asked. */
    present: (enabled: boolean) =>
      cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId, enabled }),
  }
}

/** From News, signed out, to the passport's sign-in page. */
async function openSignIn(page: Page) {
  await page.goto(urls.news)
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await expect(page).toHaveURL(/passport\.localhost/)
}

async function signOutOnNews(page: Page) {
  await page.goto(urls.news)
  await page.getByRole('button', { name: 'Sign out' }).click()
  await expect(page.getByRole('button', { name: 'Sign in', exact: true })).toBeVisible()
}

test.describe('passkeys', () => {
  // Many round trips and two ceremonies each: generous for a busy shared machine.
  test.describe.configure({ timeout: 240_000 })

  test('register on /account, sign out, sign in with it (News signed in, Shop with no typing); removed, it no longer signs in', async ({
    browserContext,
  }) => {
    const page = await browserContext.newPage()
    const { credentials, present } = await addAuthenticator(page)
    const bodies: string[] = []
    page.on('request', (r) => bodies.push(`${r.url()} ${r.postData() ?? ''}`))

    await signIn(page, urls.news, 'alice', 'alice-password-1')
    await expect(status(page)).toHaveText('Signed in as alice')

    // Register from the account page.
    await page.goto(`${urls.passport}/account`)
    await page.getByRole('button', { name: 'Add a passkey' }).click()
    await expect(page.getByRole('status')).toHaveText('Passkey added.')
    await expect(page.locator('li.passkey')).toHaveCount(1)
    expect(await credentials()).toHaveLength(1)

    // The list travels sealed: reloaded, no response the browser received names the passkey.
    const received: { url: string; body: string }[] = []
    const reading: Promise<void>[] = []
    const record = (r: Response) => {
      reading.push(
        r
          .text()
          .then((body) => {
            received.push({ url: r.url(), body })
          })
          .catch(() => {}),
      )
    }
    page.on('response', record)
    await page.reload()
    const listed = page.locator('li.passkey')
    await expect(listed).toHaveCount(1)
    const shownPasskey = [
      (await listed.getAttribute('data-passkey')) ?? '',
      (await listed.locator('strong').textContent()) ?? '',
      (await listed.locator('span.site').textContent()) ?? '',
    ]
    expect(shownPasskey.every((t) => t.length > 0)).toBe(true)
    page.off('response', record)
    await Promise.all(reading)
    const sealedList = received.filter((b) => b.url === `${urls.passport}/account/passkeys/sealed`)
    expect(sealedList).toHaveLength(1)
    expect((JSON.parse(sealedList[0]?.body ?? '{}') as { sealed?: string }).sealed?.split('.')).toHaveLength(
      5,
    )
    for (const { url, body } of received.filter(
      (b) => b.url.startsWith(urls.passport) && !b.url.endsWith('.js'),
    )) {
      for (const text of shownPasskey) expect(body, `${url} carries "${text}"`).not.toContain(text)
    }

    await signOutOnNews(page)

    // Sign in with it from the username field's autofill (conditional mediation): back on
    // News, signed in, with no password typed.
    const typedBefore = bodies.length
    await page.goto(urls.news)
    const passkeyPost = page.waitForRequest((r) => r.url() === `${urls.passport}/login/passkey`)
    await page.getByRole('button', { name: 'Sign in', exact: true }).click()
    await passkeyPost
    await expect(page).toHaveURL(new RegExp(`^${urls.news}`))
    await expect(status(page)).toHaveText('Signed in as alice')
    expect(bodies.slice(typedBefore).some((b) => b.includes('alice-password-1'))).toBe(false)

    // And with the button: the autofill request waits (nobody touches the authenticator).
    await signOutOnNews(page)
    await present(false)
    await openSignIn(page)
    await expect(page.locator('#username')).toHaveAttribute('autocomplete', 'username webauthn')
    expect(await page.evaluate(() => PublicKeyCredential.isConditionalMediationAvailable())).toBe(true)
    await present(true)
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await expect(page).toHaveURL(new RegExp(`^${urls.news}`))
    await expect(status(page)).toHaveText('Signed in as alice')
    // A normal passport sign-in: the next site picks it up silently.
    const shop = await browserContext.newPage()
    await shop.goto(urls.shop)
    await expect(status(shop)).toHaveText('Signed in as alice')
    await shop.close()
    // The account page says how this device signed in.
    await page.goto(`${urls.passport}/account`)
    await expect(page.locator('li.device', { hasText: '(this device)' })).toContainText('with a passkey')

    // Remove it: it no longer signs in, though the authenticator still holds it.
    await page.getByRole('button', { name: 'Remove this passkey' }).click()
    await expect(page.getByRole('status')).toContainText('Passkey removed')
    await expect(page.locator('li.passkey')).toHaveCount(0)
    await signOutOnNews(page)
    await openSignIn(page)
    await expect(page.getByRole('alert').first()).toContainText('(passkey_removed)')
    // The refused page waits for the button; pressed, the answer is the same.
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await expect(page.getByRole('alert').first()).toContainText('(passkey_removed)')
    await expect(page).toHaveURL(/passport\.localhost/)
    await page.goto(urls.news)
    await expect(page.getByRole('button', { name: 'Sign in', exact: true })).toBeVisible()
    expect(await credentials()).toHaveLength(1)

    // Change the password on /account (issue 16): neither password in any request (URL, header,
    // body) or socket frame; a wrong current password and a weak new one are refused on the page.
    await present(false) // the passkey autofill waits: this sign-in is by password
    await signIn(page, urls.news, 'alice', OLD_PASSWORD)
    await expect(status(page)).toHaveText('Signed in as alice')
    const wire: string[] = []
    const cdp = await page.context().newCDPSession(page)
    await cdp.send('Network.enable')
    cdp.on('Network.webSocketFrameSent', (e) => wire.push(e.response.payloadData))
    cdp.on('Network.webSocketFrameReceived', (e) => wire.push(e.response.payloadData))
    const onRequest = (r: Request) => {
      wire.push(`${r.method()} ${r.url()}\n${JSON.stringify(r.headers())}\n${r.postData() ?? ''}`)
    }
    page.on('request', onRequest)
    await page.goto(`${urls.passport}/account`)
    const change = page.locator('#password-change')
    const fill = async (current: string, next: string, again = next) => {
      await page.getByLabel('Current password').fill(current)
      await page.getByLabel(/^New password \(/).fill(next)
      await page.getByLabel('New password again').fill(again)
      await change.getByRole('button', { name: 'Change password' }).click()
    }
    await fill(OLD_PASSWORD, 'alice')
    await expect(change.getByRole('alert')).toContainText('too short')
    await fill('not-alices-password', NEW_PASSWORD)
    await expect(change.getByRole('alert')).toContainText('(invalid_proof)')
    await fill(OLD_PASSWORD, NEW_PASSWORD)
    await expect(change.getByRole('status')).toContainText('Password changed.')
    page.off('request', onRequest)
    await cdp.detach()
    expect(wire.filter((w) => w.startsWith(`POST ${urls.passport}/account/password/sealed`))).toHaveLength(1)
    for (const text of wire) {
      for (const secret of [OLD_PASSWORD, NEW_PASSWORD, 'not-alices-password']) {
        expect(text).not.toContain(secret)
        expect(text).not.toContain(encodeURIComponent(secret))
      }
    }
    // The old password no longer signs in; the new one does.
    await signOutOnNews(page)
    await signIn(page, urls.news, 'alice', OLD_PASSWORD)
    await expect(page.getByRole('alert').first()).toContainText(/Wrong username or password/)
    await expect(page).toHaveURL(/passport\.localhost/)
    await signIn(page, urls.news, 'alice', NEW_PASSWORD)
    await expect(status(page)).toHaveText('Signed in as alice')
  })

  test('hostile twin: evil.localhost can neither use the passport passkey nor get its challenges', async ({
    browserContext,
  }) => {
    const page = await browserContext.newPage()
    const { credentials } = await addAuthenticator(page)
    await signIn(page, urls.news, 'alice', 'alice-password-1')
    await expect(status(page)).toHaveText('Signed in as alice')
    await page.goto(`${urls.passport}/account`)
    await page.getByRole('button', { name: 'Add a passkey' }).click()
    await expect(page.getByRole('status')).toHaveText('Passkey added.')
    expect(await credentials()).toHaveLength(1)

    await page.goto(urls.evil)
    const outcome = await page.evaluate(async (passport) => {
      const results: string[] = []
      try {
        // The browser refuses an RP ID that is not the page's own domain.
        await navigator.credentials.get({
          publicKey: {
            rpId: new URL(passport).hostname,
            challenge: crypto.getRandomValues(new Uint8Array(32)),
            userVerification: 'required',
          },
        })
        results.push('assertion')
      } catch (err) {
        results.push((err as Error).name)
      }
      // A cross-site post for sign-in options: refused, and unreadable anyway.
      try {
        const res = await fetch(`${passport}/login/passkey/options`, {
          method: 'POST',
          body: new URLSearchParams({ csrf: 'x' }),
          credentials: 'include',
          mode: 'no-cors',
        })
        results.push(res.type)
      } catch (err) {
        results.push((err as Error).name)
      }
      return results
    }, urls.passport)
    expect(outcome[0]).toBe('SecurityError')
    expect(['opaque', 'TypeError']).toContain(outcome[1])
  })
})
