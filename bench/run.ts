import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { hopMarkdown, runHopBench } from './hop.ts'
import { runTokensBench, tokensMarkdown, tokensOptionsFromEnv } from './tokens.ts'

/**
 * `npm run bench [-- hop|tokens]`: runs the benchmarks and writes their numbers to bench/results/.
 * Not part of `npm test`. Sample counts: BENCH_SAMPLES (default 25), BENCH_WARMUP (default 2);
 * tokens: BENCH_TOKENS_ROUNDS (5), BENCH_TOKENS_HTTP_MS (3000), BENCH_TOKENS_CRYPTO_MS (1000),
 * BENCH_TOKENS_CONCURRENCY (32), BENCH_TOKENS_FRAME_SAMPLES (200).
 */
const resultsDir = path.join(import.meta.dirname, 'results')
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
  fs.writeFileSync(path.join(resultsDir, 'hop.json'), `${JSON.stringify({ meta, ...result }, null, 2)}\n`)
  const md = hopMarkdown(result, meta)
  fs.writeFileSync(path.join(resultsDir, 'hop.md'), md)
  process.stdout.write(`\n${md}\nwritten to bench/results/hop.md and hop.json\n`)
}

if (wants('tokens')) {
  const result = await runTokensBench(tokensOptionsFromEnv())
  fs.writeFileSync(path.join(resultsDir, 'tokens.json'), `${JSON.stringify({ meta, ...result }, null, 2)}\n`)
  const md = tokensMarkdown(result, meta)
  fs.writeFileSync(path.join(resultsDir, 'tokens.md'), md)
  process.stdout.write(`\n${md}\nwritten to bench/results/tokens.md and tokens.json\n`)
}
