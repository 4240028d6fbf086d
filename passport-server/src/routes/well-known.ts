import { Hono } from 'hono'
import type { AppDeps } from '../deps.ts'
import { TOKEN_SIGNING_ALG } from '../services/id-tokens.ts'
import { CIBA_GRANT_TYPE } from './ciba.ts'

/**
 * What a site backend needs to verify tokens with standard tools: the discovery document
 * (OIDC Discovery / RFC 8414) and the JWKS. Both `no-store`: keys rotate, and a stale cached
 * document is how a rotation breaks a site.
 */
export function wellKnownRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  const issuer = deps.config.issuer
  const discovery = {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    introspection_endpoint: `${issuer}/token/introspect`,
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    revocation_endpoint: `${issuer}/token/revoke`,
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    response_types_supported: ['code'],
    // The query is the standard default (site backends); the page SDK asks for the fragment.
    response_modes_supported: ['query', 'fragment'],
    // Every answer of /authorize carries `iss` (RFC 9207): a client checks it against mix-up.
    authorization_response_iss_parameter_supported: true,
    scopes_supported: ['openid'],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'sid', 'preferred_username', 'name'],
    grant_types_supported: ['authorization_code', 'refresh_token', CIBA_GRANT_TYPE],
    // The authorization-code and refresh grants for site backends, and CIBA (poll mode; see
    // docs/device-approval.md for what is supported), all with the site's client credentials.
    token_endpoint: `${issuer}/token`,
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    backchannel_authentication_endpoint: `${issuer}/bc-authorize`,
    backchannel_token_delivery_modes_supported: ['poll'],
    backchannel_user_code_parameter_supported: false,
    code_challenge_methods_supported: ['S256'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [TOKEN_SIGNING_ALG],
    // Site-bound access tokens are RFC 9068 JWTs (`typ: at+jwt`), `aud` = the site id.
    access_token_signing_alg_values_supported: [TOKEN_SIGNING_ALG],
  }
  for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
    app.get(path, (c) => {
      c.header('Cache-Control', 'no-store')
      return c.json(discovery)
    })
  }
  app.get('/.well-known/jwks.json', (c) => {
    c.header('Cache-Control', 'no-store')
    // Signing keys, then the encryption keys browsers wrap sealed-payload keys to (`use: enc`).
    return c.json({ keys: [...deps.keys.jwks.keys, ...deps.keys.encryption.jwks] })
  })
  return app
}
