import { beforeEach, describe, expect, it } from 'vitest'
import { pkceChallenge, randomSecret, sha256 } from '../crypto/random.ts'
import { PassportError } from '../errors.ts'
import type { SessionRecord, SiteRecord } from '../store/types.ts'
import { addSite, addUser, createTestDeps, NEWS_ORIGIN, T0, type TestDeps } from '../test-support.ts'
import { issueCode, redeemCode } from './codes.ts'
import { startSession } from './sessions.ts'

describe('one-time authorization codes', () => {
  let deps: TestDeps
  let news: SiteRecord
  let shop: SiteRecord
  let session: SessionRecord
  const verifier = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'
  const redirectUri = `${NEWS_ORIGIN}/`

  beforeEach(async () => {
    deps = await createTestDeps()
    const alice = await addUser(deps, 'alice')
    news = (await addSite(deps, { id: 'news' })).site
    shop = (await addSite(deps, { id: 'shop' })).site
    session = (await startSession(deps, alice.id, 'test')).session
  })

  const issue = () =>
    issueCode(deps, { site: news, session, redirectUri, codeChallenge: pkceChallenge(verifier) })
  const redeem = (
    code: string,
    over: Partial<{ site: SiteRecord; codeVerifier: string; redirectUri: string }> = {},
  ) => redeemCode(deps, { site: news, code, codeVerifier: verifier, redirectUri, ...over })
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => 'resolved',
      (err: unknown) => err,
    )
  const expectInvalidGrant = async (promise: Promise<unknown>) => {
    const err = await failure(promise)
    expect(err).toBeInstanceOf(PassportError)
    expect(err).toMatchObject({
      code: 'invalid_grant',
      description: 'the code is invalid, expired, used or not for this site',
    })
  }

  it('redeems a code once, returning who it was issued to and where', async () => {
    const code = await issue()
    expect(code).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(await redeem(code)).toEqual({
      hash: sha256(code),
      siteId: 'news',
      userId: session.userId,
      sessionId: session.id,
      redirectUri,
      codeChallenge: pkceChallenge(verifier),
      expiresAt: T0 + deps.config.codeTtlSeconds * 1000,
      usedAt: T0,
    })
  })

  it('stores only a hash of the code', async () => {
    const code = await issue()
    // Consuming by the raw value finds nothing, so the raw value is not the stored key.
    expect(await deps.store.codes.consume(code, T0)).toBeNull()
    expect((await redeem(code)).hash).toBe(sha256(code))
  })

  it('refuses a second redemption of the same code', async () => {
    const code = await issue()
    await redeem(code)
    await expectInvalidGrant(redeem(code))
  })

  it('lets only one of ten concurrent redemptions succeed', async () => {
    const code = await issue()
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => redeem(code)))
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
  })

  it('accepts a code until its lifetime is over and refuses it from then on', async () => {
    const early = await issue()
    const late = await issue()
    deps.clock.advance(deps.config.codeTtlSeconds * 1000 - 1)
    expect((await redeem(early)).siteId).toBe('news')
    deps.clock.advance(1)
    await expectInvalidGrant(redeem(late))
  })

  it('refuses a wrong PKCE verifier, and the code is spent by that attempt', async () => {
    const code = await issue()
    await expectInvalidGrant(redeem(code, { codeVerifier: randomSecret() }))
    await expectInvalidGrant(redeem(code))
  })

  it('refuses a code presented by another site, and the code is spent by that attempt', async () => {
    const code = await issue()
    await expectInvalidGrant(redeem(code, { site: shop }))
    await expectInvalidGrant(redeem(code))
  })

  it('refuses a code with another redirect URI, and the code is spent by that attempt', async () => {
    const code = await issue()
    await expectInvalidGrant(redeem(code, { redirectUri: `${NEWS_ORIGIN}/other` }))
    await expectInvalidGrant(redeem(code))
  })

  it.each([
    ['too short', verifier.slice(0, 42)],
    ['too long', 'a'.repeat(129)],
    ['with characters outside the PKCE set', `${verifier.slice(0, 42)}+`],
    ['empty', ''],
  ])('refuses a verifier that is %s, and the code is spent by that attempt', async (_name, codeVerifier) => {
    const code = await issue()
    await expectInvalidGrant(redeem(code, { codeVerifier }))
    await expectInvalidGrant(redeem(code))
  })

  it('refuses unknown and over-long codes', async () => {
    await expectInvalidGrant(redeem(randomSecret()))
    await expectInvalidGrant(redeem('x'.repeat(129)))
  })
})
