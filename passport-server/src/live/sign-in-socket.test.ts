import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import {
  bindingData,
  parseSignInServerMessage,
  SIGN_IN_GS2_HEADER,
  SIGN_IN_PATH,
  SIGN_IN_PROTOCOL,
  type SignInServerMessage,
} from '../../../passport-frame/src/protocol/sign-in.ts'
import {
  checkServerFinal,
  clientFinal,
  clientFirstBare,
  clientNonce,
} from '../../../passport-frame/src/sign-in/scram.ts'
import { wrapContentKey } from '../../../passport-frame/src/sign-in/sealed.ts'
import { hashScramPassword } from '../crypto/scram.ts'
import { registerSite } from '../services/registry.ts'
import { EVIL_ORIGIN, startTestServer } from '../test-support.ts'

/** The sign-in socket itself: upgrade checks (hostile twin: another Origin) and one real exchange. */
describe('sign-in socket', () => {
  let stop: (() => Promise<void>) | null = null
  afterEach(async () => {
    await stop?.()
    stop = null
  })

  async function start() {
    const t = await startTestServer()
    stop = () => t.server.close()
    await registerSite(t.deps, { id: 'news', origins: ['http://news.localhost:8081'] })
    await t.deps.store.users.create({
      id: 'u_alice',
      username: 'alice',
      name: 'Alice',
      passwordHash: await hashScramPassword('alice-password-1', 4096),
      createdAt: Date.now(),
    })
    return t
  }

  const upgradeStatus = (url: string, origin: string, protocol: string[] = [SIGN_IN_PROTOCOL]) =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(url, protocol, { origin })
      ws.on('open', () => {
        resolve(101)
        ws.close()
      })
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      ws.on('error', () => resolve(-1))
    })

  it('refuses another Origin (evil.localhost) with 403 and a missing sub-protocol with 400', async () => {
    const t = await start()
    const url = `${t.issuer.replace('http', 'ws')}${SIGN_IN_PATH}`
    expect(await upgradeStatus(url, EVIL_ORIGIN)).toBe(403)
    expect(await upgradeStatus(url, t.issuer, ['passport.v2'])).toBe(400)
    expect(await upgradeStatus(url, t.issuer)).toBe(101)
    expect(
      t.logs.some((l) => l.event === 'ws_upgrade_rejected' && l.fields.reason === 'origin_not_allowed'),
    ).toBe(true)
  })

  it('signs in over a real socket: server-first names 127.0.0.1, server-final proves the passport', async () => {
    const t = await start()
    const ws = new WebSocket(`${t.issuer.replace('http', 'ws')}${SIGN_IN_PATH}`, SIGN_IN_PROTOCOL, {
      origin: t.issuer,
    })
    const inbox: SignInServerMessage[] = []
    const waiters: ((m: SignInServerMessage) => void)[] = []
    ws.on('message', (data) => {
      const m = parseSignInServerMessage(String(data))
      if (!m) throw new Error('bad message')
      const w = waiters.shift()
      if (w) w(m)
      else inbox.push(m)
    })
    await new Promise((resolve) => ws.once('open', resolve))
    const next = () =>
      new Promise<SignInServerMessage>((resolve) =>
        inbox.length ? resolve(inbox.shift() as SignInServerMessage) : waiters.push(resolve),
      )
    const nonce = clientNonce()
    const bare = clientFirstBare('alice', nonce)
    ws.send(JSON.stringify({ type: 'client_first', site: 'news', message: `${SIGN_IN_GS2_HEADER}${bare}` }))
    const first = await next()
    expect(first).toMatchObject({ type: 'server_first', address: '127.0.0.1' })
    if (first.type !== 'server_first') return
    const final = await clientFinal({
      password: 'alice-password-1',
      clientFirstBare: bare,
      clientNonce: nonce,
      serverFirst: first.message,
      channelBinding: `${SIGN_IN_GS2_HEADER}${bindingData(first.address, 'news')}`,
    })
    const jwk = t.deps.keys.encryption.jwks[0]
    if (!final || !jwk) throw new Error('setup')
    const { wrapped } = await wrapContentKey(jwk, t.issuer, 'sign_in', t.deps.clock.now())
    ws.send(JSON.stringify({ type: 'client_final', message: final.message, seal: wrapped }))
    const last = await next()
    expect(last.type).toBe('server_final')
    if (last.type === 'server_final') expect(checkServerFinal(last.message, final.serverSignature)).toBe(true)
    ws.close()
  })
})
