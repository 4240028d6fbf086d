import { Hono } from 'hono'
import { sameSecret } from '../auth/random.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import { readJsonObject, requireString } from '../middleware/body.ts'
import { createStoreTicketValidator } from '../services/live-tickets.ts'

/**
 * Ticket validation for a WebSocket server that runs apart from the passport, authenticated
 * with the shared `liveValidationSecret`. Absent (404) unless that secret is configured.
 */
export function liveInternalRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  const secret = deps.config.liveValidationSecret
  if (!secret) return app
  const validator = createStoreTicketValidator(deps)

  app.post('/internal/live/validate', async (c) => {
    c.header('Cache-Control', 'no-store')
    if (!sameSecret(c.req.header('Authorization') ?? '', `Bearer ${secret}`)) {
      deps.log('authz_fail', { what: 'live_validate' })
      throw new PassportError('invalid_client', 'wrong or missing validation secret')
    }
    const body = await readJsonObject(c)
    const binding = await validator.validate({
      ticket: requireString(body, 'ticket', 128),
      registrationCode: requireString(body, 'registration_code', 128),
    })
    if (!binding) throw new PassportError('invalid_token', 'the ticket is not valid')
    return c.json(binding)
  })
  return app
}
