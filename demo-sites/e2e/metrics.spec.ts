import { expect, signIn, status, test, testPorts, urls } from './fixtures.ts'

const METRICS = `http://127.0.0.1:${testPorts.management}/metrics`

/** Sums the samples of `name` whose labels include all of `labels`. */
async function scrape(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(METRICS)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    const match = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    const got = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    )
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(match[3])
  }
  return sum
}

test.describe('metrics (issue 19)', () => {
  test('/metrics after a scripted run: its sign-in, mint and live socket are counted', async ({
    browserContext,
  }) => {
    const before = {
      signIns: await scrape('passport_operations_total', { operation: 'sign_in', status: '303' }),
      mints: await scrape('passport_tokens_minted_total'),
    }
    const page = await browserContext.newPage()
    await signIn(page, urls.news, 'alice', 'alice-password-1')
    await expect(status(page)).toHaveText('Signed in as alice')
    // News's frame holds a live socket now.
    await expect.poll(() => scrape('passport_live_sockets'), { timeout: 5_000 }).toBeGreaterThanOrEqual(1)
    expect(await scrape('passport_operations_total', { operation: 'sign_in', status: '303' })).toBe(
      before.signIns + 1,
    )
    expect(await scrape('passport_tokens_minted_total')).toBe(before.mints + 1)
    await page.getByRole('button', { name: 'Sign out' }).click()
    await expect(page.getByRole('button', { name: 'Sign in', exact: true })).toBeVisible()
    expect(await scrape('passport_session_endings_total', { reason: 'signed_out' })).toBeGreaterThanOrEqual(1)
    expect(await scrape('passport_store_up')).toBe(1)
  })

  test('the management listener is on loopback only, apart from the public origin', async () => {
    // The public listener does not serve it, whatever the Host.
    const res = await fetch(`http://127.0.0.1:${testPorts.passport}/metrics`)
    expect(res.status).toBe(404)
  })
})
