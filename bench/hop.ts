import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { BrowserContext, Page, Request } from '@playwright/test'
import { launchProfile } from '../demo-sites/e2e/browser-profile.ts'
import { startDemo } from '../demo-sites/start.ts'
import { peerUrls, startPeer } from './peer.ts'
import { skeletonUrls, startSkeletons } from './skeleton.ts'
import { round, shuffled, summarize } from './stats.ts'

/**
 * The headline number: a user signed in on News opens Shop (script-only) or Docs (server-
 * assisted). Timer: just before `page.goto` until Playwright sees "Signed in as alice".
 * Headless Debian Chromium, storage partitioning on, third-party cookies blocked, a fresh
 * profile (device) per sample. The classic peer (node-oidc-provider + openid-client), the
 * script-only floor and the bare redirect run in the same rounds, in shuffled order.
 */
const DEMO_PORTS = { passport: 19080, news: 19081, shop: 19082, docs: 19083 }
const PEER_PORTS = { provider: 19095, news: 19096, shop: 19097 }
const SKELETON_PORTS = {
  start: 19090,
  floorSite: 19091,
  floorPassport: 19092,
  bareAlpha: 19093,
  bareBeta: 19094,
}

type CaseName = 'hop' | 'docs' | 'peer' | 'floor' | 'bare'
const CASES: CaseName[] = ['hop', 'docs', 'peer', 'floor', 'bare']

/** One timed navigation: wall time until the text, and until the final page's first contentful paint. */
interface Sample {
  wallMs: number
  fcpMs: number
  /** Server time of the redirect hops that matter (request sent → response started), by name. */
  serverMs: Record<string, number>
}

async function timeUntilText(
  page: Page,
  url: string,
  text: string,
  hops: Record<string, (url: string) => boolean> = {},
): Promise<Sample> {
  const serverMs: Record<string, number> = {}
  const onFinished = (request: Request) => {
    for (const [name, matches] of Object.entries(hops)) {
      if (!matches(request.url())) continue
      const timing = request.timing()
      if (timing.responseStart > 0) serverMs[name] = timing.responseStart - timing.requestStart
    }
  }
  page.on('requestfinished', onFinished)
  // The browser's timeOrigin is on the same system clock as Date.now() here.
  const startedAt = Date.now()
  const t0 = performance.now()
  await page.goto(url, { waitUntil: 'commit' })
  await page.getByText(text).waitFor({ timeout: 10_000 })
  const wallMs = performance.now() - t0
  const fcpAt = await page.evaluate(async () => {
    const paint = () => performance.getEntriesByName('first-contentful-paint')[0]
    for (let i = 0; i < 50 && !paint(); i++) await new Promise((r) => setTimeout(r, 10))
    const entry = paint()
    return entry ? performance.timeOrigin + entry.startTime : Number.NaN
  })
  page.off('requestfinished', onFinished)
  return { wallMs, fcpMs: fcpAt - startedAt, serverMs }
}

/** Untimed: signs alice in on News in this fresh profile; the tab stays on News. */
async function signInOnNews(page: Page, news: string): Promise<void> {
  await page.goto(news)
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await page.getByLabel('Username', { exact: true }).fill('alice')
  await page.getByLabel('Password', { exact: true }).fill('alice-password-1')
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await page.getByText('Signed in as alice').waitFor()
}

export async function runHopBench(options: { samples: number; warmup: number }) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-bench-'))
  const demo = await startDemo({ ports: DEMO_PORTS, dataDir, quiet: true })
  const skeletons = await startSkeletons(SKELETON_PORTS)
  // The peer's signed-in page is the Docs page itself: the two hops then differ only in how they sign in.
  const peer = await startPeer(PEER_PORTS, { distDir: path.resolve(import.meta.dirname, '../dist/sites') })
  const sk = skeletonUrls(SKELETON_PORTS)
  const pu = peerUrls(PEER_PORTS)
  const news = `${demo.urls.news}/`
  const shop = `${demo.urls.shop}/`
  const docs = `${demo.urls.docs}/`
  const startsWith = (prefix: string) => (url: string) => url.startsWith(prefix)

  const cases: Record<CaseName, (page: Page) => Promise<Sample>> = {
    hop: async (page) => {
      await signInOnNews(page, news)
      return timeUntilText(page, shop, 'Signed in as alice', {
        authorize: startsWith(`${demo.urls.passport}/authorize`),
      })
    },
    docs: async (page) => {
      await signInOnNews(page, news)
      return timeUntilText(page, docs, 'Signed in as alice', {
        first: (url) => url === docs,
        authorize: startsWith(`${demo.urls.passport}/authorize`),
        callback: startsWith(`${demo.urls.docs}/passport/callback`),
      })
    },
    peer: async (page) => {
      // Untimed: signs in at the provider through peer-news (its login form takes any password).
      await page.goto(`${pu.news}/?login=1`)
      await page.locator('input[name="login"]').fill('alice')
      await page.locator('input[name="password"]').fill('any-password')
      await page.locator('button[type="submit"]').click()
      await page.getByText('Signed in as alice').waitFor()
      return timeUntilText(page, `${pu.shop}/`, 'Signed in as alice', {
        first: (url) => url === `${pu.shop}/`,
        authorize: startsWith(`${pu.provider}/auth`),
        callback: startsWith(`${pu.shop}/cb`),
      })
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

  const rounds: Record<CaseName, Sample>[] = []
  try {
    for (let round = 0; round < options.warmup + options.samples; round++) {
      const thisRound: Partial<Record<CaseName, Sample>> = {}
      for (const name of shuffled(CASES)) {
        const context: BrowserContext = await launchProfile('blocked')
        try {
          const page = await context.newPage()
          thisRound[name] = await cases[name](page)
        } finally {
          await context.close()
        }
      }
      if (round < options.warmup) continue
      const r = thisRound as Record<CaseName, Sample>
      rounds.push(r)
      process.stdout.write(
        `round ${round - options.warmup + 1}/${options.samples}: ${CASES.map((c) => `${c} ${round1(r[c].wallMs)}`).join(' ')} ms\n`,
      )
    }
  } finally {
    peer.close()
    skeletons.close()
    await demo.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }

  const of = (name: CaseName, metric: 'wallMs' | 'fcpMs') => rounds.map((r) => r[name][metric])
  // Per-round ratios (same round, same machine state), then their median: robust to noise.
  const ratio = (a: CaseName, b: CaseName, metric: 'wallMs' | 'fcpMs') => ({
    ...summarize(rounds.map((r) => (r[a][metric] / r[b][metric]) * 100)),
    unit: '%',
  })
  const pairs: [CaseName, CaseName][] = [
    ['docs', 'peer'],
    ['docs', 'bare'],
    ['hop', 'peer'],
    ['hop', 'bare'],
    ['hop', 'floor'],
    ['peer', 'bare'],
    ['floor', 'bare'],
  ]
  const serverOf = (name: CaseName, hop: string) =>
    summarize(rounds.map((r) => r[name].serverMs[hop]).filter((x): x is number => x !== undefined))
  return {
    wall: Object.fromEntries(CASES.map((c) => [c, summarize(of(c, 'wallMs'))])),
    fcp: Object.fromEntries(CASES.map((c) => [c, summarize(of(c, 'fcpMs'))])),
    ratios: Object.fromEntries(
      pairs.map(([a, b]) => [`${a}/${b}`, { wall: ratio(a, b, 'wallMs'), fcp: ratio(a, b, 'fcpMs') }]),
    ),
    server: {
      docs: {
        first: serverOf('docs', 'first'),
        authorize: serverOf('docs', 'authorize'),
        callback: serverOf('docs', 'callback'),
      },
      peer: {
        first: serverOf('peer', 'first'),
        authorize: serverOf('peer', 'authorize'),
        callback: serverOf('peer', 'callback'),
      },
      hop: { authorize: serverOf('hop', 'authorize') },
    },
    raw: rounds,
  }
}

const round1 = (x: number) => round(x, 1)

export function hopMarkdown(result: Awaited<ReturnType<typeof runHopBench>>, meta: string): string {
  const { wall, fcp, ratios, server } = result
  const x = (v: { median: number; p90: number }) =>
    `${(v.median / 100).toFixed(2)}× (p90 ${(v.p90 / 100).toFixed(2)}×)`
  const label: Record<CaseName, string> = {
    hop: 'hop (script-only): goto Shop → "Signed in as alice" (signed in on News)',
    docs: 'docs (server-assisted): goto Docs → "Signed in as alice" (signed in on News)',
    peer: 'peer: node-oidc-provider + openid-client RP, goto peer-shop → "Signed in as alice" (the same Docs page)',
    floor: 'floor: skeleton of the script-only shape, no passport logic',
    bare: 'bare: a page navigates to an origin that 302s back',
  }
  const targets: Record<string, string> = {
    'docs/peer': '≤ 1.0×',
    'docs/bare': 'stretch ≤ 1.2×',
    'hop/floor': '≤ 1.15×',
  }
  const row = (c: CaseName) =>
    `| ${label[c]} | ${wall[c]?.n} | ${wall[c]?.median} | ${wall[c]?.p90} | ${fcp[c]?.median} | ${fcp[c]?.p90} |`
  const srv = (name: string, v: { n: number; median: number; p90: number }) =>
    `| ${name} | ${v.n} | ${v.median} | ${v.p90} |`
  return `# The cross-site hop

${meta}

Timer: just before \`page.goto\` until Playwright sees the text (wall), and until the final page's
first contentful paint (FCP, measured on the same system clock). Fresh profile per sample,
third-party cookies blocked, partitioning on; all five cases in the same shuffled rounds.

| case | n | wall median ms | wall p90 ms | FCP median ms | FCP p90 ms |
|---|---|---|---|---|---|
${CASES.map(row).join('\n')}

Ratios, median of per-round ratios:

| ratio | wall | FCP | target |
|---|---|---|---|
${Object.entries(ratios)
  .map(([k, v]) => `| ${k} | ${x(v.wall)} | ${x(v.fcp)} | ${targets[k] ?? ''} |`)
  .join('\n')}

Server time of each hop as the browser saw it (request sent → first response byte, ms; loopback):

| hop | n | median | p90 |
|---|---|---|---|
${srv('docs: the page (302 to the passport)', server.docs.first)}
${srv('docs: passport /authorize (303 with the code)', server.docs.authorize)}
${srv('docs: /passport/callback (code exchange at /token, 302)', server.docs.callback)}
${srv('peer: the page (302 to the provider)', server.peer.first)}
${srv('peer: provider /auth (303 with the code)', server.peer.authorize)}
${srv('peer: /cb (code exchange, 302)', server.peer.callback)}
${srv('hop: passport /authorize', server.hop.authorize)}
`
}
