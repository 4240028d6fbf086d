import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fedcmMarkdown, fedcmOptionsFromEnv, runFedcmBench } from './fedcm.ts'
import { hopMarkdown, runHopBench } from './hop.ts'
import { liveMarkdown, liveOptionsFromEnv, runLiveBench } from './live.ts'
import { runScaleBench, scaleMarkdown, scaleOptionsFromEnv } from './scale.ts'
import { runSigninBench, signinMarkdown, signinOptionsFromEnv } from './signin.ts'
import { runTokensBench, tokensMarkdown, tokensOptionsFromEnv } from './tokens.ts'

/**
 * `npm run bench [-- hop|tokens|live|signin|fedcm]`: runs the benchmarks and writes their numbers to bench/results/.
 * Not part of `npm test`. Sample counts: BENCH_SAMPLES (default 25), BENCH_WARMUP (default 2);
 * tokens: BENCH_TOKENS_ROUNDS (5), BENCH_TOKENS_HTTP_MS (3000), BENCH_TOKENS_CRYPTO_MS (1000),
 * BENCH_TOKENS_CONCURRENCY (32), BENCH_TOKENS_FRAME_SAMPLES (200); live: BENCH_LIVE_SIZES (1000,10000),
 * BENCH_LIVE_SPREAD (200), BENCH_LIVE_SPREAD_MS (4000), BENCH_LIVE_BULK_SHARE (0.1),
 * BENCH_LIVE_POLL_FRAMES (1000), BENCH_LIVE_POLL_MS (5000), BENCH_LIVE_STEPS (10000,20000,30000,50000),
 * BENCH_LIVE_HOLD_MS (35000), BENCH_LIVE_BUDGET_S (300), BENCH_LIVE_PARTS (auth,latency,capacity).
 * signin: BENCH_SIGNIN_ROUNDS (15), BENCH_SIGNIN_WARMUP (1), BENCH_SIGNIN_ITERATIONS (600000),
 * BENCH_SIGNIN_SCRYPT_COST (32768).
 * fedcm: BENCH_FEDCM_ROUNDS (15), BENCH_FEDCM_WARMUP (1), BENCH_FEDCM_PORT_BASE (19180; up to 22 ports from there).
 * scale (only when named: `npm run bench -- scale`): see bench/scale.ts and bench/README.md (BENCH_SCALE_*).
 * BENCH_RESULTS_TAG=x writes bench/results/<name>-x.md/.json instead: a partial run (a subset of
 * cases or parts) then leaves the full results where they are.
 */
const resultsDir = path.join(import.meta.dirname, 'results')
const tag = process.env.BENCH_RESULTS_TAG ? `-${process.env.BENCH_RESULTS_TAG}` : ''
const selected = new Set(process.argv.slice(2))
const wants = (name: string) => selected.size === 0 || selected.has(name)

const samples = Number(process.env.BENCH_SAMPLES ?? 25)
const warmup = Number(process.env.BENCH_WARMUP ?? 2)
const meta = `Run ${new Date().toISOString()} on ${os.hostname()}, node ${process.version}, ${os.cpus().length} cpus, loadavg ${os
  .loadavg()
  .map((x) => x.toFixed(2))
  .join(' ')}.`

fs.mkdirSync(resultsDir, { recursive: true })

if (wants('hop')) {
  const result = await runHopBench({ samples, warmup })
  fs.writeFileSync(
    path.join(resultsDir, `hop${tag}.json`),
    `${JSON.stringify({ meta, ...result }, null, 2)}\n`,
  )
  const md = hopMarkdown(result, meta)
  fs.writeFileSync(path.join(resultsDir, `hop${tag}.md`), md)
  process.stdout.write(`\n${md}\nwritten to bench/results/hop${tag}.md and hop${tag}.json\n`)
}

if (wants('tokens')) {
  const result = await runTokensBench(tokensOptionsFromEnv())
  fs.writeFileSync(
    path.join(resultsDir, `tokens${tag}.json`),
    `${JSON.stringify({ meta, ...result }, null, 2)}\n`,
  )
  const md = tokensMarkdown(result, meta)
  fs.writeFileSync(path.join(resultsDir, `tokens${tag}.md`), md)
  process.stdout.write(`\n${md}\nwritten to bench/results/tokens${tag}.md and tokens${tag}.json\n`)
}

if (wants('live')) {
  const result = await runLiveBench(liveOptionsFromEnv())
  fs.writeFileSync(
    path.join(resultsDir, `live${tag}.json`),
    `${JSON.stringify({ meta, ...result }, null, 2)}\n`,
  )
  const md = liveMarkdown(result, meta)
  fs.writeFileSync(path.join(resultsDir, `live${tag}.md`), md)
  process.stdout.write(`\n${md}\nwritten to bench/results/live${tag}.md and live${tag}.json\n`)
}

if (wants('signin')) {
  const result = await runSigninBench(signinOptionsFromEnv())
  fs.writeFileSync(
    path.join(resultsDir, `signin${tag}.json`),
    `${JSON.stringify({ meta, ...result }, null, 2)}\n`,
  )
  const md = signinMarkdown(result, meta)
  fs.writeFileSync(path.join(resultsDir, `signin${tag}.md`), md)
  process.stdout.write(`\n${md}\nwritten to bench/results/signin${tag}.md and signin${tag}.json\n`)
}

if (wants('fedcm')) {
  const result = await runFedcmBench(fedcmOptionsFromEnv())
  fs.writeFileSync(
    path.join(resultsDir, `fedcm${tag}.json`),
    `${JSON.stringify({ meta, ...result }, null, 2)}\n`,
  )
  const md = fedcmMarkdown(result, meta)
  fs.writeFileSync(path.join(resultsDir, `fedcm${tag}.md`), md)
  process.stdout.write(`\n${md}\nwritten to bench/results/fedcm${tag}.md and fedcm${tag}.json\n`)
}

// Only when named: it needs PostgreSQL and Redis and takes minutes.
if (selected.has('scale')) {
  const result = await runScaleBench(scaleOptionsFromEnv())
  fs.writeFileSync(
    path.join(resultsDir, `scale${tag}.json`),
    `${JSON.stringify({ meta, ...result }, null, 2)}\n`,
  )
  const md = scaleMarkdown(result, meta)
  fs.writeFileSync(path.join(resultsDir, `scale${tag}.md`), md)
  process.stdout.write(`\n${md}\nwritten to bench/results/scale${tag}.md and scale${tag}.json\n`)
}
