import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { type BrowserContext, chromium } from '@playwright/test'

/**
 * Every spec runs in the browser users really have: Debian Chromium with storage partitioning
 * ON and third-party cookies BLOCKED (or, in the second project, allowed).
 *
 * Playwright's own launch adds `--disable-features=…,ThirdPartyStoragePartitioning,…`; a later
 * `--disable-features` switch without it wins, which turns partitioning back on
 * (../shared/platform.md §4, microsoft/playwright#32230). Third-party cookies are set through
 * the profile preference `cookie_controls_mode` (1 blocks, 0 allows) of a fresh profile.
 */
const FEATURES_OFF = [
  'AvoidUnnecessaryBeforeUnloadCheckSync',
  'DestroyProfileOnBrowserClose',
  'HttpsUpgrades',
  'HttpsFirstBalancedModeAutoEnable',
  'LensOverlay',
  'MediaRouter',
  'PaintHolding',
  'AvoidCorsURLLoaderRestartOnRedirect',
  'TcpPortRandomizationWin',
  'OptimizationHints',
  'NetworkTimeServiceQuerying',
  'AimEnabled',
  'PreconnectToSearch',
].join(',')
export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  `--disable-features=${FEATURES_OFF}`,
]
export const CHROMIUM = '/usr/bin/chromium'

export type ThirdPartyCookies = 'blocked' | 'allowed'

/** A fresh Chromium profile: a separate "device" as far as the passport can tell. */
export async function launchProfile(mode: ThirdPartyCookies): Promise<BrowserContext> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-profile-'))
  fs.mkdirSync(path.join(dir, 'Default'), { recursive: true })
  fs.writeFileSync(
    path.join(dir, 'Default', 'Preferences'),
    JSON.stringify({ profile: { cookie_controls_mode: mode === 'allowed' ? 0 : 1 } }),
  )
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    args: chromiumArgs,
    headless: true,
  })
  // Chromium may still be flushing the profile as it exits; a leftover temp dir is harmless.
  context.on('close', () =>
    fs.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }, () => {}),
  )
  return context
}
