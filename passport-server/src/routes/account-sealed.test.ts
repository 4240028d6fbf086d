import { describe, expect, it } from 'vitest'
import { openSealed, wrapContentKey } from '../../../passport-frame/src/sign-in/sealed.ts'
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
