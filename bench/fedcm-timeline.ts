import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { launchProfile } from '../demo-sites/e2e/browser-profile.ts'
import { startDemo } from '../demo-sites/start.ts'
import { SET_UP, watchedTab } from './fedcm.ts'

/**
 * Where the time of issue 17's benchmark goes: a timeline of one case of `bench/fedcm.ts`, step by
 * step, in the page and in the passport frame. `node bench/fedcm-timeline.ts` (after
 * `npm run build`): the `connected` case; `BENCH_TIMELINE_CASE=hop` the silent hop (its two
 * Shop documents, first leg and return, in one timeline). `BENCH_TIMELINE_SAMPLES` (5),
 * `BENCH_TIMELINE_PORT_BASE` (19380, four ports). Writes the medians to
 * bench/results/fedcm-timeline-<case>.md and every sample to the .json beside it.
 *
 * How: an init script in every document of the timed tab (page and frame) records, on the
 * machine's clock, its start, DOMContentLoaded and load, the iframe it creates and that iframe's
 * load event seen by the page, each postMessage it receives (by type), its fetches (sent and
 * answered) and its storage-access calls. Every record is kept in the document's sessionStorage
 * as well, so the hop's first Shop document is still there after the return. Times are ms from
 * just before the `goto`; "wall" is when Playwright saw the signed-in text.
 */
type CaseName = 'connected' | 'hop'
const caseName: CaseName = process.env.BENCH_TIMELINE_CASE === 'hop' ? 'hop' : 'connected'
const samples = Number(process.env.BENCH_TIMELINE_SAMPLES ?? 5)
const base = Number(process.env.BENCH_TIMELINE_PORT_BASE ?? 19380)

const RECORDER = `(() => {
  const rec = (what) => {
    const entry = [performance.timeOrigin + performance.now(), what]
    try {
      const all = JSON.parse(sessionStorage.__passportTimeline ?? '[]')
      all.push(entry)
      sessionStorage.__passportTimeline = JSON.stringify(all)
    } catch {}
  }
  const short = (url) => String(url).replace(/^https?:\\/\\/[^/]+/, '')
  rec('start ' + location.host + location.pathname)
  addEventListener('message', (e) => rec('message in: ' + (e.data && e.data.type)), true)
  document.addEventListener('DOMContentLoaded', () => rec('DOMContentLoaded'))
  addEventListener('load', () => rec('load'))
  const create = document.createElement.bind(document)
  document.createElement = (tag, ...rest) => {
    const el = create(tag, ...rest)
    if (String(tag).toLowerCase() === 'iframe') {
      rec('iframe created')
      el.addEventListener('load', () => rec('iframe load event'))
    }
    return el
  }
  const fetchImpl = window.fetch
  window.fetch = (...args) => {
    const url = short(args[0].url ?? args[0])
    rec('fetch sent ' + url)
    return fetchImpl(...args).then((res) => (rec('fetch answered ' + url), res))
  }
  if (window !== top && document.hasStorageAccess)
    document.hasStorageAccess().then((v) => rec('storage access at start: ' + v))
  if (document.requestStorageAccess) {
    const ask = document.requestStorageAccess.bind(document)
    document.requestStorageAccess = (...args) => {
      rec('requestStorageAccess asked')
      return ask(...args).then((v) => (rec('requestStorageAccess granted'), v), (e) => { rec('requestStorageAccess refused'); throw e })
    }
  }
})()`

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-bench-timeline-'))
const demo = await startDemo({
  ports: { passport: base, news: base + 1, shop: base + 2, docs: base + 3 },
  dataDir,
  quiet: true,
  scramIterations: 10_000,
  fedcm: caseName === 'connected',
})
const site = (name: 'news' | 'shop' | 'docs') => `${demo.urls[name]}/`
const runs: { wallMs: number; events: [number, string][] }[] = []
try {
  for (let i = 0; i < samples; i++) {
    const context = await launchProfile('blocked')
    try {
      await SET_UP[caseName](context, demo) // the same untimed set-up as bench/fedcm.ts
      const { page } = await watchedTab(context)
      await page.addInitScript(RECORDER)
      const t0 = Date.now()
      await page.goto(site('shop'), { waitUntil: 'commit' })
      await page.getByText('Signed in as alice').waitFor({ timeout: 15_000 })
      const wallMs = Date.now() - t0
      const events: [number, string][] = []
      for (const frame of page.frames()) {
        const recorded = (await frame
          .evaluate('JSON.parse(sessionStorage.__passportTimeline ?? "[]")')
          .catch(() => [])) as [number, string][]
        const who = frame === page.mainFrame() ? 'page' : 'frame'
        for (const [t, what] of recorded) events.push([Math.round((t - t0) * 10) / 10, `${who}: ${what}`])
      }
      events.sort((a, b) => a[0] - b[0])
      runs.push({ wallMs, events })
      process.stdout.write(`sample ${i + 1}/${samples}: wall ${wallMs} ms, ${events.length} events\n`)
    } finally {
      await context.close()
    }
  }
} finally {
  await demo.close()
  fs.rmSync(dataDir, { recursive: true, force: true })
}

// Medians by step; a step seen twice in a sample (the hop's two Shop documents) keeps its order.
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const byStep = new Map<string, number[]>()
for (const run of runs) {
  const seen = new Map<string, number>()
  for (const [t, what] of run.events) {
    const n = (seen.get(what) ?? 0) + 1
    seen.set(what, n)
    const key = n === 1 ? what : `${what} (#${n})`
    byStep.set(key, [...(byStep.get(key) ?? []), t])
  }
}
const rows = [...byStep.entries()]
  .map(([step, ts]) => ({ step, median: median(ts), n: ts.length }))
  .sort((a, b) => a.median - b.median)
const resultsDir = path.join(import.meta.dirname, 'results')
const file = path.join(resultsDir, `fedcm-timeline-${caseName}`)
const md = `# FedCM benchmark, where the time goes: the \`${caseName}\` case step by step

Run ${new Date().toISOString()} on ${os.hostname()}, ${os.cpus().length} cpus, loadavg ${os
  .loadavg()
  .map((x) => x.toFixed(2))
  .join(' ')}; ${samples} samples (\`bench/fedcm-timeline.ts\`).
ms from just before the \`goto\` in a new tab, median over the samples that had the step.

| ms | samples | step |
|---|---|---|
${rows.map((r) => `| ${r.median.toFixed(1)} | ${r.n} | ${r.step} |`).join('\n')}
| ${median(runs.map((r) => r.wallMs))} | ${runs.length} | wall: Playwright saw "Signed in as alice" |
`
fs.writeFileSync(`${file}.md`, md)
fs.writeFileSync(`${file}.json`, `${JSON.stringify({ caseName, samples: runs }, null, 2)}\n`)
process.stdout.write(`\n${md}\nwritten to ${path.relative(process.cwd(), file)}.md and .json\n`)
