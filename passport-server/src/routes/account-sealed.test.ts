import { decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose'
import { describe, expect, it } from 'vitest'
import { bindingData, SIGN_IN_GS2_HEADER } from '../../../passport-frame/src/protocol/sign-in.ts'
import {
  clientFinal,
  clientFirstBare,
  clientNonce,
  newCredential,
} from '../../../passport-frame/src/sign-in/scram.ts'
import { openSealed, type SealedPurpose, wrapContentKey } from '../../../passport-frame/src/sign-in/sealed.ts'
import { verifyPassword } from '../crypto/password.ts'
import { createSignInExchange } from '../live/sign-in-exchange.ts'
import {
  authorizeRequest,
  type CookieJar,
  cookieHeader,
  formPost,
  openSignInPage,
  postLogin,
} from '../test-flows.ts'
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

/**
 * @see issue 16: every sealed read of the account page (devices, passkeys, the sign-in requests
 * another device is asking approval for) answers under the page's one-time key only, and refuses
 * the same way: tampered, replayed, wrapped to another key, for another purpose or passport, no
 * session, a foreign Origin or Sec-Fetch-Site, a cross-site form post (CSRF).
 */
describe.each(['devices', 'passkeys', 'approvals'] as const)('POST /account/%s/sealed', (purpose) => {
  async function setUp() {
    const world = await createTestWorld()
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', world.news.site.redirectUris[0])
    expect((await postLogin(world.app, jar, req, world.alice)).status).toBe(303)
    const alice = world.alice.id
    // Something secret in each list: a passkey named after a device, a request from Shop.
    await world.deps.store.passkeys.create({
      id: 'cred-alice-1',
      userId: alice,
      userHandle: 'handle-alice',
      publicKey: 'AAAA',
      counter: 0,
      transports: ['internal'],
      deviceType: 'multiDevice',
      backedUp: true,
      aaguid: '00000000-0000-0000-0000-000000000000',
      name: 'Pixel of Alice',
      createdAt: world.deps.clock.now(),
      lastUsedAt: null,
      removedAt: null,
    })
    const shop = authorizeRequest('shop', world.shop.site.redirectUris[0])
    const other: CookieJar = new Map()
    const csrf = await openSignInPage(world.app, other, shop)
    const asked = await formPost(
      world.app,
      '/login/device',
      other,
      {
        csrf,
        client_id: shop.clientId,
        redirect_uri: shop.redirectUri,
        state: shop.state,
        code_challenge: shop.challenge,
        response_mode: 'fragment',
        username: 'alice',
      },
      { 'User-Agent': 'Mozilla/5.0 (Macintosh) Firefox/140.0' },
    )
    expect(asked.status).toBeLessThan(400)
    const jwk = world.deps.keys.encryption.jwks[0]
    if (!jwk) throw new Error('no enc key')
    const wrap = (p: SealedPurpose = purpose, issuer = TEST_ISSUER, key = jwk) =>
      wrapContentKey(key, issuer, p, world.deps.clock.now())
    const post = (seal: string, headers: Record<string, string> = {}, body?: string) =>
      world.app.request(`/account/${purpose}/sealed`, {
        method: 'POST',
        body: body ?? JSON.stringify({ seal }),
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

  it('answers a JWE that only the page key opens; nothing of the list is readable on the wire', async () => {
    const { wrap, post } = await setUp()
    const { key, wrapped } = await wrap()
    const res = await post(wrapped)
    expect(res.status).toBe(200)
    expect(res.headers.get('Cache-Control')).toBe('no-store')
    const text = await res.text()
    expect(text).not.toMatch(/Pixel|cred-alice|Firefox|Macintosh|shop|Shop|Chrome|news|News|127\.0|alice/)
    const opened = await openSealed<Record<string, unknown>>(JSON.parse(text).sealed, key)
    const expected = {
      devices: { devices: [expect.objectContaining({ current: true })] },
      passkeys: {
        passkeys: [expect.objectContaining({ id: 'cred-alice-1', name: 'Pixel of Alice' })],
        can_add: true,
      },
      approvals: { approvals: [expect.objectContaining({ siteName: 'shop' })] },
    }[purpose]
    expect(opened).toMatchObject(expected)
    // Under another key the answer does not open.
    await expect(openSealed(JSON.parse(text).sealed, new Uint8Array(32))).rejects.toThrow()
  })

  it('refuses a tampered, replayed, wrong-key, wrong-purpose and wrong-passport seal (400)', async () => {
    const { wrap, post } = await setUp()
    const once = await wrap()
    expect((await post(once.wrapped)).status).toBe(200)
    // Replayed: the wrapped key is single-use.
    const replay = await post(once.wrapped)
    expect(replay.status).toBe(400)
    expect(await replay.json()).toMatchObject({ error: 'invalid_request' })
    // Tampered: one character of the ciphertext changed.
    const fresh = (await wrap()).wrapped
    const parts = fresh.split('.')
    const ct = parts[3] ?? ''
    parts[3] = `${ct[0] === 'A' ? 'B' : 'A'}${ct.slice(1)}`
    expect((await post(parts.join('.'))).status).toBe(400)
    // Wrapped to a key the passport does not hold (same kid, another key pair).
    const { publicKey } = await generateKeyPair('ECDH-ES+A256KW', { crv: 'P-256', extractable: true })
    const foreign = await exportJWK(publicKey)
    const ownKid = decodeProtectedHeader(fresh).kid as string
    expect((await post((await wrap(purpose, TEST_ISSUER, { ...foreign, kid: ownKid })).wrapped)).status).toBe(
      400,
    )
    // Another purpose's key, another passport's audience.
    const otherPurpose: SealedPurpose = purpose === 'devices' ? 'passkeys' : 'devices'
    expect((await post((await wrap(otherPurpose)).wrapped)).status).toBe(400)
    expect((await post((await wrap('sign_in')).wrapped)).status).toBe(400)
    expect((await post((await wrap(purpose, 'https://other-passport.example')).wrapped)).status).toBe(400)
    expect((await post('not-a-jwe')).status).toBe(400)
    expect((await post('', {}, '{"seal":')).status).toBe(400)
  })

  it('refuses no session (401), a foreign Origin or Sec-Fetch-Site and a cross-site form post (403)', async () => {
    const { wrap, post } = await setUp()
    expect((await post((await wrap()).wrapped, { Cookie: '' })).status).toBe(401)
    const foreign = await post((await wrap()).wrapped, {
      Origin: EVIL_ORIGIN,
      'Sec-Fetch-Site': 'cross-site',
    })
    expect(foreign.status).toBe(403)
    expect(await foreign.json()).toMatchObject({ error: 'origin_not_allowed' })
    // Own Origin claimed, but the browser says the request came from another site.
    expect((await post((await wrap()).wrapped, { 'Sec-Fetch-Site': 'same-site' })).status).toBe(403)
    // A request without Origin (what a form post from a page that hides it looks like).
    expect((await post((await wrap()).wrapped, { Origin: '' })).status).toBe(403)
    // CSRF: a cross-site HTML form (text/plain, the only body it can send as JSON-looking).
    const csrf = await post(
      '',
      { Origin: EVIL_ORIGIN, 'Sec-Fetch-Site': 'cross-site', 'Content-Type': 'text/plain' },
      `{"seal":"${(await wrap()).wrapped}"}`,
    )
    expect(csrf.status).toBe(403)
  })
})

/** @see issue 16: the password change's own refusals, besides the SCRAM proof's. */
describe('POST /account/password/sealed: transport refusals', () => {
  it('refuses a foreign Origin, Sec-Fetch-Site, no session, a replayed or wrong-purpose seal', async () => {
    const world = await createTestWorld()
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', world.news.site.redirectUris[0])
    expect((await postLogin(world.app, jar, req, world.alice)).status).toBe(303)
    const jwk = world.deps.keys.encryption.jwks[0]
    if (!jwk) throw new Error('no enc key')
    const credential = await newCredential('alice-new-password-2', world.deps.config.scramIterations)
    const seal = async (p: SealedPurpose = 'password') =>
      (await wrapContentKey(jwk, TEST_ISSUER, p, world.deps.clock.now(), { reauth: 'x.y', credential }))
        .wrapped
    const post = async (wrapped: string, headers: Record<string, string> = {}) =>
      world.app.request('/account/password/sealed', {
        method: 'POST',
        body: JSON.stringify({ seal: wrapped }),
        headers: {
          'Content-Type': 'application/json',
          Origin: TEST_ISSUER,
          'Sec-Fetch-Site': 'same-origin',
          Cookie: cookieHeader(jar),
          ...headers,
        },
      })
    const before = (await world.deps.store.users.findByUsername('alice'))?.passwordHash
    expect((await post(await seal(), { Origin: EVIL_ORIGIN, 'Sec-Fetch-Site': 'cross-site' })).status).toBe(
      403,
    )
    expect((await post(await seal(), { 'Sec-Fetch-Site': 'cross-site' })).status).toBe(403)
    expect((await post(await seal(), { Cookie: '' })).status).toBe(401)
    expect((await post(await seal('devices'))).status).toBe(400)
    const once = await seal()
    expect((await post(once)).status).toBe(403) // opened; the proof is forged
    expect((await post(once)).status).toBe(400) // the same wrapped key again: refused before the proof
    expect((await world.deps.store.users.findByUsername('alice'))?.passwordHash).toBe(before)
  })
})
