import { beforeEach, describe, expect, it } from 'vitest'
import { PassportError } from '../errors.ts'
import {
  addSite,
  allLogText,
  createTestDeps,
  EVIL_ORIGIN,
  NEWS_ORIGIN,
  SHOP_ORIGIN,
  type TestDeps,
} from '../test-support.ts'
import {
  authenticateSite,
  ensureSite,
  issueAuthkey,
  registerSite,
  resolveAuthkey,
  type SiteInput,
  validateSiteInput,
} from './registry.ts'

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`
const basicRaw = (text: string) => `Basic ${Buffer.from(text).toString('base64')}`

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (err: unknown) => err,
  )
}

describe('site registry', () => {
  describe('validateSiteInput', () => {
    it('fills in defaults: name, redirect URI per origin, password login, 900 s, one device', () => {
      expect(validateSiteInput({ id: 'news', origins: [NEWS_ORIGIN, 'https://news.example'] })).toEqual({
        id: 'news',
        name: 'news',
        origins: [NEWS_ORIGIN, 'https://news.example'],
        redirectUris: [`${NEWS_ORIGIN}/`, 'https://news.example/'],
        loginModes: ['password'],
        tokenTtlSeconds: 900,
        refreshIdleSeconds: 86_400,
        refreshAbsoluteSeconds: 30 * 86_400,
        refreshBeforeSeconds: 300,
        backchannelLogoutUri: null,
        oneDevicePerSite: true,
        dpopBoundTokens: false,
      })
    })

    it('keeps refresh-before under the token lifetime by default and refuses bad refresh lifetimes', () => {
      const short = validateSiteInput({ id: 'news', origins: [NEWS_ORIGIN], tokenTtlSeconds: 60 })
      expect(short.refreshBeforeSeconds).toBe(20)
      for (const bad of [
        { refreshBeforeSeconds: 900 },
        { refreshBeforeSeconds: 5 },
        { refreshIdleSeconds: 60 },
        { refreshIdleSeconds: 7200, refreshAbsoluteSeconds: 3600 },
        { refreshAbsoluteSeconds: 400 * 86_400 },
        { refreshIdleSeconds: 1000.5 },
      ]) {
        expect(
          () => validateSiteInput({ id: 'news', origins: [NEWS_ORIGIN], ...bad }),
          JSON.stringify(bad),
        ).toThrow(PassportError)
      }
    })

    it('keeps valid explicit values', () => {
      const input: SiteInput = {
        id: 'news-2',
        name: '  Daily News  ',
        origins: [NEWS_ORIGIN],
        redirectUris: [`${NEWS_ORIGIN}/auth/callback?x=1`],
        loginModes: ['password'],
        tokenTtlSeconds: 60,
        oneDevicePerSite: false,
      }
      expect(validateSiteInput(input)).toMatchObject({
        name: 'Daily News',
        redirectUris: [`${NEWS_ORIGIN}/auth/callback?x=1`],
        tokenTtlSeconds: 60,
        oneDevicePerSite: false,
      })
      expect(validateSiteInput({ ...input, tokenTtlSeconds: 86400 }).tokenTtlSeconds).toBe(86400)
    })

    it.each([
      'https://news.example.com',
      'http://localhost:3000',
      'http://news.localhost:8081',
      'http://127.0.0.1:8081',
      'http://127.5.6.7',
      'http://[::1]:8081',
    ])('accepts %s: https, or plain http on loopback and *.localhost only', (origin) => {
      expect(validateSiteInput({ id: 'news', origins: [origin] }).origins).toEqual([origin])
    })

    const base: SiteInput = { id: 'news', origins: [NEWS_ORIGIN] }
    it.each<[string, Partial<SiteInput>]>([
      ['an empty id', { id: '' }],
      ['an upper-case id', { id: 'News' }],
      ['an id starting with a hyphen', { id: '-news' }],
      ['an id with an underscore', { id: 'news_1' }],
      ['an id with a path', { id: '../news' }],
      ['an id with a trailing newline', { id: 'news\n' }],
      ['an id of 64 characters', { id: 'a'.repeat(64) }],
      ['no origins', { origins: [] }],
      ['an origin with a trailing slash', { origins: [`${NEWS_ORIGIN}/`] }],
      ['an origin with a path', { origins: [`${NEWS_ORIGIN}/app`] }],
      ['a wildcard origin', { origins: ['http://*.localhost:8081'] }],
      ['a bare wildcard origin', { origins: ['*'] }],
      ['an origin with userinfo', { origins: ['http://user:pw@news.localhost:8081'] }],
      ['an origin with an explicit default port', { origins: ['https://news.example:443'] }],
      ['an upper-case origin', { origins: ['http://NEWS.localhost:8081'] }],
      ['a null origin', { origins: ['null'] }],
      ['a javascript: origin', { origins: ['javascript:alert(1)'] }],
      ['a file: origin', { origins: ['file:///etc/passwd'] }],
      ['an origin without a scheme', { origins: ['news.localhost:8081'] }],
      ['one bad origin among good ones', { origins: [NEWS_ORIGIN, 'http://*.example'] }],
      ['a redirect URI on another origin', { redirectUris: [`${EVIL_ORIGIN}/`] }],
      ['a redirect URI on a look-alike origin', { redirectUris: ['http://news.localhost:80811/'] }],
      ['a redirect URI with a fragment', { redirectUris: [`${NEWS_ORIGIN}/cb#x`] }],
      ['a redirect URI with an empty fragment', { redirectUris: [`${NEWS_ORIGIN}/#`] }],
      ['a redirect URI that is not a URL', { redirectUris: ['not a url'] }],
      ['a relative redirect URI', { redirectUris: ['/cb'] }],
      ['a non-canonical redirect URI', { redirectUris: [NEWS_ORIGIN] }],
      ['a redirect URI with dot segments', { redirectUris: [`${NEWS_ORIGIN}/a/../cb`] }],
      ['an unknown login mode', { loginModes: ['magic-link'] }],
      ['an unknown login mode next to a known one', { loginModes: ['password', 'sso'] }],
      ['a token lifetime of 59 s', { tokenTtlSeconds: 59 }],
      ['a token lifetime of 86401 s', { tokenTtlSeconds: 86401 }],
      ['a zero token lifetime', { tokenTtlSeconds: 0 }],
      ['a negative token lifetime', { tokenTtlSeconds: -900 }],
      ['a fractional token lifetime', { tokenTtlSeconds: 90.5 }],
      ['a NaN token lifetime', { tokenTtlSeconds: Number.NaN }],
      ['a plain-http origin on the internet', { origins: ['http://news.example.com'] }],
      ['a plain-http origin on a private address', { origins: ['http://10.0.0.5:8080'] }],
      ['a plain-http origin that only starts like localhost', { origins: ['http://localhost.example.com'] }],
      ['a plain-http origin under a localhost look-alike', { origins: ['http://news.localhost.evil.com'] }],
    ])('A3, C6: rejects %s with invalid_request', (_name, change) => {
      let caught: unknown
      try {
        validateSiteInput({ ...base, ...change })
      } catch (err) {
        caught = err
      }
      expect(caught).toBeInstanceOf(PassportError)
      expect(caught).toMatchObject({ code: 'invalid_request', status: 400 })
    })
  })

  describe('registration and authkeys', () => {
    let deps: TestDeps
    beforeEach(async () => {
      deps = await createTestDeps()
    })

    it('registers a new site at version 1 with a working authkey and a hashed client secret', async () => {
      const { site, authkey, clientSecret } = await registerSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })
      expect(site.authkeyVersion).toBe(1)
      expect(await deps.store.sites.get('news')).toEqual(site)
      expect(site.clientSecretHash).not.toContain(clientSecret)
      expect(await resolveAuthkey(deps, authkey)).toEqual(site)
    })

    it("re-registering bumps the version and voids the site's earlier authkeys", async () => {
      const first = await registerSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })
      deps.clock.advance(5000)
      const second = await registerSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })
      expect(second.site.authkeyVersion).toBe(2)
      expect(second.site.createdAt).toBe(first.site.createdAt)
      const err = await errorOf(resolveAuthkey(deps, first.authkey))
      expect(err).toBeInstanceOf(PassportError)
      expect(err).toMatchObject({ code: 'invalid_authkey' })
      expect(await resolveAuthkey(deps, second.authkey)).toEqual(second.site)
      expect(deps.logs).toContainEqual({ event: 'authkey_invalid', fields: { site: 'news' } })
      expect(allLogText(deps.logs)).not.toContain(first.authkey)
    })

    it('refuses an authkey it has just accepted (and remembered) once the registry changed', async () => {
      const first = await registerSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })
      expect((await resolveAuthkey(deps, first.authkey)).id).toBe('news')
      await registerSite(deps, { id: 'news', origins: [NEWS_ORIGIN] }) // version 2
      expect(await errorOf(resolveAuthkey(deps, first.authkey))).toMatchObject({ code: 'invalid_authkey' })

      const shop = await registerSite(deps, { id: 'shop', origins: [SHOP_ORIGIN] })
      expect((await resolveAuthkey(deps, shop.authkey)).id).toBe('shop')
      await deps.store.sites.update({
        ...shop.site,
        origins: [NEWS_ORIGIN],
        redirectUris: [`${NEWS_ORIGIN}/`],
      })
      expect(await errorOf(resolveAuthkey(deps, shop.authkey))).toMatchObject({ code: 'invalid_authkey' })
      await deps.store.sites.remove('shop')
      expect(await errorOf(resolveAuthkey(deps, shop.authkey))).toMatchObject({ code: 'invalid_authkey' })
    })

    it('rejects an authkey whose site was removed', async () => {
      const { authkey } = await registerSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })
      await deps.store.sites.remove('news')
      expect(await errorOf(resolveAuthkey(deps, authkey))).toMatchObject({ code: 'invalid_authkey' })
    })

    it('rejects an authkey whose origins no longer match the registry', async () => {
      const { site, authkey } = await registerSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })
      await deps.store.sites.update({ ...site, origins: [SHOP_ORIGIN], redirectUris: [`${SHOP_ORIGIN}/`] })
      expect(await errorOf(resolveAuthkey(deps, authkey))).toMatchObject({ code: 'invalid_authkey' })
    })

    it.each([undefined, null, 42, {}, ['x'], '', 'not-an-authkey'])(
      'rejects a non-authkey value %j with invalid_authkey',
      async (value) => {
        expect(await errorOf(resolveAuthkey(deps, value))).toMatchObject({ code: 'invalid_authkey' })
      },
    )

    it('resolves each authkey to its own site only', async () => {
      const news = await addSite(deps, { id: 'news' })
      const shop = await addSite(deps, { id: 'shop' })
      expect((await resolveAuthkey(deps, news.authkey)).id).toBe('news')
      expect((await resolveAuthkey(deps, shop.authkey)).id).toBe('shop')
    })

    it('issues a fresh authkey at the same version without voiding the old one', async () => {
      const { site, authkey } = await registerSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })
      const again = await issueAuthkey(deps, site)
      expect(again).not.toBe(authkey)
      expect(await resolveAuthkey(deps, again)).toEqual(site)
      expect(await resolveAuthkey(deps, authkey)).toEqual(site)
    })

    describe('ensureSite', () => {
      const input: SiteInput = { id: 'news', name: 'News', origins: [NEWS_ORIGIN] }

      it('keeps the version and old authkeys when the config is unchanged, but replaces the secret', async () => {
        const first = await ensureSite(deps, input)
        const second = await ensureSite(deps, input)
        expect(second.site.authkeyVersion).toBe(first.site.authkeyVersion)
        expect(await resolveAuthkey(deps, first.authkey)).toEqual(second.site)
        expect(second.clientSecret).not.toBe(first.clientSecret)
        expect((await authenticateSite(deps, basic('news', second.clientSecret))).id).toBe('news')
        expect(await errorOf(authenticateSite(deps, basic('news', first.clientSecret)))).toMatchObject({
          code: 'invalid_client',
        })
      })

      it('bumps the version and voids old authkeys when the config changed', async () => {
        const first = await ensureSite(deps, input)
        const second = await ensureSite(deps, { ...input, tokenTtlSeconds: 300 })
        expect(second.site.authkeyVersion).toBe(first.site.authkeyVersion + 1)
        expect(await errorOf(resolveAuthkey(deps, first.authkey))).toMatchObject({ code: 'invalid_authkey' })
        expect(await resolveAuthkey(deps, second.authkey)).toEqual(second.site)
      })

      it('validates its input like registerSite', async () => {
        expect(await errorOf(ensureSite(deps, { ...input, origins: ['*'] }))).toMatchObject({
          code: 'invalid_request',
        })
        expect(await deps.store.sites.get('news')).toBeNull()
      })
    })
  })

  describe('authenticateSite', () => {
    let deps: TestDeps
    let newsSecret: string
    let shopSecret: string
    beforeEach(async () => {
      deps = await createTestDeps()
      newsSecret = (await addSite(deps, { id: 'news' })).clientSecret
      shopSecret = (await addSite(deps, { id: 'shop' })).clientSecret
    })

    it('accepts the right Basic credentials', async () => {
      expect((await authenticateSite(deps, basic('news', newsSecret))).id).toBe('news')
      expect((await authenticateSite(deps, basicRaw(`shop:${shopSecret}`))).id).toBe('shop')
    })

    it.each<[string, () => string | undefined]>([
      ['a wrong secret', () => basic('news', 'wrong-secret')],
      ["another site's secret", () => basic('news', shopSecret)],
      ['an unknown site', () => basic('nope', newsSecret)],
      ['an empty secret', () => basic('news', '')],
      ['no header', () => undefined],
      ['an empty header', () => ''],
      ['a Bearer scheme', () => `Bearer ${newsSecret}`],
      ['a scheme without a space', () => `Basic${Buffer.from(`news:${newsSecret}`).toString('base64')}`],
      ['no colon', () => basicRaw(`news${newsSecret}`)],
      ['an empty id', () => basicRaw(`:${newsSecret}`)],
      ['bad percent-encoding', () => basicRaw(`news:%E0%A4%A${newsSecret}`)],
      ['a non-base64 value', () => 'Basic !!!!'],
      ['an over-long header', () => basic('news', `${newsSecret}${'x'.repeat(1100)}`)],
    ])('B13: rejects %s with invalid_client', async (_name, header) => {
      const err = await errorOf(authenticateSite(deps, header()))
      expect(err).toBeInstanceOf(PassportError)
      expect(err).toMatchObject({ code: 'invalid_client', status: 401 })
    })

    it('logs a failed attempt without the secret', async () => {
      await errorOf(authenticateSite(deps, basic('news', shopSecret)))
      expect(deps.logs).toContainEqual({ event: 'authz_fail', fields: { site: 'news' } })
      expect(allLogText(deps.logs)).not.toContain(shopSecret)
      expect(allLogText(deps.logs)).not.toContain(newsSecret)
    })
  })
})
