import { Hono } from 'hono'
import { sameSecret } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { readJsonObject, requireString } from '../middleware/body.ts'
import { createStoreLiveAuthenticator, LIVE_CREDENTIAL_LIMITS } from '../services/live-auth.ts'

/**
 * Socket authentication for a WebSocket server that runs apart from the passport: it sends its
 * socket's challenge, the frame's token and proof, and the site, with the shared
 * `liveValidationSecret`; the passport answers with who the socket belongs to (200) or 401.
 * Absent (404) unless that secret is configured.
 */
export function liveInternalRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  const secret = deps.config.liveValidationSecret
  if (!secret) return app
  const authenticator = createStoreLiveAuthenticator(deps)

  app.post('/internal/live/validate', async (c) => {
    c.header('Cache-Control', 'no-store')
    if (!sameSecret(c.req.header('Authorization') ?? '', `Bearer ${secret}`)) {
      deps.log('authz_fail', { what: 'live_validate' })
      throw new PassportError('invalid_client', 'wrong or missing validation secret')
    }
    const body = await readJsonObject(c)
    const binding = await authenticator.authenticate({
      token: requireString(body, 'token', LIVE_CREDENTIAL_LIMITS.token),
      proof: requireString(body, 'proof', LIVE_CREDENTIAL_LIMITS.proof),
      nonce: requireString(body, 'nonce', 128),
      siteId: requireString(body, 'site', 64),
    })
    if (!binding) throw new PassportError('invalid_token', 'the token or its proof is not valid')
    return c.json(binding)
  })
  return app
}
