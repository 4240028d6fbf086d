import { describe, expect, it } from 'vitest'
import { bindingData, SIGN_IN_GS2_HEADER } from '../../../passport-frame/src/protocol/sign-in.ts'
import {
  clientFinal,
  clientFirstBare,
  clientNonce,
  newCredential,
} from '../../../passport-frame/src/sign-in/scram.ts'
import { openSealed, wrapContentKey } from '../../../passport-frame/src/sign-in/sealed.ts'
import { verifyPassword } from '../auth/password.ts'
import { createSignInExchange } from '../live/sign-in-exchange.ts'
import { authorizeRequest, type CookieJar, cookieHeader, postLogin } from '../test-flows.ts'
import { createTestWorld, EVIL_ORIGIN, TEST_ISSUER } from '../test-support.ts'

/** Issue 16 item 3: "Your devices" answered sealed to the page's one-time key. */
describe('POST /account/devices/sealed', () => {
  async function signedIn() {
    const world = await createTestWorld()
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', world.news.site.redirectUris[0])
    const res = await postLogin(world.app, jar, req, world.alice, {
      'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/140.0 Safari/537.36',
    })
    expect(res.status).toBe(303)
    const jwk = world.deps.keys.encryption.jwks[0]
    if (!jwk) throw new Error('no enc key')
    const wrap = (purpose: 'devices' | 'sign_in' = 'devices') =>
      wrapContentKey(jwk, TEST_ISSUER, purpose, world.deps.clock.now())
    const post = (seal: string, headers: Record<string, string> = {}) =>
      world.app.request('/account/devices/sealed', {
        method: 'POST',
        body: JSON.stringify({ seal }),
        headers: {
          'Content-Type': 'application/json',
          Origin: TEST_ISSUER,
          'Sec-Fetch-Site': 'same-origin',
          Cookie: cookieHeader(jar),
          ...headers,
        },
      })
    return { ...world, jar, wrap, post }
  }

  it('answers the device list as a JWE only the page key opens; nothing readable on the wire', async () => {
    const { wrap, post } = await signedIn()
    const { key, wrapped } = await wrap()
    const res = await post(wrapped)
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    const text = await res.text()
    expect(text).not.toMatch(/Chrome|Linux|News|alice/)
    const { sealed } = JSON.parse(text) as { sealed: string }
    const { devices } = await openSealed<{
      devices: { device: string; current: boolean; sites: string[] }[]
    }>(sealed, key)
    expect(devices).toHaveLength(1)
    expect(devices[0]).toMatchObject({ current: true })
    expect(devices[0]?.device).toContain('Chrome')
  })

  it('refuses a replayed seal, a seal for another purpose, a foreign origin and no session', async () => {
    const { wrap, post } = await signedIn()
    const once = await wrap()
    expect((await post(once.wrapped)).status).toBe(200)
    expect((await post(once.wrapped)).status).toBe(400)
    expect((await post((await wrap('sign_in')).wrapped)).status).toBe(400)
    expect((await post('not-a-jwe')).status).toBe(400)
    expect(
      (await post((await wrap()).wrapped, { Origin: EVIL_ORIGIN, 'Sec-Fetch-Site': 'cross-site' })).status,
    ).toBe(403)
    expect((await post((await wrap()).wrapped, { Cookie: '' })).status).toBe(401)
  })
})

/** A password change with neither password on the wire: SCRAM re-authentication, then a sealed credential. */
describe('POST /account/password/sealed', () => {
  async function setUp() {
    const world = await createTestWorld()
    const jar: CookieJar = new Map()
    const other: CookieJar = new Map()
    const redirect = world.news.site.redirectUris[0]
    // Signing in through the form also upgrades alice from scrypt to SCRAM.
    expect((await postLogin(world.app, jar, authorizeRequest('news', redirect), world.alice)).status).toBe(
      303,
    )
    expect((await postLogin(world.app, other, authorizeRequest('news', redirect), world.alice)).status).toBe(
      303,
    )
    const jwk = world.deps.keys.encryption.jwks[0]
    if (!jwk) throw new Error('no enc key')
    /** SCRAM for the passport itself (site ''), as the account page would run it: the one-time result. */
    const reauth = async (username: string, password: string) => {
      const exchange = createSignInExchange(world.deps, 'unknown')
      const nonce = clientNonce()
      const bare = clientFirstBare(username, nonce)
      const first = (
        await exchange.handle(
          JSON.stringify({ type: 'client_first', site: '', message: `${SIGN_IN_GS2_HEADER}${bare}` }),
        )
      ).reply
      if (first.type !== 'server_first') throw new Error(`no server-first: ${JSON.stringify(first)}`)
      const final = await clientFinal({
        password,
        clientFirstBare: bare,
        clientNonce: nonce,
        serverFirst: first.message,
        channelBinding: `${SIGN_IN_GS2_HEADER}${bindingData(first.address, '')}`,
      })
      const { key, wrapped } = await wrapContentKey(jwk, TEST_ISSUER, 'sign_in', world.deps.clock.now())
      const last = (
        await exchange.handle(
          JSON.stringify({ type: 'client_final', message: final?.message, seal: wrapped }),
        )
      ).reply
      if (last.type !== 'server_final') return null
      return (await openSealed<{ result: string }>(last.result, key)).result
    }
    const change = async (claims: Record<string, unknown>, cookies = jar) => {
      const { key, wrapped } = await wrapContentKey(
        jwk,
        TEST_ISSUER,
        'password',
        world.deps.clock.now(),
        claims,
      )
      const res = await world.app.request('/account/password/sealed', {
        method: 'POST',
        body: JSON.stringify({ seal: wrapped }),
        headers: {
          'Content-Type': 'application/json',
          Origin: TEST_ISSUER,
          'Sec-Fetch-Site': 'same-origin',
          Cookie: cookieHeader(cookies),
        },
      })
      return { res, key, wrapped }
    }
    return { ...world, jar, other, reauth, change }
  }

  it('changes the password from a page-made credential, after SCRAM proof; other devices are signed out', async () => {
    const { deps, alice, reauth, change } = await setUp()
    const credential = await newCredential('alice-new-password-2', deps.config.scramIterations)
    const { res, key } = await change({ reauth: await reauth('alice', alice.password), credential })
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).not.toContain('changed')
    expect(await openSealed(JSON.parse(text).sealed, key)).toEqual({ changed: true, signed_out: 1 })
    const stored = (await deps.store.users.findByUsername('alice'))?.passwordHash ?? ''
    expect(await verifyPassword('alice-new-password-2', stored)).toBe(true)
    expect(await verifyPassword(alice.password, stored)).toBe(false)
    const live = (await deps.store.sessions.listByUser(alice.id)).filter((s) => s.endedAt === null)
    expect(live).toHaveLength(1)
  })

  it('refuses without a fresh proof of the current password, a cheaper credential, and a replay', async () => {
    const { deps, alice, bob, reauth, change } = await setUp()
    const credential = await newCredential('alice-new-password-2', deps.config.scramIterations)
    expect(await reauth('alice', 'not-the-password')).toBeNull()
    expect((await change({ credential })).res.status).toBe(400)
    expect((await change({ reauth: 'forged.ticket', credential })).res.status).toBe(403)
    // bob's proof is not alice's (bob still on scrypt: first upgrade him through the form).
    const bobProof = await reauth('bob', bob.password)
    expect(bobProof).toBeNull()
    const cheap = await newCredential('alice-new-password-2', 1000)
    expect(
      (await change({ reauth: await reauth('alice', alice.password), credential: cheap })).res.status,
    ).toBe(400)
    const proof = await reauth('alice', alice.password)
    expect((await change({ reauth: proof, credential })).res.status).toBe(200)
    expect((await change({ reauth: proof, credential })).res.status).toBe(403)
    expect(
      await verifyPassword(
        'alice-new-password-2',
        (await deps.store.users.findByUsername('alice'))?.passwordHash ?? '',
      ),
    ).toBe(true)
  })
})
