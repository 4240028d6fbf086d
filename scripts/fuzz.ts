import { runFuzz } from '../passport-server/src/raw-fuzz.ts'
import { startTestServer } from '../passport-server/src/test-support.ts'

/**
 * `npm run fuzz [http://host:port]`: sends the raw-socket fuzz cases (passport-server/src/raw-fuzz.ts)
 * one by one and prints, after each, whether the passport still answered a normal request.
 * Without a URL it starts a passport of its own (in-memory store) and stops it at the end.
 * Exits 1 if the passport stopped answering.
 */
const given = process.argv[2]
const own = given ? null : await startTestServer()
const url = new URL(given ?? (own as NonNullable<typeof own>).issuer)
const target = { host: url.hostname, port: Number(url.port || 80), origin: url.origin }

console.log(`fuzzing ${url.origin}${own ? ' (a passport started for this run)' : ''}`)
const results = await runFuzz(target, (r) => {
  console.log(`sent: ${r.name}\n  reply: ${r.reply}\n  ${r.answered ? 'answered' : 'NOT ANSWERING'}`)
})
await own?.server.close()
const down = results.find((r) => !r.answered)
console.log(
  down
    ? `the passport stopped answering after: ${down.name}`
    : `${results.length} cases sent; the passport answered after every one`,
)
process.exit(down ? 1 : 0)
