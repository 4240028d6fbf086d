/**
 * Digging aid (not part of `npm run bench`): the refresh rotation alone, in process, on a SQLite
 * file or PostgreSQL (PASSPORT_DATABASE_URL), without HTTP or DPoP: 32 lanes chaining refreshes
 * for MICRO_MS (3000). Prints server CPU µs per refresh. `node --cpu-prof bench/mint-micro.ts`.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { resolveConfig } from '../passport-server/src/config.ts'
import { silentLogger } from '../passport-server/src/deps.ts'
import { createDeps } from '../passport-server/src/server.ts'
import { mintSiteToken } from '../passport-server/src/services/minting.ts'
import { refreshSiteGrant } from '../passport-server/src/services/refresh.ts'
import { startSession } from '../passport-server/src/services/sessions.ts'
import { addSite, addUser, testMasterKey } from '../passport-server/src/test-support.ts'

const ms = Number(process.env.MICRO_MS ?? 3000)
const lanes = Number(process.env.MICRO_LANES ?? 32)
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-mint-micro-'))
const databaseUrl = process.env.PASSPORT_DATABASE_URL ?? ''
const deps = await createDeps({
  config: resolveConfig({ issuer: 'http://passport.localhost:18400', scryptCost: 1024, databaseUrl }),
  storeFile: path.join(dir, 'passport.sqlite'),
  masterKey: testMasterKey(),
  log: silentLogger,
})
const alice = await addUser(deps, 'alice')
const news = await addSite(deps, { id: 'news', origins: ['http://news.localhost:18401'] })
const { session } = await startSession(deps, alice.id, 'micro')
const heads: string[] = []
for (let i = 0; i < lanes * 4; i++)
  heads.push((await mintSiteToken(deps, news.site, session, `jkt-${i}`.padEnd(43, 'x'))).refreshToken)
const jkts = heads.map((_, i) => `jkt-${i}`.padEnd(43, 'x'))

let done = 0
const deadline = performance.now() + ms
const cpu0 = process.cpuUsage()
await Promise.all(
  Array.from({ length: lanes }, async (_, lane) => {
    let turn = 0
    while (performance.now() < deadline) {
      const i = lane * 4 + (turn++ % 4)
      const body = JSON.parse(
        await refreshSiteGrant(deps, news.site, heads[i] as string, jkts[i] as string).catch((e) => {
          console.error(String(e?.cause?.message ?? e), e?.cause?.detail)
          throw e
        }),
      )
      heads[i] = body.refresh_token
      done++
    }
  }),
)
const cpu = process.cpuUsage(cpu0)
console.log(
  `${databaseUrl ? 'postgres' : 'sqlite'}: ${done} refreshes, ${((cpu.user + cpu.system) / done).toFixed(1)} µs CPU each, ${Math.round(done / (ms / 1000))}/s`,
)
await deps.store.close()
fs.rmSync(dir, { recursive: true, force: true })
