import { describe, expect, test } from 'vitest'
import { createApp } from '../app.ts'
import { fixedClock } from '../clock.ts'
import { resolveConfig } from '../config.ts'
import { sha256 } from '../crypto/random.ts'
import { NONCE_WINDOW_MS } from '../services/dpop-proofs.ts'
import { checkSiteToken } from '../services/token-status.ts'
import { createTestFrameKey, defaultFrameKey } from '../test-dpop.ts'
import {
  authorizeRequest,
  formPost,
  frameApi,
  openSignInPage,
  postLogin,
  type SignedIn,
  signIn,
} from '../test-flows.ts'
import {
  addSite,
  addUser,
  createTestDeps,
  createTestWorld,
  storedFamily,
  TEST_ISSUER,
} from '../test-support.ts'

/**
 * Issue 13: a site token opens nothing but its site. The frame's API answers only a request
 * proven by the frame key the credential was bound to at sign-in (RFC 9449 DPoP). Every case
 * here is an attacker holding what a page or a site backend holds (the site token, the
 * authkey), or a copy of the frame's storage, and calling from a program (any Origin, any
 * header): refused, and nothing changes.
 */

type World = Awaited<ReturnType<typeof createTestWorld>>
const thief = createTestFrameKey()
const FORGED = { Origin: TEST_ISSUER, 'Sec-Fetch-Site': 'same-origin' }

const expectProofRefused = async (res: Response) => {
  expect(res.status).toBe(401)
  expect(res.headers.get('WWW-Authenticate')).toMatch(/^DPoP error="invalid_dpop_proof"/)
  expect(res.headers.get('Cache-Control')).toBe('no-store')
  expect(await res.json()).toMatchObject({ error: 'invalid_dpop_proof' })
}

/** Nothing changed for the device: its session lives and its token is valid. */
const expectUntouched = async (world: World, signedIn: SignedIn) => {
  const status = await checkSiteToken(world.deps, signedIn.token, 'news')
  expect(status.valid).toBe(true)
  const session = await world.deps.store.sessions.get(status.valid ? status.record.sessionId : '')
  expect(session?.endedAt).toBeNull()
}

/** A pending "sign in with another device" request for alice, from a new browser on Shop. */
async function pendingApproval(world: World) {
  const jar = new Map<string, string>()
  const req = authorizeRequest('shop', world.shop.site.redirectUris[0])
  const csrf = await openSignInPage(world.app, jar, req)
  await formPost(world.app, '/login/device', jar, {
    csrf,
    client_id: req.clientId,
    redirect_uri: req.redirectUri,
    state: req.state,
    code_challenge: req.challenge,
    username: 'alice',
  })
  const [pending] = await world.deps.store.approvals.listPending('u_alice', world.deps.clock.now())
  if (!pending) throw new Error('no pending request')
  return pending
}

describe('a live site token replayed from a program, at every frame endpoint (issue 13)', () => {
  const endpoints = [
    ['check', {}],
    ['logout', {}],
    ['approval', { deny: true }],
    // Who asks to sign in (site, browser, address): sealed, and only for the frame's own key.
    ['approval/details', { seal: 'a.b.c.d.e' }],
  ] as const

  for (const [path, extra] of endpoints) {
    for (const [how, options] of [
      ['no proof', { proof: null }],
      ["a valid proof by the thief's own key", { key: thief }],
    ] as const) {
      test(`/api/frame/${path} with the token and ${how}: 401, nothing changed`, async () => {
        const world = await createTestWorld()
        const victim = await signIn(world.app, world.news, world.alice)
        const res = await frameApi(
          world.app,
          path,
          { authkey: world.news.authkey, token: victim.token, approval_id: 'x', ...extra },
          FORGED,
          options,
        )
        await expectProofRefused(res)
        await expectUntouched(world, victim)
      })
    }

    test(`/api/frame/${path} with the token in the body the old way, any headers: refused`, async () => {
      const world = await createTestWorld()
      const victim = await signIn(world.app, world.news, world.alice)
      const res = await world.app.request(`/api/frame/${path}`, {
        method: 'POST',
        body: JSON.stringify({
          authkey: world.news.authkey,
          token: victim.token,
          approval_id: 'x',
          ...extra,
        }),
        headers: {
          'Content-Type': 'application/json',
          ...FORGED,
          Authorization: `Bearer ${victim.token}`,
          'X-Forwarded-For': '127.0.0.1',
        },
      })
      expect([400, 401]).toContain(res.status)
      await expectUntouched(world, victim)
    })
  }

  test('approving a pending device sign-in with a stolen token and the thief key: refused, still pending', async () => {
    const world = await createTestWorld()
    const victim = await signIn(world.app, world.news, world.alice)
    const pending = await pendingApproval(world)
    // Even with the very code the new device shows (the thief asked for it), and a wrong one.
    for (const code of [pending.code, pending.code === '00' ? '01' : '00']) {
      const res = await frameApi(
        world.app,
        'approval',
        { authkey: world.news.authkey, token: victim.token, approval_id: pending.id, code },
        FORGED,
        { key: thief },
      )
      await expectProofRefused(res)
    }
    expect((await world.deps.store.approvals.get(pending.id))?.status).toBe('pending')
  })

  test('the device itself (its frame key) still answers the same request', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const pending = await pendingApproval(world)
    const res = await frameApi(world.app, 'approval', {
      authkey: world.news.authkey,
      token: device.token,
      approval_id: pending.id,
      deny: true,
    })
    expect(res.status).toBe(200)
    expect((await world.deps.store.approvals.get(pending.id))?.status).toBe('denied')
  })

  test('a token minted without a frame key (CIBA) opens nothing here, whatever key proves', async () => {
    const world = await createTestWorld()
    const victim = await signIn(world.app, world.news, world.alice)
    await world.deps.store.transaction(async (tx) => {
      const row = await tx.tokens.get(
        JSON.parse(Buffer.from(victim.token.split('.')[1] ?? '', 'base64url').toString()).jti,
      )
      if (!row) throw new Error('no row')
      // What a CIBA mint writes: no key.
      await tx.tokens.revokeSessionSite(row.sessionId, 'news', 0, 'revoked')
    })
    const res = await frameApi(world.app, 'check', { authkey: world.news.authkey, token: victim.token })
    expect(res.status).toBe(200) // the bound device may still ask why its token died
    const other = await frameApi(
      world.app,
      'check',
      { authkey: world.news.authkey, token: victim.token },
      {},
      { key: thief },
    )
    await expectProofRefused(other)
  })
})

describe('DPoP proofs that are not good enough (issue 13)', () => {
  const checkWith = async (world: World, signedIn: SignedIn, proof: string | null) =>
    frameApi(world.app, 'check', { authkey: world.news.authkey, token: signedIn.token }, {}, { proof })
  const checkUrl = `${TEST_ISSUER}/api/frame/check`

  test('a replayed proof is refused the second time', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const proof = defaultFrameKey.proof({
      url: checkUrl,
      accessToken: device.token,
      nonce: defaultFrameKey.nonce,
    })
    expect((await checkWith(world, device, proof)).status).toBe(200)
    await expectProofRefused(await checkWith(world, device, proof))
  })

  test.each([
    ['another URL', { url: `${TEST_ISSUER}/api/frame/logout` }],
    ['another origin', { url: 'http://evil.localhost:8083/api/frame/check' }],
    ['another method', { url: checkUrl, method: 'GET' }],
  ])('a proof for %s is refused', async (_, input) => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const proof = defaultFrameKey.proof({ ...input, accessToken: device.token, nonce: defaultFrameKey.nonce })
    await expectProofRefused(await checkWith(world, device, proof))
  })

  test('a proof over another token (mismatched ath) is refused', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const other = await signIn(world.app, world.shop, world.alice)
    const proof = defaultFrameKey.proof({
      url: checkUrl,
      accessToken: other.token,
      nonce: defaultFrameKey.nonce,
    })
    await expectProofRefused(await checkWith(world, device, proof))
  })

  test('a proof with no ath, sent with a token, is refused', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    await expectProofRefused(
      await checkWith(world, device, defaultFrameKey.proof({ url: checkUrl, nonce: defaultFrameKey.nonce })),
    )
  })

  test.each([
    ['alg none', { header: { alg: 'none' } }],
    ['alg HS256', { header: { alg: 'HS256' } }],
    ['typ JWT', { header: { typ: 'JWT' } }],
    [
      'a private key in the header',
      {
        header: { jwk: { kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'A'.repeat(43), d: 'A'.repeat(43) } },
      },
    ],
    ['a P-384 key', { header: { jwk: { kty: 'EC', crv: 'P-384', x: 'A'.repeat(64), y: 'A'.repeat(64) } } }],
  ])('a proof with %s is refused', async (_, input) => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const proof = defaultFrameKey.proof({
      url: checkUrl,
      accessToken: device.token,
      nonce: defaultFrameKey.nonce,
      ...input,
    })
    await expectProofRefused(await checkWith(world, device, proof))
  })

  test('a proof whose signature was altered, or that is not a JWS at all, is refused', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const proof = defaultFrameKey.proof({
      url: checkUrl,
      accessToken: device.token,
      nonce: defaultFrameKey.nonce,
    })
    const flipped = `${proof.slice(0, -2)}${proof.endsWith('A') ? 'B' : 'A'}${proof.slice(-1)}`
    await expectProofRefused(await checkWith(world, device, flipped))
    await expectProofRefused(await checkWith(world, device, 'not.a.proof'))
    await expectProofRefused(await checkWith(world, device, `${proof}.${'A'.repeat(3000)}`))
  })

  test('a stale nonce gets use_dpop_nonce with a fresh one; the frame then succeeds', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const staleNonce = defaultFrameKey.nonce
    world.deps.clock.advance(2 * NONCE_WINDOW_MS + 1000)
    const proof = defaultFrameKey.proof({ url: checkUrl, accessToken: device.token, nonce: staleNonce })
    const res = await checkWith(world, device, proof)
    expect(res.status).toBe(401)
    expect(res.headers.get('WWW-Authenticate')).toMatch(/^DPoP error="use_dpop_nonce"/)
    const fresh = res.headers.get('DPoP-Nonce')
    expect(fresh).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(fresh).not.toBe(staleNonce)
    const retried = defaultFrameKey.proof({ url: checkUrl, accessToken: device.token, nonce: fresh })
    expect((await checkWith(world, device, retried)).status).toBe(200)
  })

  test('with nonces off, a proof dated two minutes ago (or ahead) is refused', async () => {
    // The frame dates proofs by the device's clock here: the test's clock is the real one.
    const base = await createTestDeps()
    const deps = {
      ...base,
      clock: fixedClock(Date.now()),
      config: resolveConfig({ issuer: TEST_ISSUER, scryptCost: 1024, dpopNonceRequired: false }),
    }
    const world = { deps }
    const app = createApp(deps)
    const alice = await addUser(deps, 'alice')
    const news = await addSite(deps, { id: 'news' })
    const device = await signIn(app, news, alice)
    const now = Math.floor(world.deps.clock.now() / 1000)
    for (const iat of [now - 120, now + 60]) {
      const proof = defaultFrameKey.proof({ url: checkUrl, accessToken: device.token, iat })
      const res = await frameApi(app, 'check', { authkey: news.authkey, token: device.token }, {}, { proof })
      await expectProofRefused(res)
    }
    const fresh = defaultFrameKey.proof({ url: checkUrl, accessToken: device.token, iat: now })
    expect(
      (await frameApi(app, 'check', { authkey: news.authkey, token: device.token }, {}, { proof: fresh }))
        .status,
    ).toBe(200)
  })
})

describe('refresh credentials are bound to the frame key (issue 13)', () => {
  const refresh = (world: World, credential: string, options: Parameters<typeof frameApi>[4] = {}) =>
    frameApi(
      world.app,
      'token',
      { grant_type: 'refresh_token', authkey: world.news.authkey, refresh_token: credential },
      FORGED,
      options,
    )
  const familyOf = (world: World, credential: string) => storedFamily(world.deps.store, credential)

  test('the code exchange binds the token and the refresh family to the key that proved it', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const row = await familyOf(world, device.body.refresh_token)
    expect(row?.jkt).toBe(defaultFrameKey.jkt)
    const status = await checkSiteToken(world.deps, device.token, 'news')
    expect(status.valid && status.record.jkt).toBe(defaultFrameKey.jkt)
  })

  test('a code exchange without a proof is refused and the code is not spent', async () => {
    const world = await createTestWorld()
    const req = authorizeRequest('news', world.news.site.redirectUris[0])
    const login = await postLogin(world.app, new Map(), req, world.alice)
    const code = new URLSearchParams((login.headers.get('Location') ?? '').split('#')[1]).get('code') ?? ''
    const body = {
      grant_type: 'authorization_code',
      authkey: world.news.authkey,
      code,
      code_verifier: req.verifier,
      redirect_uri: req.redirectUri,
    }
    await expectProofRefused(await frameApi(world.app, 'token', body, {}, { proof: null }))
    expect((await frameApi(world.app, 'token', body)).status).toBe(200)
  })

  test('a refresh credential copied out of the frame storage is useless without the key; the device keeps refreshing', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    await expectProofRefused(await refresh(world, device.body.refresh_token, { key: thief }))
    await expectProofRefused(await refresh(world, device.body.refresh_token, { proof: null }))
    const row = await familyOf(world, device.body.refresh_token)
    expect(row?.generation).toBe(0)
    expect(row?.revokedAt).toBeNull()
    const own = await refresh(world, device.body.refresh_token)
    expect(own.status).toBe(200)
  })

  test('a used credential presented with another key, or none, is theft: the family is revoked (as before)', async () => {
    for (const options of [{ key: thief }, { proof: null }]) {
      const world = await createTestWorld()
      const device = await signIn(world.app, world.news, world.alice)
      expect((await refresh(world, device.body.refresh_token)).status).toBe(200)
      world.deps.clock.advance(11_000) // past the grace window
      const res = await refresh(world, device.body.refresh_token, options)
      expect(res.status).toBe(400)
      expect(await res.json()).toMatchObject({ error: 'invalid_grant', reason: 'revoked' })
      expect(await familyOf(world, device.body.refresh_token)).toMatchObject({ revokeReason: 'revoked' })
    }
  })

  test('an older generation with the family key after the grace window gets the current successor: no sign-out', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const first = (await (await refresh(world, device.body.refresh_token)).json()) as {
      refresh_token: string
    }
    const second = (await (await refresh(world, first.refresh_token)).json()) as { refresh_token: string }
    world.deps.clock.advance(3_600_000) // a tab asleep for an hour retries the oldest one
    const late = await refresh(world, device.body.refresh_token)
    expect(late.status).toBe(200)
    const lateBody = (await late.json()) as { access_token: string; refresh_token: string }
    expect((await checkSiteToken(world.deps, lateBody.access_token, 'news')).valid).toBe(true)
    // The other tab's credential (the one that was newest) was used to make this answer: that
    // tab too gets a successor rather than a sign-out.
    const otherTab = await refresh(world, second.refresh_token)
    expect(otherTab.status).toBe(200)
    expect(await familyOf(world, device.body.refresh_token)).toMatchObject({ generation: 3, revokedAt: null })
  })

  test('within the grace window the same key gets the byte-identical answer', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const a = await (await refresh(world, device.body.refresh_token)).text()
    const b = await (await refresh(world, device.body.refresh_token)).text()
    expect(b).toBe(a)
  })

  test('a family from before frame keys is refused as unknown: the device signs in again', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const row = await familyOf(world, device.body.refresh_token)
    if (!row) throw new Error('no row')
    // A row as a server before frame keys (and before families rotated in place) wrote it.
    await world.deps.store.refresh.create({
      ...row,
      hash: sha256('L'.repeat(43)),
      familyId: crypto.randomUUID(),
      usedAt: null,
      successorHash: null,
      successorSealed: null,
      jkt: null,
    })
    const res = await refresh(world, 'L'.repeat(43))
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: 'invalid_grant', reason: 'unknown' })
  })
})

describe('the frame API per device (issue 13, issue 14)', () => {
  test('a frame key making more than 60 requests a minute gets 429 rate_limited; another key is served', async () => {
    const world = await createTestWorld()
    const device = await signIn(world.app, world.news, world.alice)
    const check = (key = defaultFrameKey) =>
      frameApi(world.app, 'check', { authkey: world.news.authkey, token: device.token }, {}, { key })
    let limited: Response | null = null
    for (let i = 0; i < 62 && !limited; i++) {
      const res = await check()
      if (res.status === 429) limited = res
    }
    expect(limited?.headers.get('Retry-After')).toBeTruthy()
    expect(await limited?.json()).toMatchObject({ error: 'rate_limited' })
    // Another device's key has its own allowance (it is refused only for not being bound).
    expect((await check(createTestFrameKey())).status).toBe(401)
    world.deps.clock.advance(60_000)
    expect((await check()).status).toBe(200)
  })
})
