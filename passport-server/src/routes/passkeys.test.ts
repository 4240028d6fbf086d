import type { Hono } from 'hono'
import { beforeEach, describe, expect, test } from 'vitest'
import { PASSKEY_BINDING_COOKIE } from '../services/passkeys.ts'
import {
  type AuthorizeRequest,
  authorizeRequest,
  type CookieJar,
  cookieHeader,
  csrfOf,
  exchangeCode,
  formPost,
  fragmentOf,
  openSignInPage,
  type SignedIn,
  signIn,
  storeCookies,
} from '../test-flows.ts'
import { createTestWorld, EVIL_ORIGIN, TEST_ISSUER } from '../test-support.ts'
import { createSoftAuthenticator, type SoftAuthenticator } from '../test-webauthn.ts'

type World = Awaited<ReturnType<typeof createTestWorld>>

let world: World
let app: Hono
let authenticator: SoftAuthenticator

const SESSION = '__Host-passport_session'

async function openAccount(jar: CookieJar) {
  const res = await app.request('/account?devices=plain', { headers: { Cookie: cookieHeader(jar) } })
  storeCookies(jar, res)
  const html = await res.text()
  return { res, html, csrf: csrfOf(html) }
}

/** Adds a passkey from alice's account page, as the page script would. */
async function addPasskey(here: SignedIn, auth = authenticator) {
  const { csrf } = await openAccount(here.jar)
  const options = await formPost(app, '/account/passkeys/options', here.jar, { csrf })
  expect(options.status).toBe(200)
  const response = auth.register(await options.json())
  const res = await formPost(app, '/account/passkeys/register', here.jar, { csrf, response })
  return { res, html: await res.text() }
}

/** The sign-in page's passkey form, as the page script posts it. */
function passkeyForm(req: AuthorizeRequest, csrf: string, response: string) {
  return {
    csrf,
    client_id: req.clientId,
    redirect_uri: req.redirectUri,
    state: req.state,
    code_challenge: req.challenge,
    response_mode: 'fragment',
    response,
  }
}

/** A new browser on News: the sign-in page, options, the authenticator's answer, the post. */
async function passkeySignIn(jar: CookieJar = new Map(), overrides = {}) {
  const req = authorizeRequest('news', world.news.site.redirectUris[0])
  const csrf = await openSignInPage(app, jar, req)
  const options = await formPost(app, '/login/passkey/options', jar, { csrf })
  expect(options.status).toBe(200)
  const response = authenticator.authenticate(await options.json(), overrides)
  const res = await formPost(app, '/login/passkey', jar, passkeyForm(req, csrf, response))
  return { req, jar, res, response, csrf }
}

const jtiOf = (token: string) =>
  (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { jti: string }).jti

beforeEach(async () => {
  world = await createTestWorld()
  app = world.app
  authenticator = createSoftAuthenticator({ origin: TEST_ISSUER, rpId: 'passport.localhost' })
})

describe('passkeys on the account page', () => {
  test('adds, lists and removes a passkey', async () => {
    const here = await signIn(app, world.news, world.alice)
    const added = await addPasskey(here)
    expect(added.res.status).toBe(200)
    expect(added.html).toContain('Passkey added.')
    // The page answered is the sealed one: no passkey in it; the plain page lists it.
    expect(added.html).not.toContain(authenticator.credentialId)
    expect(added.html).toContain('data-sealed="passkeys"')
    expect((await openAccount(here.jar)).html).toContain(`data-passkey="${authenticator.credentialId}"`)
    // The page runs the passkey script and nothing else of the origin.
    expect(added.res.headers.get('Content-Security-Policy')).toContain(`${TEST_ISSUER}/passkey.js`)
    expect(added.res.headers.get('Content-Security-Policy')).not.toMatch(/script-src[^;]*'self'/)

    const { csrf } = await openAccount(here.jar)
    const removed = await formPost(app, '/account/passkeys/remove', here.jar, {
      csrf,
      passkey: authenticator.credentialId,
    })
    expect(removed.status).toBe(200)
    const html = await removed.text()
    expect(html).toContain('Passkey removed')
    expect((await openAccount(here.jar)).html).not.toContain('data-passkey=')
    expect((await world.deps.store.passkeys.get(authenticator.credentialId))?.removedAt).not.toBeNull()
  })

  test('a refused registration says its code and stores nothing', async () => {
    const here = await signIn(app, world.news, world.alice)
    const { csrf } = await openAccount(here.jar)
    const options = await formPost(app, '/account/passkeys/options', here.jar, { csrf })
    const response = authenticator.register(await options.json(), { userVerified: false })
    const res = await formPost(app, '/account/passkeys/register', here.jar, { csrf, response })
    expect(await res.text()).toContain('(user_verification_missing)')
    expect(await world.deps.store.passkeys.get(authenticator.credentialId)).toBeNull()
  })

  test('CSRF: cross-site options, register and remove are refused and change nothing', async () => {
    const here = await signIn(app, world.news, world.alice)
    const { csrf } = await openAccount(here.jar)
    const crossSite = { Origin: EVIL_ORIGIN, 'Sec-Fetch-Site': 'cross-site' }
    const options = await formPost(app, '/account/passkeys/options', here.jar, { csrf }, crossSite)
    expect(options.status).toBe(403)
    expect((await formPost(app, '/account/passkeys/options', here.jar, { csrf: 'x' })).status).toBe(403)

    const good = await formPost(app, '/account/passkeys/options', here.jar, { csrf })
    const response = authenticator.register(await good.json())
    for (const [form, headers] of [
      [{ csrf, response }, crossSite],
      [{ csrf: '', response }, {}],
      [{ response }, {}],
    ] as const) {
      const res = await formPost(app, '/account/passkeys/register', here.jar, { ...form }, headers)
      expect(res.status).toBe(403)
    }
    expect(await world.deps.store.passkeys.get(authenticator.credentialId)).toBeNull()

    // The challenge was not used by the refused posts: the real one still goes through.
    expect((await formPost(app, '/account/passkeys/register', here.jar, { csrf, response })).status).toBe(200)
    const remove = await formPost(
      app,
      '/account/passkeys/remove',
      here.jar,
      { csrf, passkey: authenticator.credentialId },
      crossSite,
    )
    expect(remove.status).toBe(403)
    expect((await world.deps.store.passkeys.get(authenticator.credentialId))?.removedAt).toBeNull()
  })

  /** @see issue 16: adding a passkey is lasting access, so a stale (perhaps stolen) session may not. */
  test('reauth_required: a sign-in older than 10 minutes gets no options and registers nothing', async () => {
    const here = await signIn(app, world.news, world.alice)
    const { csrf } = await openAccount(here.jar)
    // Options asked in time, answered within the challenge's five minutes: still accepted.
    world.deps.clock.advance(9 * 60_000)
    const options = await formPost(app, '/account/passkeys/options', here.jar, { csrf })
    expect(options.status).toBe(200)
    const response = authenticator.register(await options.json())
    world.deps.clock.advance(2 * 60_000)
    // Past the window, no new options: a stable code, nothing stored.
    const late = await formPost(app, '/account/passkeys/options', here.jar, { csrf })
    expect(late.status).toBe(403)
    expect(late.headers.get('Cache-Control')).toBe('no-store')
    expect(await late.json()).toMatchObject({ error: 'reauth_required' })
    // Past window + challenge lifetime, even a response to options asked in time is refused.
    world.deps.clock.advance(5 * 60_000)
    const res = await formPost(app, '/account/passkeys/register', here.jar, { csrf, response })
    expect(res.status).toBe(403)
    expect(await res.text()).toContain('(reauth_required)')
    expect(await world.deps.store.passkeys.get(authenticator.credentialId)).toBeNull()
    // A fresh sign-in may add it.
    const again = await signIn(app, world.news, world.alice)
    expect((await addPasskey(again)).html).toContain('Passkey added.')
  })

  test("without a session: no options; nobody removes another user's passkey", async () => {
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', world.news.site.redirectUris[0])
    const csrf = await openSignInPage(app, jar, req)
    expect((await formPost(app, '/account/passkeys/options', jar, { csrf })).status).toBe(401)

    const here = await signIn(app, world.news, world.alice)
    await addPasskey(here)
    const bob = await signIn(app, world.news, world.bob)
    const bobPage = await openAccount(bob.jar)
    const res = await formPost(app, '/account/passkeys/remove', bob.jar, {
      csrf: bobPage.csrf,
      passkey: authenticator.credentialId,
    })
    expect(res.status).toBe(404)
    expect((await world.deps.store.passkeys.get(authenticator.credentialId))?.removedAt).toBeNull()
  })
})

describe('sign-in with a passkey', () => {
  let first: SignedIn
  beforeEach(async () => {
    first = await signIn(app, world.news, world.alice)
    expect((await addPasskey(first)).res.status).toBe(200)
  })

  test('the sign-in page offers it: autofill in the username field, a button, its script', async () => {
    const req = authorizeRequest('news', world.news.site.redirectUris[0])
    const res = await app.request(
      `/authorize?${new URLSearchParams({
        response_type: 'code',
        client_id: req.clientId,
        redirect_uri: req.redirectUri,
        state: req.state,
        code_challenge: req.challenge,
        code_challenge_method: 'S256',
      })}`,
    )
    const html = await res.text()
    expect(html).toContain('autocomplete="username webauthn"')
    expect(html).toContain('Sign in with a passkey')
    expect(html).toContain('action="/login/passkey"')
    expect(res.headers.get('Content-Security-Policy')).toMatch(
      /script-src [^;]*http:\/\/passport\.localhost:8080\/passkey\.js[ ;]/,
    )
  })

  test('is a normal passport sign-in: session, code, token; newest wins on the site', async () => {
    const { req, jar, res } = await passkeySignIn()
    expect(res.status).toBe(303)
    expect(jar.get(SESSION)).toBeTruthy()
    const code = fragmentOf(res).get('code') ?? ''
    const token = await exchangeCode(app, world.news.authkey, req, code, { Origin: TEST_ISSUER })
    expect(token.status).toBe(200)
    const sessions = await world.deps.store.sessions.listByUser(world.alice.id)
    expect(sessions.map((s) => s.method).sort()).toEqual(['passkey', 'password'])
    expect(world.deps.logs.some((l) => l.event === 'session_created' && l.fields.method === 'passkey')).toBe(
      true,
    )
    // The password device's News token was replaced by this newer sign-in.
    const old = await world.deps.store.tokens.get(jtiOf(first.token))
    expect(old?.revokeReason).toBe('replaced')
    // The account page names the way in.
    expect((await openAccount(jar)).html).toContain('with a passkey')
  })

  test('the options need a same-origin post; they are never cached', async () => {
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', world.news.site.redirectUris[0])
    const csrf = await openSignInPage(app, jar, req)
    const cross = await formPost(
      app,
      '/login/passkey/options',
      jar,
      { csrf },
      {
        Origin: EVIL_ORIGIN,
        'Sec-Fetch-Site': 'cross-site',
      },
    )
    expect(cross.status).toBe(403)
    const ok = await formPost(app, '/login/passkey/options', jar, { csrf })
    expect(ok.headers.get('Cache-Control')).toBe('no-store')
    expect(jar.get(PASSKEY_BINDING_COOKIE)).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const setCookie = ok.headers.getSetCookie().join('\n')
    expect(setCookie).toMatch(/__Host-passport_webauthn=[^;]+;.*HttpOnly/)
    expect(setCookie).toMatch(/SameSite=Strict/)
  })

  test('a replayed response is refused with its code and signs nobody in', async () => {
    const { req, csrf, response, jar } = await passkeySignIn()
    const again: CookieJar = new Map([...jar].filter(([k]) => k !== SESSION))
    const res = await formPost(app, '/login/passkey', again, passkeyForm(req, csrf, response))
    expect(res.status).toBe(401)
    expect(await res.text()).toContain('(challenge_replayed)')
    expect(again.get(SESSION)).toBeUndefined()
  })

  test('a response posted from another browser (no binding cookie) is refused', async () => {
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', world.news.site.redirectUris[0])
    const csrf = await openSignInPage(app, jar, req)
    const options = await formPost(app, '/login/passkey/options', jar, { csrf })
    const response = authenticator.authenticate(await options.json())
    jar.delete(PASSKEY_BINDING_COOKIE)
    const res = await formPost(app, '/login/passkey', jar, passkeyForm(req, csrf, response))
    expect(res.status).toBe(401)
    expect(await res.text()).toContain('(challenge_unknown)')
    expect(jar.get(SESSION)).toBeUndefined()
  })

  test.each([
    ['user_verification_missing', { userVerified: false }],
    ['origin_mismatch', { origin: EVIL_ORIGIN }],
    ['rp_id_mismatch', { rpId: 'evil.localhost' }],
    ['counter_regressed', { counter: 0 }],
  ])('refuses %s on the page, signing nobody in', async (refusal, overrides) => {
    if (refusal === 'counter_regressed') expect((await passkeySignIn()).res.status).toBe(303)
    const sessionsBefore = (await world.deps.store.sessions.listByUser(world.alice.id)).length
    const { res, jar } = await passkeySignIn(new Map(), overrides)
    expect(res.status).toBe(401)
    const html = await res.text()
    expect(html).toContain(`(${refusal})`)
    // The page is the sign-in page again, with its passkey button.
    expect(html).toContain('Sign in with a passkey')
    expect(jar.get(SESSION)).toBeUndefined()
    expect((await world.deps.store.sessions.listByUser(world.alice.id)).length).toBe(sessionsBefore)
  })

  test('a removed passkey no longer signs in', async () => {
    const { csrf } = await openAccount(first.jar)
    await formPost(app, '/account/passkeys/remove', first.jar, { csrf, passkey: authenticator.credentialId })
    const { res, jar } = await passkeySignIn()
    expect(res.status).toBe(401)
    expect(await res.text()).toContain('(passkey_removed)')
    expect(jar.get(SESSION)).toBeUndefined()
  })

  test('a cross-site post of the passkey form is refused (login CSRF)', async () => {
    const jar: CookieJar = new Map()
    const req = authorizeRequest('news', world.news.site.redirectUris[0])
    const csrf = await openSignInPage(app, jar, req)
    const options = await formPost(app, '/login/passkey/options', jar, { csrf })
    const response = authenticator.authenticate(await options.json())
    const res = await formPost(app, '/login/passkey', jar, passkeyForm(req, csrf, response), {
      Origin: EVIL_ORIGIN,
      'Sec-Fetch-Site': 'cross-site',
    })
    expect(res.status).toBe(403)
    expect(jar.get(SESSION)).toBeUndefined()
  })

  test('refusals from one address are throttled like wrong passwords', async () => {
    for (let i = 0; i < 30; i++) {
      expect((await passkeySignIn(new Map(), { userVerified: false })).res.status).toBe(401)
    }
    expect((await passkeySignIn()).res.status).toBe(429)
  })
})
