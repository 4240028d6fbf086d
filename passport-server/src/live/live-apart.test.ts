import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import WebSocket from 'ws'
import { LIVE_PROTOCOL } from '../../../passport-frame/src/protocol/live.ts'
import { systemClock } from '../clock.ts'
import { resolveConfig } from '../config.ts'
import { createInProcessBus } from '../events/bus.ts'
import { listen, listenLiveOnly, type PassportServer } from '../server.ts'
import { openSqliteStore } from '../store/sqlite.ts'
import { defaultFrameKey } from '../test-dpop.ts'
import { frameApi, signIn } from '../test-flows.ts'
import { addSite, addUser, freePort, type LogLine } from '../test-support.ts'
import { loadOrCreateKeys } from '../tokens/keys.ts'
import { createInProcessPresence } from './presence.ts'

/**
 * The live channel run apart (`PASSPORT_ROLE=live`, seed 003): another process on the same
 * store, authenticating sockets by asking the passport, hearing endings from the event log.
 * Two servers on one SQLite file, each with its own connection and its own event bus, so the
 * only way news reaches the apart one is the way it would across processes.
 */
const SECRET = 's'.repeat(40)
let passport: PassportServer
let apart: Awaited<ReturnType<typeof listenLiveOnly>>
let issuer: string
let logs: LogLine[]

async function depsOn(file: string, issuerUrl: string) {
  const store = openSqliteStore(file)
  logs = []
  const log = (event: string, fields: Record<string, unknown> = {}) => void logs.push({ event, fields })
  return {
    config: resolveConfig({ issuer: issuerUrl, scryptCost: 1024, liveValidationSecret: SECRET }),
    store,
    keys: await loadOrCreateKeys(store.secrets),
    clock: systemClock,
    events: createInProcessBus(log),
    presence: createInProcessPresence(),
    log,
  }
}

beforeAll(async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'passport-live-apart-')), 'passport.sqlite')
  const port = await freePort()
  issuer = `http://127.0.0.1:${port}`
  passport = await listen(await depsOn(file, issuer), port, '127.0.0.1')
  apart = await listenLiveOnly(await depsOn(file, issuer), 0, '127.0.0.1', { url: issuer, secret: SECRET })
})
afterAll(async () => {
  await apart.close()
  await passport.close()
})

test('a socket on the apart live server is authenticated by the passport and hears a sign-out made there', async () => {
  const alice = await addUser(passport.deps, 'alice')
  const news = await addSite(passport.deps, { id: 'news' })
  const { token } = await signIn(passport.app, news, alice, new Map(), issuer)
  const ws = new WebSocket(`${apart.internalUrl.replace(/^http/, 'ws')}/live?site=news`, [LIVE_PROTOCOL], {
    headers: { Origin: issuer },
  })
  const messages: Record<string, unknown>[] = []
  const closed = new Promise<number>((resolve) => ws.on('close', resolve))
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as Record<string, unknown>
    if (msg.type !== 'challenge') return void messages.push(msg)
    const proof = defaultFrameKey.proof({
      method: 'GET',
      url: `${issuer.replace(/^http/, 'ws')}/live`,
      accessToken: token,
      nonce: String(msg.nonce),
    })
    ws.send(JSON.stringify({ type: 'auth', token, proof }))
  })
  await expect.poll(() => messages.length).toBe(1)
  expect(messages[0]).toMatchObject({ type: 'welcome' })

  await frameApi(passport.app, 'logout', { authkey: news.authkey, token }, { Origin: issuer })
  await expect.poll(() => messages.length, { timeout: 2000 }).toBe(2)
  expect(messages[1]).toMatchObject({ type: 'session_event', reason: 'signed_out' })
  expect(await closed).toBe(4000)
})

test('the apart server answers anything but a WebSocket upgrade with 404', async () => {
  const res = await fetch(`${apart.internalUrl}/api/frame/check`, { method: 'POST' })
  expect(res.status).toBe(404)
})
