import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { BrowserContext, Page } from '@playwright/test'
import { launchProfile } from '../demo-sites/e2e/browser-profile.ts'
import { startDemo } from '../demo-sites/start.ts'
import { skeletonUrls, startSkeletons } from './skeleton.ts'
import { round, shuffled, summarize } from './stats.ts'

/**
 * The headline number: a user signed in on News opens Shop. Timer: just before `page.goto`
 * of Shop until Playwright sees "Signed in as alice". Headless Debian Chromium, storage
 * partitioning on, third-party cookies blocked, a fresh profile (device) per sample. The floor
 * and the bare redirect run in the same rounds, in shuffled order, each from a third site.
 */
const DEMO_PORTS = { passport: 19080, news: 19081, shop: 19082, docs: 19083 }
const SKELETON_PORTS = {
  start: 19090,
  floorSite: 19091,
  floorPassport: 19092,
  bareAlpha: 19093,
  bareBeta: 19094,
}

type CaseName = 'hop' | 'floor' | 'bare'

async function timeUntilText(page: Page, url: string, text: string): Promise<number> {
  const t0 = performance.now()
  await page.goto(url, { waitUntil: 'commit' })
  await page.getByText(text).waitFor({ timeout: 10_000 })
  return performance.now() - t0
}

export async function runHopBench(options: { samples: number; warmup: number }) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-bench-'))
  const demo = await startDemo({ ports: DEMO_PORTS, dataDir, quiet: true })
  const skeletons = await startSkeletons(SKELETON_PORTS)
  const sk = skeletonUrls(SKELETON_PORTS)
  const news = `${demo.urls.news}/`
  const shop = `${demo.urls.shop}/`

  const cases: Record<CaseName, (page: Page) => Promise<number>> = {
    hop: async (page) => {
      // Untimed: sign in on News in this fresh profile; the tab stays on News.
      await page.goto(news)
      await page.getByRole('button', { name: 'Sign in', exact: true }).click()
      await page.getByLabel('Username', { exact: true }).fill('alice')
      await page.getByLabel('Password', { exact: true }).fill('alice-password-1')
      await page.getByRole('button', { name: 'Sign in', exact: true }).click()
      await page.getByText('Signed in as alice').waitFor()
      return timeUntilText(page, shop, 'Signed in as alice')
    },
    floor: async (page) => {
      await page.goto(`${sk.start}?frame=floor`, { waitUntil: 'load' })
      return timeUntilText(page, `${sk.floorSite}/`, 'Signed in as alice')
    },
    bare: async (page) => {
      await page.goto(sk.start)
      return timeUntilText(page, `${sk.bareBeta}/bounce`, 'Done')
    },
  }

  const samples: Record<CaseName, number[]> = { hop: [], floor: [], bare: [] }
  const ratios = { hopOverFloor: [] as number[], hopOverBare: [] as number[], floorOverBare: [] as number[] }
  try {
    for (let round = 0; round < options.warmup + options.samples; round++) {
      const thisRound: Partial<Record<CaseName, number>> = {}
      for (const name of shuffled(Object.keys(cases) as CaseName[])) {
        const context: BrowserContext = await launchProfile('blocked')
        try {
          const page = await context.newPage()
          thisRound[name] = await cases[name](page)
        } finally {
          await context.close()
        }
      }
      if (round < options.warmup) continue
      const { hop, floor, bare } = thisRound as Record<CaseName, number>
      samples.hop.push(hop)
      samples.floor.push(floor)
      samples.bare.push(bare)
      ratios.hopOverFloor.push(hop / floor)
      ratios.hopOverBare.push(hop / bare)
      ratios.floorOverBare.push(floor / bare)
      process.stdout.write(
        `round ${round - options.warmup + 1}/${options.samples}: hop ${round1(hop)} floor ${round1(floor)} bare ${round1(bare)} ms\n`,
      )
    }
  } finally {
    skeletons.close()
    await demo.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }

  const ratio = (xs: number[]) => ({ ...summarize(xs.map((x) => x * 100)), unit: '%' })
  return {
    samples: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])),
    // Per-round ratios (same round, same machine state), then their median: robust to noise.
    ratios: {
      hopOverFloor: ratio(ratios.hopOverFloor),
      hopOverBare: ratio(ratios.hopOverBare),
      floorOverBare: ratio(ratios.floorOverBare),
    },
    raw: samples,
  }
}

const round1 = (x: number) => round(x, 1)

export function hopMarkdown(result: Awaited<ReturnType<typeof runHopBench>>, meta: string): string {
  const s = result.samples as Record<CaseName, ReturnType<typeof summarize>>
  const r = result.ratios
  const pct = (x: { median: number; p90: number }) =>
    `${(x.median / 100).toFixed(2)}× (p90 ${(x.p90 / 100).toFixed(2)}×)`
  return `# The cross-site hop

${meta}

| case | n | median ms | p90 ms | min ms | max ms |
|---|---|---|---|---|---|
| hop: goto Shop → "Signed in as alice" (signed in on News) | ${s.hop.n} | ${s.hop.median} | ${s.hop.p90} | ${s.hop.min} | ${s.hop.max} |
| floor: skeleton of the same shape, no passport logic | ${s.floor.n} | ${s.floor.median} | ${s.floor.p90} | ${s.floor.min} | ${s.floor.max} |
| bare: a page navigates to an origin that 302s back | ${s.bare.n} | ${s.bare.median} | ${s.bare.p90} | ${s.bare.min} | ${s.bare.max} |

Ratios, median of per-round ratios:

| ratio | value | target |
|---|---|---|
| hop / floor | ${pct(r.hopOverFloor)} | ≤ 1.15× |
| hop / bare | ${pct(r.hopOverBare)} | (peer server-side RP: 1.36–1.47×) |
| floor / bare | ${pct(r.floorOverBare)} | (measured in bench-baseline: 1.95–2.25×) |
`
}
