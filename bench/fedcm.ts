import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { BrowserContext, Page } from '@playwright/test'
import { launchProfile } from '../demo-sites/e2e/browser-profile.ts'
import { startDemo } from '../demo-sites/start.ts'
import { type Floor, startFloor } from './fedcm-floor.ts'
import { round, shuffled, summarize } from './stats.ts'

/**
 * Issue 17's benchmark: time to signed-in on a second site, in a fresh tab, for a user signed in
 * at the passport. Headless Debian Chromium, third-party cookies blocked, partitioning on, a fresh
 * profile (device) per sample, every case in the same shuffled rounds (docs/fedcm.md):
 *
 * - `connected`: Shop is FedCM-connected in this browser (the user chose the passport in
 *   Chromium's dialog there once, then signed out everywhere) and the user has just signed in
 *   again on News. Shop's frame has storage access: it takes the token from the passport session
 *   with no navigation and no dialog.
 * - `hop`: the same user, Shop never visited, no FedCM: the top-level silent hop (Shop → the
 *   passport's /authorize → Shop), as in `npm run bench -- hop`.
 * - `chooser`: Shop never visited, FedCM on: Chromium's account chooser, answered over CDP the
 *   moment it shows (a person adds their own reaction time), no navigation.
 * - `floor-connected` and `floor-hop`: the physical floor of the first two, the same shapes with
 *   nothing of the passport in them (bare pages, a bare cross-site frame, one signed token, one API
 *   call; bench/fedcm-floor.ts), with the same history in the profile: what the browser alone costs,
 *   so that the goal can be read against what any implementation of the two shapes could reach.
 *
 * Timers: just before `page.goto` in the new tab until the page writes "Signed in as alice"
 * (`page`), and until Playwright sees it (`wall`). Each sample also counts the tab's top-level
 * navigations (the `goto` itself is one; the hop's clean-up of the URL fragment is one too) and
 * the FedCM dialogs the browser showed there.
 */
type CaseName =
  | 'connected'
  | 'hop'
  | 'chooser'
  | 'floor-connected'
  | 'floor-hop'
  | 'connected-before'
  | 'hop-before'
/** The floor cases: the same two shapes with nothing of the passport in them (bench/fedcm-floor.ts). */
const MAIN_CASES: CaseName[] = ['connected', 'hop', 'chooser', 'floor-connected', 'floor-hop']
/** With `beforeDir`: the connected and hop cases on another checkout's code, in the same rounds. */
const BEFORE_CASES: CaseName[] = ['connected-before', 'hop-before']

interface Sample {
  wallMs: number
  /** From just before the \`goto\` until the page itself put "Signed in as alice" in its DOM. */
  pageMs: number
  navigations: number
  dialogs: string[]
}

export interface FedcmBenchOptions {
  rounds: number
  warmup: number
  /**
   * Ports from here: a plain demo and a FedCM one on the first ten, `beforeDir`'s on the next ten,
   * the floor's two servers on `portBase + 20` and `+ 21`.
   */
  portBase: number
  /**
   * Another checkout of the repository, built (\`npm run build\` there), whose demo runs beside
   * this one: its connected and hop cases join the same shuffled rounds, so "before" and "after"
   * share the machine's noise (as bench/before.ts does for the token benchmarks).
   */
  beforeDir?: string
}

export function fedcmOptionsFromEnv(): FedcmBenchOptions {
  return {
    rounds: Number(process.env.BENCH_FEDCM_ROUNDS ?? 15),
    warmup: Number(process.env.BENCH_FEDCM_WARMUP ?? 1),
    portBase: Number(process.env.BENCH_FEDCM_PORT_BASE ?? 19180),
    ...(process.env.BENCH_FEDCM_BEFORE_DIR
      ? { beforeDir: path.resolve(process.env.BENCH_FEDCM_BEFORE_DIR) }
      : {}),
  }
}

/** A tab whose FedCM dialogs are answered with the first account; its navigations counted. */
export async function watchedTab(context: BrowserContext) {
  const page = await context.newPage()
  const cdp = await context.newCDPSession(page)
  const dialogs: string[] = []
  await cdp.send('FedCm.enable', { disableRejectionDelay: true })
  cdp.on('FedCm.dialogShown', (event) => {
    dialogs.push(event.dialogType)
    if (event.dialogType === 'AutoReauthn') return // closing it would cancel the sign-in
    if (event.dialogType === 'AccountChooser')
      cdp.send('FedCm.selectAccount', { dialogId: event.dialogId, accountIndex: 0 }).catch(() => {})
    else cdp.send('FedCm.dismissDialog', { dialogId: event.dialogId }).catch(() => {})
  })
  let navigations = 0
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations++
  })
  return { page, dialogs, navigations: () => navigations }
}

/**
 * In every document of the timed tab's top frame: the moment (system clock, ms) the page's own
 * code puts the signed-in text in its DOM. A MutationObserver's callback runs right after the
 * change, before any painting; Playwright's \`waitFor\` notices the same text later, by polling
 * from another process (on a quiet machine ~30–40 ms later in the connected case, ~70–90 ms in the
 * hop, whose navigations it follows too).
 */
const SIGNED_IN_PROBE = `(() => {
  if (window !== window.top) return
  const seen = () => (document.body?.textContent ?? '').includes('Signed in as alice')
  new MutationObserver((_, observer) => {
    if (!seen()) return
    window.__passportSignedInAt = Date.now()
    observer.disconnect()
  }).observe(document, { subtree: true, childList: true, characterData: true })
})()`

/** Timed: a new tab opens `url` until it shows the signed-in text. */
async function timeNewTab(context: BrowserContext, url: string): Promise<Sample> {
  const tab = await watchedTab(context)
  await tab.page.addInitScript(SIGNED_IN_PROBE)
  // Both clocks are the system clock of this machine: the page's mark compares with this one.
  const epoch0 = Date.now()
  const t0 = performance.now()
  await tab.page.goto(url, { waitUntil: 'commit' })
  await tab.page.getByText('Signed in as alice').waitFor({ timeout: 15_000 })
  const wallMs = performance.now() - t0
  const at = await tab.page.evaluate(() => (window as { __passportSignedInAt?: number }).__passportSignedInAt)
  if (typeof at !== 'number')
    throw new Error('the page showed the signed-in text but its probe saw no change')
  return { wallMs, pageMs: at - epoch0, navigations: tab.navigations(), dialogs: tab.dialogs }
}

/** Untimed: a password sign-in at the passport from `site`'s Sign-in button. */
export async function passwordSignIn(page: Page, site: string): Promise<void> {
  await page.goto(site)
  await page.getByText('You are not signed in.').waitFor({ timeout: 15_000 })
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await page.getByLabel('Username', { exact: true }).fill('alice')
  await page.getByLabel('Password', { exact: true }).fill('alice-password-1')
  await page.getByRole('button', { name: 'Sign in', exact: true }).click()
  await page.getByText('Signed in as alice').waitFor({ timeout: 15_000 })
}

type Demo = Awaited<ReturnType<typeof startDemo>>
const siteOf = (demo: Demo, name: 'news' | 'shop' | 'docs') => `${demo.urls[name]}/`

/**
 * The untimed part of each case, on `demo` (the FedCM demo for `connected` and `chooser`, the
 * plain one for `hop`); the timed part then opens Shop in a new tab.
 */
export const SET_UP: Record<
  'connected' | 'hop' | 'chooser',
  (context: BrowserContext, demo: Demo) => Promise<void>
> = {
  connected: async (context, demo) => {
    // Shop connected: the passport chosen in Chromium's dialog there once. (This tab's FedCM
    // dialogs are answered too: after the sign-out, News's Sign-in meets Chromium's "sign in to
    // the passport" dialog, which it closes, and the SDK goes on to the passport's page.)
    const first = (await watchedTab(context)).page
    await passwordSignIn(first, siteOf(demo, 'docs'))
    const shop = await watchedTab(context)
    await shop.page.goto(siteOf(demo, 'shop'))
    await shop.page.getByText('Signed in as alice').waitFor({ timeout: 15_000 })
    // Signed out everywhere, then in again on News (its Sign-in: no passport session, so the
    // passport's page).
    await shop.page.getByRole('button', { name: 'Sign out' }).click()
    await shop.page.getByText('You are not signed in.').waitFor({ timeout: 15_000 })
    await shop.page.close()
    await passwordSignIn(first, siteOf(demo, 'news'))
  },
  hop: async (context, demo) => passwordSignIn(await context.newPage(), siteOf(demo, 'news')),
  chooser: async (context, demo) => passwordSignIn(await context.newPage(), siteOf(demo, 'docs')),
}

/**
 * A floor case (bench/fedcm-floor.ts), with the history of its real twin: untimed, `connected`
 * has shown Shop's floor page once in a tab since closed (the real case chose the passport there),
 * and both then leave a News tab on the floor page open (the real cases leave one with the
 * passport's frame); timed, Shop's `path` in a new tab.
 */
const timedFloor = (floor: Floor, path: '/connected' | '/hop') => async (context: BrowserContext) => {
  const show = async (host: 'news' | 'shop') => {
    const tab = await context.newPage()
    await tab.goto(floor.url(host, '/connected'))
    await tab.getByText('Signed in as alice').waitFor({ timeout: 15_000 })
    return tab
  }
  if (path === '/connected') await (await show('shop')).close()
  await show('news')
  return timeNewTab(context, floor.url('shop', path))
}

/** A plain demo and a FedCM one on ten ports from `base`, with `start` (this checkout's or another's). */
async function startDemos(start: typeof startDemo, base: number, dataDirs: string[]) {
  const dirs = [0, 1].map(() => fs.mkdtempSync(path.join(os.tmpdir(), 'passport-bench-fedcm-')))
  dataDirs.push(...dirs)
  // The demo users' SCRAM cost only slows the untimed sign-ins; nothing timed derives a key.
  const plain = await start({
    ports: { passport: base, news: base + 1, shop: base + 2, docs: base + 3 },
    dataDir: dirs[0] as string,
    quiet: true,
    scramIterations: 10_000,
  })
  const fedcm = await start({
    ports: { passport: base + 5, news: base + 6, shop: base + 7, docs: base + 8 },
    dataDir: dirs[1] as string,
    quiet: true,
    scramIterations: 10_000,
    fedcm: true,
  })
  return { plain, fedcm }
}

export async function runFedcmBench(options: FedcmBenchOptions) {
  const dataDirs: string[] = []
  const demos: Demo[] = []
  const { plain, fedcm } = await startDemos(startDemo, options.portBase, dataDirs)
  demos.push(plain, fedcm)
  let before: { plain: Demo; fedcm: Demo } | null = null
  if (options.beforeDir) {
    const other = (await import(path.join(options.beforeDir, 'demo-sites/start.ts'))) as {
      startDemo: typeof startDemo
    }
    before = await startDemos(other.startDemo, options.portBase + 10, dataDirs)
    demos.push(before.plain, before.fedcm)
  }
  const floor = await startFloor(options.portBase + 20)
  const CASES = before ? [...MAIN_CASES, ...BEFORE_CASES] : MAIN_CASES
  /** A case: its set-up on `demo`, then Shop timed in a new tab. */
  const timed = (kind: keyof typeof SET_UP, demo: Demo) => async (context: BrowserContext) => {
    await SET_UP[kind](context, demo)
    return timeNewTab(context, siteOf(demo, 'shop'))
  }
  const cases: Partial<Record<CaseName, (context: BrowserContext) => Promise<Sample>>> = {
    connected: timed('connected', fedcm),
    hop: timed('hop', plain),
    chooser: timed('chooser', fedcm),
    'floor-connected': timedFloor(floor, '/connected'),
    'floor-hop': timedFloor(floor, '/hop'),
    ...(before
      ? { 'connected-before': timed('connected', before.fedcm), 'hop-before': timed('hop', before.plain) }
      : {}),
  }

  const load = () => os.loadavg().map((x) => x.toFixed(2))
  const uptime = () => {
    try {
      return execFileSync('uptime', { encoding: 'utf8' }).trim()
    } catch {
      return `loadavg ${load().join(' ')}`
    }
  }
  const uptimeBefore = uptime()
  const rounds: Record<CaseName, Sample>[] = []
  const startedAt = Date.now()
  try {
    for (let r = 0; r < options.warmup + options.rounds; r++) {
      const thisRound: Partial<Record<CaseName, Sample>> = {}
      for (const name of shuffled(CASES)) {
        const context = await launchProfile('blocked')
        try {
          thisRound[name] = await (cases[name] as (context: BrowserContext) => Promise<Sample>)(context)
        } finally {
          await context.close()
        }
      }
      if (r < options.warmup) continue
      const done = thisRound as Record<CaseName, Sample>
      rounds.push(done)
      process.stdout.write(
        `round ${r - options.warmup + 1}/${options.rounds}: ${CASES.map((c) => `${c} ${round(done[c].wallMs, 1)} ms, page ${done[c].pageMs} ms (${done[c].navigations} nav, ${done[c].dialogs.length} dialog)`).join(', ')}\n`,
      )
    }
  } finally {
    for (const demo of demos) await demo.close()
    await floor.close()
    for (const dir of dataDirs) fs.rmSync(dir, { recursive: true, force: true })
  }
  const uptimeAfter = uptime()

  const ratioOf = (measure: 'wallMs' | 'pageMs') => (a: CaseName, b: CaseName) => ({
    ...summarize(rounds.map((r) => (r[a][measure] / r[b][measure]) * 100)),
    unit: '%',
  })
  const ratio = ratioOf('wallMs')
  const pageRatio = ratioOf('pageMs')
  return {
    uptime: { before: uptimeBefore, after: uptimeAfter },
    durationS: round((Date.now() - startedAt) / 1000, 0),
    wall: Object.fromEntries(CASES.map((c) => [c, summarize(rounds.map((r) => r[c].wallMs))])),
    page: Object.fromEntries(CASES.map((c) => [c, summarize(rounds.map((r) => r[c].pageMs))])),
    navigations: Object.fromEntries(CASES.map((c) => [c, summarize(rounds.map((r) => r[c].navigations))])),
    dialogs: Object.fromEntries(
      CASES.map((c) => [c, [...new Set(rounds.flatMap((r) => r[c].dialogs))].join(', ') || 'none']),
    ),
    dialogCounts: Object.fromEntries(
      CASES.map((c) => [c, summarize(rounds.map((r) => r[c].dialogs.length))]),
    ),
    ratios: Object.fromEntries(
      (
        [
          ['connected/hop', 'connected', 'hop'],
          ['chooser/hop', 'chooser', 'hop'],
          ['floor connected/hop', 'floor-connected', 'floor-hop'],
          ['connected/floor', 'connected', 'floor-connected'],
          ['hop/floor', 'hop', 'floor-hop'],
          ...(before
            ? ([
                ['connected/hop before', 'connected-before', 'hop-before'],
                ['connected after/before', 'connected', 'connected-before'],
                ['hop after/before', 'hop', 'hop-before'],
              ] as const)
            : []),
        ] as const
      ).map(([name, a, b]) => [name, { wall: ratio(a, b), page: pageRatio(a, b) }]),
    ),
    cases: CASES,
    beforeDir: options.beforeDir ?? null,
    raw: rounds,
  }
}

export function fedcmMarkdown(result: Awaited<ReturnType<typeof runFedcmBench>>, meta: string): string {
  const { wall, page, navigations, dialogs, dialogCounts, ratios, cases } = result
  const x = (v: { median: number; p90: number }) =>
    `${(v.median / 100).toFixed(2)}× (p90 ${(v.p90 / 100).toFixed(2)}×)`
  const label: Record<CaseName, string> = {
    connected: 'connected: Shop FedCM-connected before, user just signed in again on News',
    hop: 'hop: Shop never visited, no FedCM (silent top-level hop)',
    chooser: "chooser: Shop never visited, FedCM (Chromium's chooser, answered at once over CDP)",
    'floor-connected':
      'floor connected: a bare page, a bare cross-site frame, one signed token, one API call',
    'floor-hop': 'floor hop: a bare page, a 302 at the passport origin, then the floor connected page',
    'connected-before': `connected, ${result.beforeDir}'s code`,
    'hop-before': `hop, ${result.beforeDir}'s code`,
  }
  const row = (c: CaseName) =>
    `| ${label[c]} | ${wall[c]?.n} | ${page[c]?.median} | ${page[c]?.p90} | ${wall[c]?.median} | ${wall[c]?.p90} | ${navigations[c]?.median} | ${dialogCounts[c]?.median} (${dialogs[c]}) |`
  return `# FedCM: time to signed-in on a second site, in a fresh tab

${meta}

\`uptime\` before: ${result.uptime.before}
\`uptime\` after: ${result.uptime.after} (${result.durationS} s)

Timers, both from just before \`page.goto\` in a new tab: **page**, until the page's own code put
"Signed in as alice" in its DOM (a MutationObserver in the tab's top frame, on the machine's
clock: the moment the user is signed in there); **wall**, until Playwright sees that text (it
polls from another process: 30–40 ms later in the connected case, 70–90 ms in the hop, whose
navigations it follows too). Headless Debian Chromium,
third-party cookies blocked, partitioning on, a fresh profile per sample; the cases in the same
shuffled rounds (bench/fedcm.ts). Navigations count the tab's top-level navigations, the
\`goto\` included.

| case | n | page median ms | page p90 ms | wall median ms | wall p90 ms | navigations (median) | FedCM dialogs (median; kinds) |
|---|---|---|---|---|---|---|---|
${cases.map(row).join('\n')}

Ratios, median of per-round ratios (the machine is shared: compare these, not the raw times):

| ratio | page | wall | goal |
|---|---|---|---|
${Object.entries(ratios)
  .map(
    ([name, v]) => `| ${name} | ${x(v.page)} | ${x(v.wall)} | ${name === 'connected/hop' ? '≤ 0.5×' : ''} |`,
  )
  .join('\n')}

The floor rows are the two shapes with nothing of the passport in them (bench/fedcm-floor.ts):
a bare page whose inline script adds a bare cross-site frame, which fetches one signed token as
it starts and posts it to the page (asked by no message), and one call to the site's backend; the floor hop first goes through a bare 302 at
the passport origin. Their ratio is the goal's ratio with the browser's costs alone;
\`connected/floor\` and \`hop/floor\` are what the passport adds to each.

What it does not show: a site the user never chose the passport on in this browser cannot be
signed in with no dialog and no navigation on Chromium (its rule for silent sign-in is the
browser's own record of a choice on that very site; docs/fedcm.md): that first visit is the
\`chooser\` row (one click for a person) or the \`hop\` row (no click, a navigation).
`
}
