import { beforeEach, describe, expect, test } from 'vitest'
import type { SessionRecord, UserRecord } from '../store/types.ts'
import { addUser, createTestDeps, TEST_ISSUER, type TestDeps } from '../test-support.ts'
import { createSoftAuthenticator, type SoftAuthenticator } from '../test-webauthn.ts'
import { CHALLENGE_TTL_MS, createPasskeys, MAX_PASSKEYS_PER_USER, type Passkeys } from './passkeys.ts'
import { startSession } from './sessions.ts'

const RP_ID = 'passport.localhost'
const BINDING = 'b'.repeat(43)

let deps: TestDeps
let passkeys: Passkeys
let alice: UserRecord
let session: SessionRecord
let authenticator: SoftAuthenticator

async function register(auth = authenticator, overrides = {}) {
  const options = await passkeys.registrationOptions({ user: alice, session, binding: BINDING })
  return passkeys.register({
    response: auth.register(options, overrides),
    user: alice,
    session,
    binding: BINDING,
  })
}

async function signIn(overrides = {}, binding = BINDING) {
  const options = await passkeys.authenticationOptions(BINDING)
  return passkeys.authenticate({ response: authenticator.authenticate(options, overrides), binding })
}

/** What a refusal must leave as it was: the passkey row (counter, backup flag, use time). */
const passkeyRow = async () => deps.store.passkeys.get(authenticator.credentialId)

beforeEach(async () => {
  deps = await createTestDeps()
  passkeys = createPasskeys(deps)
  alice = await addUser(deps, 'alice')
  session = (await startSession(deps, alice.id, 'test')).session
  authenticator = createSoftAuthenticator({ origin: TEST_ISSUER, rpId: RP_ID })
})

describe('passkey registration', () => {
  test('registers a user-verified passkey with its counter and backup state', async () => {
    const result = await register()
    expect(result.ok).toBe(true)
    const row = await passkeyRow()
    expect(row).toMatchObject({
      userId: alice.id,
      counter: 0,
      backedUp: true,
      deviceType: 'multiDevice',
      transports: ['internal'],
      removedAt: null,
    })
    expect(await passkeys.list(alice.id)).toHaveLength(1)
  })

  test('asks for a discoverable, user-verified credential, excluding those already registered', async () => {
    const first = await passkeys.registrationOptions({ user: alice, session, binding: BINDING })
    expect(first.authenticatorSelection).toMatchObject({
      residentKey: 'required',
      userVerification: 'required',
    })
    expect(first.rp.id).toBe(RP_ID)
    expect(first.attestation).toBe('none')
    await passkeys.register({
      response: authenticator.register(first),
      user: alice,
      session,
      binding: BINDING,
    })
    const second = await passkeys.registrationOptions({ user: alice, session, binding: BINDING })
    expect(second.excludeCredentials?.map((c) => c.id)).toEqual([authenticator.credentialId])
    // One user handle per user: never the user id or name.
    expect(second.user.id).toBe(first.user.id)
    expect(second.user.id).not.toContain(alice.id)
  })

  test.each([
    ['user_verification_missing', { userVerified: false }],
    ['user_presence_missing', { userPresent: false }],
    ['origin_mismatch', { origin: 'http://evil.localhost:8083' }],
    ['origin_mismatch', { crossOrigin: true }],
    ['rp_id_mismatch', { rpId: 'evil.localhost' }],
    ['invalid_response', { type: 'webauthn.get' }],
  ])('refuses %s, storing nothing (%o)', async (refusal, overrides) => {
    expect(await register(authenticator, overrides)).toEqual({ ok: false, refusal })
    expect(await passkeyRow()).toBeNull()
  })

  test('refuses a replayed and an expired registration challenge', async () => {
    const options = await passkeys.registrationOptions({ user: alice, session, binding: BINDING })
    const response = authenticator.register(options)
    expect((await passkeys.register({ response, user: alice, session, binding: BINDING })).ok).toBe(true)
    expect(await passkeys.register({ response, user: alice, session, binding: BINDING })).toEqual({
      ok: false,
      refusal: 'challenge_replayed',
    })
    const other = createSoftAuthenticator({ origin: TEST_ISSUER, rpId: RP_ID })
    const late = await passkeys.registrationOptions({ user: alice, session, binding: BINDING })
    deps.clock.advance(CHALLENGE_TTL_MS)
    expect(
      await passkeys.register({ response: other.register(late), user: alice, session, binding: BINDING }),
    ).toEqual({ ok: false, refusal: 'challenge_expired' })
    expect(await deps.store.passkeys.get(other.credentialId)).toBeNull()
  })

  test('refuses a challenge given to another browser, another session or for sign-in', async () => {
    const options = await passkeys.registrationOptions({ user: alice, session, binding: BINDING })
    const response = authenticator.register(options)
    expect(await passkeys.register({ response, user: alice, session, binding: 'c'.repeat(43) })).toEqual({
      ok: false,
      refusal: 'challenge_unknown',
    })

    const bob = await addUser(deps, 'bob')
    const bobSession = (await startSession(deps, bob.id, 'test')).session
    const forBob = await passkeys.registrationOptions({ user: alice, session, binding: BINDING })
    expect(
      await passkeys.register({
        response: authenticator.register(forBob),
        user: bob,
        session: bobSession,
        binding: BINDING,
      }),
    ).toEqual({ ok: false, refusal: 'challenge_unknown' })

    const signInChallenge = await passkeys.authenticationOptions(BINDING)
    expect(
      await passkeys.register({
        response: authenticator.register({ challenge: signInChallenge.challenge, user: options.user }),
        user: alice,
        session,
        binding: BINDING,
      }),
    ).toEqual({ ok: false, refusal: 'challenge_unknown' })
    expect(await passkeyRow()).toBeNull()
  })

  test('refuses garbage, the same credential twice, and more than the per-user limit', async () => {
    for (const response of [
      undefined,
      '',
      '{',
      '{}',
      JSON.stringify({ id: 'x', rawId: 'y', type: 'public-key' }),
    ]) {
      expect(await passkeys.register({ response, user: alice, session, binding: BINDING })).toEqual({
        ok: false,
        refusal: 'invalid_response',
      })
    }
    expect((await register()).ok).toBe(true)
    expect(await register()).toEqual({ ok: false, refusal: 'credential_exists' })
    for (let i = 1; i < MAX_PASSKEYS_PER_USER; i++) {
      expect((await register(createSoftAuthenticator({ origin: TEST_ISSUER, rpId: RP_ID }))).ok).toBe(true)
    }
    expect(await register(createSoftAuthenticator({ origin: TEST_ISSUER, rpId: RP_ID }))).toEqual({
      ok: false,
      refusal: 'too_many_passkeys',
    })
  })
})

describe('passkey sign-in', () => {
  beforeEach(async () => {
    expect((await register()).ok).toBe(true)
  })

  test('signs in with a user-verified assertion and records the counter and use', async () => {
    deps.clock.advance(1000)
    expect(await signIn()).toEqual({ ok: true, userId: alice.id, passkeyId: authenticator.credentialId })
    expect(await passkeyRow()).toMatchObject({ counter: 1, backedUp: true, lastUsedAt: deps.clock.now() })
    expect(await signIn()).toMatchObject({ ok: true })
    expect((await passkeyRow())?.counter).toBe(2)
    expect(deps.logs.filter((l) => l.event === 'authn_passkey')).toHaveLength(2)
  })

  test('asks for user verification and lets the browser pick any discoverable passkey', async () => {
    const options = await passkeys.authenticationOptions(BINDING)
    expect(options.userVerification).toBe('required')
    expect(options.rpId).toBe(RP_ID)
    expect(options.allowCredentials ?? []).toEqual([])
  })

  const refusals: [string, Record<string, unknown>][] = [
    ['user_verification_missing', { userVerified: false }],
    ['user_presence_missing', { userPresent: false }],
    ['origin_mismatch', { origin: 'http://evil.localhost:8083' }],
    ['origin_mismatch', { crossOrigin: true }],
    ['rp_id_mismatch', { rpId: 'evil.localhost' }],
    ['unknown_credential', { credentialId: 'AAAAAAAAAAAAAAAAAAAAAA' }],
    ['invalid_signature', { wrongKey: true }],
    ['invalid_response', { type: 'webauthn.create' }],
  ]
  test.each(refusals)('refuses %s, changing nothing (%o)', async (refusal, overrides) => {
    await signIn()
    const before = await passkeyRow()
    expect(await signIn(overrides)).toEqual({ ok: false, refusal })
    expect(await passkeyRow()).toEqual(before)
    expect(deps.logs.at(-1)).toMatchObject({ event: 'authn_passkey_fail', fields: { refusal } })
  })

  test('refuses a replayed challenge, even with a fresh assertion over it', async () => {
    const options = await passkeys.authenticationOptions(BINDING)
    const response = authenticator.authenticate(options)
    expect((await passkeys.authenticate({ response, binding: BINDING })).ok).toBe(true)
    const before = await passkeyRow()
    expect(await passkeys.authenticate({ response, binding: BINDING })).toEqual({
      ok: false,
      refusal: 'challenge_replayed',
    })
    expect(
      await passkeys.authenticate({ response: authenticator.authenticate(options), binding: BINDING }),
    ).toEqual({ ok: false, refusal: 'challenge_replayed' })
    expect(await passkeyRow()).toEqual(before)
  })

  test('refuses an expired challenge (the first response that names it still uses it up)', async () => {
    const options = await passkeys.authenticationOptions(BINDING)
    deps.clock.advance(CHALLENGE_TTL_MS - 1)
    const almost = await passkeys.authenticationOptions(BINDING)
    deps.clock.advance(1)
    expect(
      await passkeys.authenticate({ response: authenticator.authenticate(options), binding: BINDING }),
    ).toEqual({ ok: false, refusal: 'challenge_expired' })
    expect(await passkeyRow()).toMatchObject({ counter: 0, lastUsedAt: null })
    expect(
      (await passkeys.authenticate({ response: authenticator.authenticate(almost), binding: BINDING })).ok,
    ).toBe(true)
  })

  test('refuses a challenge from another browser, and one never given', async () => {
    expect(await signIn({}, 'c'.repeat(43))).toEqual({ ok: false, refusal: 'challenge_unknown' })
    const options = await passkeys.authenticationOptions(BINDING)
    expect(
      await passkeys.authenticate({ response: authenticator.authenticate(options), binding: undefined }),
    ).toEqual({ ok: false, refusal: 'challenge_unknown' })
    expect(await signIn({ challenge: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })).toEqual({
      ok: false,
      refusal: 'challenge_unknown',
    })
    expect(await passkeyRow()).toMatchObject({ counter: 0, lastUsedAt: null })
  })

  test('refuses a counter that does not grow (a cloned authenticator), changing nothing', async () => {
    await signIn({ counter: 5 })
    const before = await passkeyRow()
    expect(before?.counter).toBe(5)
    for (const counter of [5, 4, 0]) {
      expect(await signIn({ counter })).toEqual({ ok: false, refusal: 'counter_regressed' })
    }
    expect(await passkeyRow()).toEqual(before)
    expect(await signIn({ counter: 6 })).toMatchObject({ ok: true })
  })

  test('an authenticator that keeps no counter (always 0) is accepted', async () => {
    expect(await signIn({ counter: 0 })).toMatchObject({ ok: true })
    expect(await signIn({ counter: 0 })).toMatchObject({ ok: true })
  })

  test('of two uses racing with one counter value, exactly one signs in', async () => {
    const [a, b] = await Promise.all([
      passkeys.authenticationOptions(BINDING),
      passkeys.authenticationOptions(BINDING),
    ])
    const results = await Promise.all([
      passkeys.authenticate({ response: authenticator.authenticate(a, { counter: 1 }), binding: BINDING }),
      passkeys.authenticate({ response: authenticator.authenticate(b, { counter: 1 }), binding: BINDING }),
    ])
    expect(results.filter((r) => r.ok)).toHaveLength(1)
    expect(results.find((r) => !r.ok)).toEqual({ ok: false, refusal: 'counter_regressed' })
  })

  test('a removed passkey no longer signs in, and only its owner can remove it', async () => {
    const bob = await addUser(deps, 'bob')
    expect(await passkeys.remove(bob.id, authenticator.credentialId)).toBe(false)
    expect(await passkeys.remove(alice.id, authenticator.credentialId)).toBe(true)
    expect(await passkeys.remove(alice.id, authenticator.credentialId)).toBe(false)
    expect(await passkeys.list(alice.id)).toEqual([])
    expect(await signIn()).toEqual({ ok: false, refusal: 'passkey_removed' })
    expect(await passkeyRow()).toMatchObject({ counter: 0, lastUsedAt: null })
  })
})
