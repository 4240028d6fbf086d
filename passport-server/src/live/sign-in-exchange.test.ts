import { beforeEach, describe, expect, it } from 'vitest'
import {
  bindingData,
  SIGN_IN_GS2_HEADER,
  type SignInServerMessage,
} from '../../../passport-frame/src/protocol/sign-in.ts'
import { clientFinal, clientFirstBare, clientNonce } from '../../../passport-frame/src/sign-in/scram.ts'
import { openSealed, type SealedPurpose, wrapContentKey } from '../../../passport-frame/src/sign-in/sealed.ts'
import { createApp } from '../app.ts'
import { resolveConfig } from '../config.ts'
import { hashScramPassword, parseScramCredential } from '../crypto/scram.ts'
import { ACCOUNT_FREE_FAILURES, ADDRESS_MAX_FAILURES } from '../services/login-throttle.ts'
import { issueSignInTicket, redeemSignInTicket } from '../services/sign-in-tickets.ts'
import {
  authorizeRequest,
  authorizeUrl,
  type CookieJar,
  cookieHeader,
  formPost,
  fragmentOf,
  loginForm,
  openSignInPage,
} from '../test-flows.ts'
import { addSite, addUser, createTestDeps, NEWS_ORIGIN, TEST_ISSUER, type TestDeps } from '../test-support.ts'
import { createSignInExchange } from './sign-in-exchange.ts'

/**
 * Issue 16 item 1: SCRAM-SHA-256 over the sign-in socket, driven message by message (the
 * socket itself is in sign-in-socket.test.ts). `app.request()` has no TCP peer, so the address
 * the form routes see is "unknown": the exchanges here use it too, unless a test says otherwise.
 */
const ADDRESS = 'unknown'

type Exchange = ReturnType<typeof createSignInExchange>

async function send(exchange: Exchange, message: object): Promise<SignInServerMessage> {
  return (await exchange.handle(JSON.stringify(message))).reply
}

/** The page's side of one attempt, with knobs for every way an attacker may bend it. */
async function attempt(
  deps: TestDeps,
  exchange: Exchange,
  input: {
    username: string
    password: string
    site?: string
    bindAddress?: string
    bindSite?: string
    purpose?: SealedPurpose
    seal?: string
  },
) {
  const nonce = clientNonce()
  const bare = clientFirstBare(input.username, nonce)
  const first = await send(exchange, {
    type: 'client_first',
    site: input.site ?? 'news',
    message: `${SIGN_IN_GS2_HEADER}${bare}`,
  })
  if (first.type !== 'server_first') return { first, final: null, key: null, clientFinalMessage: null }
  const computed = await clientFinal({
    password: input.password,
    clientFirstBare: bare,
    clientNonce: nonce,
    serverFirst: first.message,
    channelBinding: `${SIGN_IN_GS2_HEADER}${bindingData(input.bindAddress ?? first.address, input.bindSite ?? input.site ?? 'news')}`,
  })
  if (!computed) throw new Error('server-first refused by the page')
  const jwk = deps.keys.encryption.jwks[0]
  if (!jwk) throw new Error('no enc key')
  const { key, wrapped } = await wrapContentKey(
    jwk,
    TEST_ISSUER,
    input.purpose ?? 'sign_in',
    deps.clock.now(),
  )
  const seal = input.seal ?? wrapped
  const final = await send(exchange, { type: 'client_final', message: computed.message, seal })
  return {
    first,
    final,
    key,
    clientFinalMessage: computed.message,
    seal,
    serverSignature: computed.serverSignature,
  }
}

describe('SCRAM sign-in exchange', () => {
  let deps: TestDeps
  let REDIRECT: string
  beforeEach(async () => {
    deps = await createTestDeps()
    REDIRECT = (await addSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })).site.redirectUris[0] as string
    await deps.store.users.create({
      id: 'u_alice',
      username: 'alice',
      name: 'Alice',
      passwordHash: await hashScramPassword('alice-password-1', 4096),
      createdAt: deps.clock.now(),
    })
  })

  it('signs alice in: server-final proves the passport, the sealed result completes top-level', async () => {
    const app = createApp(deps)
    const exchange = createSignInExchange(deps, ADDRESS)
    const run = await attempt(deps, exchange, { username: 'alice', password: 'alice-password-1' })
    expect(run.first).toMatchObject({ type: 'server_first', address: ADDRESS })
    expect(run.final?.type).toBe('server_final')
    if (run.final?.type !== 'server_final' || !run.key) throw new Error('no server-final')
    expect(run.final.message).toBe(`v=${run.serverSignature}`)
    // The result travels sealed: only the page's content key opens it.
    expect(run.final.result.split('.')).toHaveLength(5)
    const { result } = await openSealed<{ result: string }>(run.final.result, run.key)

    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', REDIRECT)
    const csrf = await openSignInPage(app, jar, req)
    const form = Object.fromEntries(loginForm(req, { username: 'alice', password: '' }, csrf))
    delete form.password
    const done = await formPost(app, '/login/scram', jar, { ...form, result })
    expect(done.status).toBe(303)
    expect(fragmentOf(done).get('code')).toBeTruthy()
    expect(jar.has('__Host-passport_session')).toBe(true)
    // The result is single-use.
    const again = await formPost(app, '/login/scram', new Map(jar), { ...form, result })
    expect(again.status).toBe(400)
  })

  it('a result is refused from another address and for another site', async () => {
    const app = createApp(deps)
    await addSite(deps, { id: 'shop' })
    const exchange = createSignInExchange(deps, '203.0.113.9')
    const run = await attempt(deps, exchange, { username: 'alice', password: 'alice-password-1' })
    if (run.final?.type !== 'server_final' || !run.key) throw new Error('no server-final')
    const { result } = await openSealed<{ result: string }>(run.final.result, run.key)
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', REDIRECT)
    const csrf = await openSignInPage(app, jar, req)
    const form = Object.fromEntries(loginForm(req, { username: 'alice', password: '' }, csrf))
    // app.request() comes from "unknown", not from 203.0.113.9.
    expect((await formPost(app, '/login/scram', jar, { ...form, result })).status).toBe(400)
    expect(jar.has('__Host-passport_session')).toBe(false)
  })

  it('an unknown user gets a server-first of the same shape (stable decoy salt) and invalid_proof', async () => {
    const a = createSignInExchange(deps, ADDRESS)
    const known = await attempt(deps, a, { username: 'alice', password: 'wrong-password' })
    const unknown1 = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'nobody',
      password: 'x',
    })
    const unknown2 = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'nobody',
      password: 'y',
    })
    const shape = (m: SignInServerMessage) =>
      m.type === 'server_first'
        ? m.message.replace(/r=[^,]+/, 'r=').replace(/s=[^,]+/, (s) => `s=${s.length}`)
        : m.type
    expect(shape(unknown1.first)).toBe(
      shape(known.first).replace('i=4096', `i=${deps.config.scramIterations}`),
    )
    const salt = (m: SignInServerMessage) =>
      m.type === 'server_first' ? /s=([^,]+)/.exec(m.message)?.[1] : null
    expect(salt(unknown1.first)).toBe(salt(unknown2.first))
    for (const run of [known, unknown1, unknown2]) {
      expect(run.final).toMatchObject({ type: 'error', code: 'invalid_proof' })
    }
    expect(await deps.store.sessions.listByUser('u_alice')).toHaveLength(0)
  })

  it('a wrong password is invalid_proof and counts like the form: locked after five, even the right one', async () => {
    for (let i = 0; i < ACCOUNT_FREE_FAILURES; i++) {
      const run = await attempt(deps, createSignInExchange(deps, ADDRESS), {
        username: 'alice',
        password: `bad-${i}`,
      })
      expect(run.final).toMatchObject({ type: 'error', code: 'invalid_proof' })
    }
    const right = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'alice',
      password: 'alice-password-1',
    })
    expect(right.final).toMatchObject({ type: 'error', code: 'invalid_proof' })
    deps.clock.advance(16 * 60_000)
    const later = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'alice',
      password: 'alice-password-1',
    })
    expect(later.final?.type).toBe('server_final')
  })

  it('an address over its failure limit is refused at client-first (throttled, retry_after)', async () => {
    for (let i = 0; i < ADDRESS_MAX_FAILURES; i++) {
      await attempt(deps, createSignInExchange(deps, '198.51.100.7'), { username: `user${i}`, password: 'x' })
    }
    const run = await attempt(deps, createSignInExchange(deps, '198.51.100.7'), {
      username: 'alice',
      password: 'alice-password-1',
    })
    expect(run.first).toMatchObject({ type: 'error', code: 'throttled' })
    expect((run.first as { retry_after?: number }).retry_after).toBeGreaterThan(0)
  })

  it('a replayed client-final is nonce_used; a nonce of another socket is nonce_mismatch', async () => {
    const exchange = createSignInExchange(deps, ADDRESS)
    const run = await attempt(deps, exchange, { username: 'alice', password: 'wrong' })
    expect(run.final).toMatchObject({ code: 'invalid_proof' })
    expect(
      await send(exchange, { type: 'client_final', message: run.clientFinalMessage, seal: run.seal }),
    ).toEqual({
      type: 'error',
      code: 'nonce_used',
    })
    // Socket B has its own exchange open; A's (answered) client-final means nothing there.
    const b = createSignInExchange(deps, ADDRESS)
    await send(b, {
      type: 'client_first',
      site: 'news',
      message: `${SIGN_IN_GS2_HEADER}n=alice,r=${clientNonce()}`,
    })
    expect(await send(b, { type: 'client_final', message: run.clientFinalMessage, seal: run.seal })).toEqual({
      type: 'error',
      code: 'nonce_mismatch',
    })
  })

  it('a right proof replayed on the same socket after success opens nothing', async () => {
    const exchange = createSignInExchange(deps, ADDRESS)
    const run = await attempt(deps, exchange, { username: 'alice', password: 'alice-password-1' })
    expect(run.final?.type).toBe('server_final')
    const replay = await send(exchange, {
      type: 'client_final',
      message: run.clientFinalMessage,
      seal: run.seal,
    })
    expect(replay).toEqual({ type: 'error', code: 'nonce_used' })
  })

  it('a client-final after the nonce expired is nonce_expired, even with the right password', async () => {
    const exchange = createSignInExchange(deps, ADDRESS)
    const nonce = clientNonce()
    const bare = clientFirstBare('alice', nonce)
    const first = await send(exchange, {
      type: 'client_first',
      site: 'news',
      message: `${SIGN_IN_GS2_HEADER}${bare}`,
    })
    if (first.type !== 'server_first') throw new Error('no server-first')
    deps.clock.advance(61_000)
    const computed = await clientFinal({
      password: 'alice-password-1',
      clientFirstBare: bare,
      clientNonce: nonce,
      serverFirst: first.message,
      channelBinding: `${SIGN_IN_GS2_HEADER}${bindingData(first.address, 'news')}`,
    })
    const jwk = deps.keys.encryption.jwks[0]
    if (!computed || !jwk) throw new Error('setup')
    const { wrapped } = await wrapContentKey(jwk, TEST_ISSUER, 'sign_in', deps.clock.now())
    expect(await send(exchange, { type: 'client_final', message: computed.message, seal: wrapped })).toEqual({
      type: 'error',
      code: 'nonce_expired',
    })
  })

  it('a proof bound to another address or another site is binding_mismatch', async () => {
    await addSite(deps, { id: 'shop' })
    const otherAddress = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'alice',
      password: 'alice-password-1',
      bindAddress: '192.0.2.1',
    })
    expect(otherAddress.final).toEqual({ type: 'error', code: 'binding_mismatch' })
    const otherSite = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'alice',
      password: 'alice-password-1',
      bindSite: 'shop',
    })
    expect(otherSite.final).toEqual({ type: 'error', code: 'binding_mismatch' })
    // Refusals that change nothing: no failure counted, no session.
    const fine = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'alice',
      password: 'alice-password-1',
    })
    expect(fine.final?.type).toBe('server_final')
  })

  it('a seal for another purpose or a replayed seal is invalid_seal', async () => {
    const wrongAudience = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'alice',
      password: 'alice-password-1',
      purpose: 'devices',
    })
    expect(wrongAudience.final).toEqual({ type: 'error', code: 'invalid_seal' })
    const used = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'alice',
      password: 'wrong',
    })
    const replayed = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'alice',
      password: 'alice-password-1',
      seal: used.seal as string,
    })
    expect(replayed.final).toEqual({ type: 'error', code: 'invalid_seal' })
  })

  it('unknown sites, malformed messages and m= extensions are refused', async () => {
    const e = createSignInExchange(deps, ADDRESS)
    const first = (message: string, site = 'news') =>
      send(createSignInExchange(deps, ADDRESS), { type: 'client_first', site, message })
    expect(await first(`${SIGN_IN_GS2_HEADER}n=alice,r=${clientNonce()}`, 'nope')).toMatchObject({
      code: 'unknown_site',
    })
    expect(await first(`n,,n=alice,r=${clientNonce()}`)).toMatchObject({ code: 'invalid_message' })
    expect(await first(`${SIGN_IN_GS2_HEADER}m=x,n=alice,r=${clientNonce()}`)).toMatchObject({
      code: 'invalid_message',
    })
    expect(await first(`${SIGN_IN_GS2_HEADER}n=alice,r=short`)).toMatchObject({ code: 'invalid_message' })
    expect(await e.handle('not json')).toEqual({
      reply: { type: 'error', code: 'invalid_message' },
      close: true,
    })
  })

  it('an account still on scrypt: invalid_proof with a fallback; the form post signs in once and upgrades it', async () => {
    const app = createApp(deps)
    const bob = await addUser(deps, 'bob') // scrypt, as before SCRAM
    expect(bob.passwordHash.startsWith('scrypt$')).toBe(true)
    const run = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'bob',
      password: bob.password,
    })
    expect(run.final).toMatchObject({ type: 'error', code: 'invalid_proof' })
    const fallback = (run.final as { fallback?: string }).fallback
    expect(fallback).toBeTruthy()
    const decoySalt = /s=([^,]+)/.exec((run.first as { message: string }).message)?.[1]

    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', REDIRECT)
    const csrf = await openSignInPage(app, jar, req)
    const form = Object.fromEntries(loginForm(req, { username: 'bob', password: bob.password }, csrf))
    const res = await formPost(app, '/login', jar, { ...form, fallback: fallback as string })
    expect(res.status).toBe(303)
    const stored = (await deps.store.users.findByUsername('bob'))?.passwordHash ?? ''
    const credential = parseScramCredential(stored)
    expect(credential?.iterations).toBe(deps.config.scramIterations)
    // The same salt the socket answered before: the upgrade is invisible on the wire.
    expect(credential?.salt.toString('base64')).toBe(decoySalt)
    expect(stored).not.toContain('scrypt')
    const next = await attempt(deps, createSignInExchange(deps, ADDRESS), {
      username: 'bob',
      password: bob.password,
    })
    expect(next.final?.type).toBe('server_final')
  })

  it('with PASSPORT_PASSWORD_FORM=off: no fallback ticket, and the form post is refused', async () => {
    const off = { ...deps, config: resolveConfig({ ...deps.config, passwordForm: false }) }
    const app = createApp(off)
    const bob = await addUser(off, 'bob')
    const run = await attempt(off, createSignInExchange(off, ADDRESS), {
      username: 'bob',
      password: bob.password,
    })
    expect(run.final).toEqual({ type: 'error', code: 'invalid_proof' })
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', REDIRECT)
    const page = await app.request(authorizeUrl(req), { headers: { Cookie: cookieHeader(jar) } })
    expect(await page.text()).toContain('data-password-form="off"')
    const csrf = await openSignInPage(app, jar, req)
    const res = await formPost(
      app,
      '/login',
      jar,
      Object.fromEntries(loginForm(req, { username: 'bob', password: bob.password }, csrf)),
    )
    expect(res.status).toBe(401)
    expect((await deps.store.users.findByUsername('bob'))?.passwordHash.startsWith('scrypt$')).toBe(true)
  })

  it('tickets open once, for their kind, site and address, unexpired and untampered', async () => {
    const issue = () =>
      issueSignInTicket(deps, { kind: 'result', subject: 'u_alice', siteId: 'news', address: ADDRESS })
    const expect1 = { kind: 'result' as const, siteId: 'news', address: ADDRESS }
    const t = issue()
    expect(await redeemSignInTicket(deps, t, expect1)).toBe('u_alice')
    expect(await redeemSignInTicket(deps, t, expect1)).toBeNull()
    expect(await redeemSignInTicket(deps, issue(), { ...expect1, kind: 'fallback' })).toBeNull()
    expect(await redeemSignInTicket(deps, issue(), { ...expect1, siteId: 'shop' })).toBeNull()
    expect(await redeemSignInTicket(deps, issue(), { ...expect1, address: '192.0.2.1' })).toBeNull()
    const [body, tag] = issue().split('.') as [string, string]
    const forged = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), subject: 'u_bob' }),
    ).toString('base64url')
    expect(await redeemSignInTicket(deps, `${forged}.${tag}`, expect1)).toBeNull()
    const late = issue()
    deps.clock.advance(61_000)
    expect(await redeemSignInTicket(deps, late, expect1)).toBeNull()
  })
})
