import { describe, expect, test } from 'vitest'
import { basicAuth, frameApi, signIn, sitePost } from '../test-flows.ts'
import { createTestWorld, NEWS_ORIGIN, storedFamily } from '../test-support.ts'
import { registerSite, resolveAuthkey } from './registry.ts'
import { removeSite } from './site-removal.ts'

describe('site remove', () => {
  test("C6: ends the site's live tokens and refresh families at once, pushed as site_access_ended", async () => {
    const { app, deps, news, shop, alice } = await createTestWorld()
    const signedIn = await signIn(app, news, alice)
    const onShop = await signIn(app, shop, alice)
    const published: unknown[] = []
    deps.events.subscribe((e) => published.push(e))

    expect(await removeSite(deps, 'news')).toBe(true)

    const introspected = await deps.store.tokens.get(JSON.parse(atob(signedIn.token.split('.')[1] ?? '')).jti)
    expect(introspected?.revokedAt).toBe(deps.clock.now())
    const refreshed = await frameApi(app, 'token', {
      grant_type: 'refresh_token',
      authkey: news.authkey,
      refresh_token: signedIn.body.refresh_token,
    })
    expect(refreshed.status).toBe(400) // the authkey itself is dead now
    expect(await storedFamily(deps.store, signedIn.body.refresh_token)).toMatchObject({
      revokeReason: 'revoked',
    })
    expect(published).toContainEqual(
      expect.objectContaining({
        type: 'site_access_ended',
        siteId: 'news',
        userId: alice.id,
        reason: 'revoked',
      }),
    )
    // Other sites are untouched.
    const shopAuth = basicAuth('shop', shop.clientSecret)
    expect(
      await (await sitePost(app, '/token/introspect', { token: onShop.token }, shopAuth)).json(),
    ).toMatchObject({
      active: true,
    })
    expect(await removeSite(deps, 'news')).toBe(false)
  })

  test('C6: a removed id registered again never revives its old authkeys, tokens or refresh credentials', async () => {
    const { app, deps, news, alice } = await createTestWorld()
    const signedIn = await signIn(app, news, alice)
    await removeSite(deps, 'news')
    const again = await registerSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })
    expect(again.site.authkeyVersion).toBe(news.site.authkeyVersion + 1)
    await expect(resolveAuthkey(deps, news.authkey)).rejects.toMatchObject({ code: 'invalid_authkey' })
    // Even with the new site's valid authkey, the old refresh credential and token stay dead.
    const refreshed = await frameApi(app, 'token', {
      grant_type: 'refresh_token',
      authkey: again.authkey,
      refresh_token: signedIn.body.refresh_token,
    })
    expect(refreshed.status).toBe(400)
    expect(await refreshed.json()).toMatchObject({ error: 'invalid_grant' })
    const auth = basicAuth('news', again.clientSecret)
    expect(await (await sitePost(app, '/token/introspect', { token: signedIn.token }, auth)).json()).toEqual({
      active: false,
    })
    // Removed twice and added again: still counting up.
    await removeSite(deps, 'news')
    expect((await registerSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })).site.authkeyVersion).toBe(
      again.site.authkeyVersion + 1,
    )
  })
})
