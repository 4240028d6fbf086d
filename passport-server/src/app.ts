import { Hono } from 'hono'
import type { AppDeps } from './deps.ts'
import { createErrorHandler, errorBody } from './errors.ts'
import { limitBody } from './middleware/body.ts'
import { securityHeaders } from './middleware/security-headers.ts'
import { requestContext, withRequestId } from './observability/request-context.ts'
import { accountRoutes } from './routes/account.ts'
import { accountSealedRoutes } from './routes/account-sealed.ts'
import { adminRoutes } from './routes/admin.ts'
import { authorizeRoutes } from './routes/authorize.ts'
import { cibaRoutes } from './routes/ciba.ts'
import { deviceSignInRoutes } from './routes/device-sign-in.ts'
import { fedcmRoutes } from './routes/fedcm.ts'
import { frameRoutes } from './routes/frame.ts'
import { frameApiRoutes } from './routes/frame-api.ts'
import { createDrainState, type DrainState, healthRoutes } from './routes/health.ts'
import { liveInternalRoutes } from './routes/live-internal.ts'
import { passkeySignInRoutes } from './routes/passkeys.ts'
import { refreshRequestRoutes } from './routes/refresh-request.ts'
import { scramSignInRoutes } from './routes/scram-sign-in.ts'
import { siteApiRoutes } from './routes/site-api.ts'
import { tokenRoutes } from './routes/token.ts'
import { wellKnownRoutes } from './routes/well-known.ts'
import { createDeviceApprovals } from './services/device-approval.ts'
import { createDpopProofs } from './services/dpop-proofs.ts'

/**
 * Builds the passport HTTP app from its dependencies. No listening, no globals, no environment:
 * `main.ts` does those, tests call `app.request()` directly.
 *
 * @example
 * const app = createApp({ config, store, keys, clock: systemClock, events, log })
 * const res = await app.request('/.well-known/jwks.json')
 */
export function createApp(deps: AppDeps, options: { drain?: DrainState } = {}): Hono {
  // Every line logged while a request is handled carries its id (X-Request-Id). Set on the deps
  // themselves, not a copy: whoever holds them (tests, the live server) sees one object.
  // `createDeps` already did it; this is for deps made elsewhere (idempotent).
  deps.log = withRequestId(deps.log)
  const app = new Hono()
  app.use(requestContext(deps.log))
  // Outermost, so that every answer is counted, refusals by the middlewares below included.
  if (deps.metrics) app.use(deps.metrics.middleware())
  app.use(securityHeaders())
  app.use(limitBody(deps.config.maxBodyBytes))
  // One per app: it holds the request rate limits every way in shares.
  const approvals = createDeviceApprovals(deps)
  // One per app: it holds the proofs seen (replay) and makes the nonces the frame pages carry.
  const proofs = createDpopProofs(deps)
  app.route('/', authorizeRoutes(deps))
  app.route('/', scramSignInRoutes(deps))
  app.route('/', deviceSignInRoutes(deps, approvals))
  app.route('/', passkeySignInRoutes(deps))
  const ciba = cibaRoutes(deps, approvals)
  app.route('/', ciba.routes)
  app.route('/', tokenRoutes(deps, ciba.tokenGrant))
  app.route('/', accountRoutes(deps, approvals))
  app.route('/', accountSealedRoutes(deps))
  app.route('/', frameRoutes(deps, proofs))
  app.route('/', frameApiRoutes(deps, approvals, proofs))
  app.route('/', siteApiRoutes(deps))
  app.route('/', refreshRequestRoutes(deps))
  app.route('/', wellKnownRoutes(deps))
  app.route('/', fedcmRoutes(deps))
  app.route('/', liveInternalRoutes(deps))
  // Load-balancer checks; `drain` is set by the graceful shutdown (server.ts).
  app.route('/', healthRoutes(deps, options.drain ?? createDrainState()))
  app.route('/', adminRoutes(deps))
  app.get('/', (c) => c.text('Passport is running. Sites embed /passport.js.'))
  app.notFound((c) => c.json(errorBody('not_found'), 404))
  app.onError(createErrorHandler(deps.log))
  return app
}
