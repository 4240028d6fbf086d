import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import * as oidc from 'openid-client'
import { registerSite } from '../../passport-server/src/services/registry.ts'
import { type RunningDemo, startDemo } from '../start.ts'
import { expect, ownDemoPorts, signIn, status, test } from './fixtures.ts'

/**
 * CIBA in the browser: a site backend (here a kiosk with no browser of its own) asks, by
 * username, for alice's approval; the prompt appears in the passport frame of her signed-in
 * News tab, with the kiosk's binding message; she picks the code the kiosk shows, and the
 * kiosk's poll gets her tokens. A passport of this spec's own, so the kiosk's client secret is
 * known to the test.
 */
const ports = ownDemoPorts(2)
const news = `http://news.localhost:${ports.news}/`

let demo: RunningDemo
let dataDir: string
let kiosk: oidc.Configuration

test.beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-ciba-'))
  demo = await startDemo({ ports, dataDir, quiet: true })
  const registered = await registerSite(demo.passport.deps, {
    id: 'kiosk',
    name: 'Kiosk',
    origins: ['http://kiosk.localhost:18299'],
  })
  // Node does not resolve *.localhost as browsers do: the kiosk reaches the passport by address.
  const internal = new URL(demo.passport.internalUrl)
  const viaAddress: oidc.CustomFetch = (url, options) => {
    const target = new URL(url)
    target.host = internal.host
    return fetch(target, options as RequestInit)
  }
  kiosk = await oidc.discovery(
    new URL(demo.urls.passport),
    'kiosk',
    { id_token_signed_response_alg: 'EdDSA' },
    oidc.ClientSecretBasic(registered.clientSecret),
    { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: viaAddress },
  )
  kiosk[oidc.customFetch] = viaAddress
})
test.afterAll(async () => {
  await demo?.close()
  fs.rmSync(dataDir, { recursive: true, force: true })
})

const promptOn = (page: import('@playwright/test').Page) =>
  page.frameLocator('iframe[title="Passport"]').getByRole('dialog', { name: 'Sign-in request' })

test('a kiosk asks by username; alice picks its code in her News tab; the kiosk gets her tokens', async ({
  browserContext,
}) => {
  const page = await browserContext.newPage()
  await signIn(page, news, 'alice', 'alice-password-1')
  await expect(status(page)).toHaveText('Signed in as alice')
  await page.waitForTimeout(500) // the frame's live channel is up

  const started = await oidc.initiateBackchannelAuthentication(kiosk, {
    scope: 'openid',
    login_hint: 'alice',
    binding_message: 'Locker 12',
  })
  const code = String(started.binding_code)
  expect(code).toMatch(/^\d\d$/)

  const prompt = promptOn(page)
  await expect(prompt).toContainText('Sign in to Kiosk on another device?', { timeout: 1_000 })
  await expect(prompt).toContainText('Locker 12')
  // The page around the frame never sees the numbers.
  expect(await page.content()).not.toContain(`>${code}<`)
  await prompt.getByRole('button', { name: code, exact: true }).click()
  await expect(prompt).toHaveCount(0)

  const tokens = await oidc.pollBackchannelAuthenticationGrant(kiosk, started)
  expect(tokens.claims()).toMatchObject({ iss: demo.urls.passport, aud: 'kiosk' })
  const introspected = await oidc.tokenIntrospection(kiosk, tokens.access_token)
  expect(introspected).toMatchObject({ active: true, aud: 'kiosk', username: 'alice' })
  // Her News tab is still signed in: approving signs nobody out.
  await expect(status(page)).toHaveText('Signed in as alice')
})

test('denying in the frame ends the kiosk request: its poll is refused', async ({ browserContext }) => {
  const page = await browserContext.newPage()
  await signIn(page, news, 'alice', 'alice-password-1')
  await expect(status(page)).toHaveText('Signed in as alice')
  await page.waitForTimeout(500)

  const started = await oidc.initiateBackchannelAuthentication(kiosk, {
    scope: 'openid',
    login_hint: 'alice',
  })
  const prompt = promptOn(page)
  await expect(prompt).toBeVisible({ timeout: 1_000 })
  await prompt.getByRole('button', { name: /deny/i }).click()
  await expect(prompt).toHaveCount(0)
  await expect(oidc.pollBackchannelAuthenticationGrant(kiosk, started)).rejects.toMatchObject({
    error: 'access_denied',
  })
})
