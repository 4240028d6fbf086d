import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { runCli } from '../../passport-server/src/cli.ts'
import { resolveConfig } from '../../passport-server/src/config.ts'
import { silentLogger } from '../../passport-server/src/deps.ts'
import { createDeps } from '../../passport-server/src/server.ts'
import { type RunningDemo, startDemo } from '../start.ts'
import { expect, message, ownDemoPorts, signIn, status, test } from './fixtures.ts'

/** A passport of this spec's own, so that it can be killed and started again. */
const ports = ownDemoPorts(0)
const news = `http://news.localhost:${ports.news}/`

async function revokeWithCli(dataDir: string, username: string): Promise<void> {
  const deps = await createDeps({
    config: resolveConfig({ issuer: `http://passport.localhost:${ports.passport}`, scryptCost: 1024 }),
    storeFile: path.join(dataDir, 'passport.sqlite'),
    log: silentLogger,
  })
  const lines: string[] = []
  const io = { out: (line: string) => lines.push(line), readSecret: async () => '' }
  await runCli(deps, ['session', 'list', '--user', username], io)
  const live = lines.filter((l) => l.includes('\tlive\t')).map((l) => l.split('\t')[0] as string)
  for (const id of live) expect(await runCli(deps, ['session', 'revoke', id], io)).toBe(0)
  await deps.store.close()
}

test('a sign-out made while the passport was down reaches the open tab once it is back, exactly once', async ({
  browserContext,
}) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-restart-'))
  let demo: RunningDemo | null = await startDemo({ ports, dataDir, quiet: true })
  try {
    const page = await browserContext.newPage()
    await signIn(page, news, 'alice', 'alice-password-1')
    await expect(status(page)).toHaveText('Signed in as alice')
    await page.evaluate(() => {
      const w = window as unknown as {
        ends: number
        passport: { onChange(fn: (s: { status: string }) => void): void }
      }
      w.ends = 0
      w.passport.onChange((s) => {
        if (s.status === 'signed_out') w.ends += 1
      })
    })
    await page.waitForTimeout(500) // the frame is connected

    await demo.close()
    demo = null
    await revokeWithCli(dataDir, 'alice') // the outage: the server is down, the store is not
    await page.waitForTimeout(500)
    demo = await startDemo({ ports, dataDir, quiet: true })

    await expect(message(page)).toHaveText('Your sign-in was revoked.', { timeout: 10_000 })
    await page.waitForTimeout(1_500)
    expect(await page.evaluate(() => (window as unknown as { ends: number }).ends)).toBe(1)
  } finally {
    await demo?.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
})
