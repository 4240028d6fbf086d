import { Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import type { AppDeps } from '../deps.ts'
import { findLiveSession, SESSION_COOKIE } from '../services/sessions.ts'
import { openWrappedKey, sealForKey } from '../tokens/sealed.ts'
import { listDevices } from './account.ts'

/**
 * "Your devices", sealed (issue 16 item 3): `POST /account/devices/sealed` with
 * `{ "seal": <JWE> }`, a one-time content key wrapped to the passport's `enc` key for the
 * purpose `devices`; the answer `{ "sealed": <JWE> }` is the device list under that key, so
 * only the page that made the key reads it (not a TLS-terminating box, not a body log).
 *
 * Same-origin only (the passport's own pages): `Origin` must be the issuer and, where the
 * browser says, `Sec-Fetch-Site` same-origin; the session cookie says whose devices. Refusals:
 * 401 `login_required`, 403 `origin_not_allowed`, 400 `invalid_request` (a seal that is
 * malformed, replayed, tampered, for another key or another purpose).
 */
export function accountSealedRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  app.post('/account/devices/sealed', async (c) => {
    c.header('Cache-Control', 'no-store')
    const fetchSite = c.req.header('Sec-Fetch-Site')
    if (
      c.req.header('Origin') !== deps.config.issuer ||
      (fetchSite !== undefined && fetchSite !== 'same-origin')
    ) {
      return c.json({ error: 'origin_not_allowed' }, 403)
    }
    const current = await findLiveSession(deps, getCookie(c, SESSION_COOKIE))
    if (!current) return c.json({ error: 'login_required' }, 401)
    let body: { seal?: unknown }
    try {
      body = (await c.req.json()) as { seal?: unknown }
    } catch {
      return c.json({ error: 'invalid_request' }, 400)
    }
    const key =
      typeof body?.seal === 'string'
        ? await openWrappedKey({
            keys: deps.keys,
            issuer: deps.config.issuer,
            purpose: 'devices',
            jwe: body.seal,
            nowMs: deps.clock.now(),
            claimOnce: (id, expiresAt) => deps.store.oneTimeIds.claim(id, expiresAt),
          })
        : null
    if (!key) return c.json({ error: 'invalid_request', error_description: 'bad seal' }, 400)
    const devices = await listDevices(deps, current)
    return c.json({ sealed: await sealForKey(key, { devices }) })
  })
  return app
}
