import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { serve } from '@hono/node-server'
import { serveStatic } from '@hono/node-server/serve-static'
import { Hono } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import * as client from 'openid-client'
import { renderSignedIn } from '../demo-sites/docs/sign-in-html.ts'
import { docsPage } from '../demo-sites/server/docs-site.ts'

/**
 * The classic peer of the hop (bench-baseline.md): node-oidc-provider 9 as the passport side,
 * and two relying parties on Hono with `openid-client` on their servers ("peer-news", where the
 * user signs in first, and "peer-shop", the hop's target). A page of peer-shop with no session
 * 302s to `/auth?prompt=none`, the provider 303s back to `/cb`, the code is exchanged on the
 * server (client_secret_basic, PKCE), and `/cb` 302s to the page: the same shape as Docs.
 */
export interface PeerPorts {
  provider: number
  news: number
  shop: number
}

export function peerUrls(ports: PeerPorts) {
  return {
    provider: `http://peer-passport.localhost:${ports.provider}`,
    news: `http://peer-news.localhost:${ports.news}`,
    shop: `http://peer-shop.localhost:${ports.shop}`,
  }
}

/** Node does not resolve *.localhost: the relying parties reach the provider on loopback. */
function loopbackFetch(port: number): client.CustomFetch {
  return (url, options) => {
    const target = new URL(url)
    target.hostname = '127.0.0.1'
    target.port = String(port)
    return fetch(target, options as RequestInit)
  }
}

function relyingParty(input: {
  url: string
  clientId: string
  secret: string
  issuer: string
  providerPort: number
  /** Built demo pages: the signed-in answer is then the Docs page itself (else a bare line). */
  distDir?: string
}) {
  const app = new Hono()
  const docs = input.distDir ? docsPage(input.distDir) : null
  if (input.distDir) {
    app.use('/assets/*', serveStatic({ root: input.distDir }))
    // The Docs page's script listens here for a sign-out; 204 tells it not to reconnect.
    app.get('/passport/events', (c) => c.body(null, 204))
  }
  const pending = new Map<string, { verifier: string; state: string }>()
  const sessions = new Map<string, string>()
  // The provider's metadata as discovery would give it, with its public URLs (the browser's
  // view); this server reaches the same endpoints on loopback. (Discovery itself, on loopback,
  // would hand out loopback URLs: node-oidc-provider builds them from the request's host.)
  const config = new client.Configuration(
    {
      issuer: input.issuer,
      authorization_endpoint: `${input.issuer}/auth`,
      token_endpoint: `${input.issuer}/token`,
      jwks_uri: `${input.issuer}/jwks`,
      authorization_response_iss_parameter_supported: true,
      code_challenge_methods_supported: ['S256'],
    },
    input.clientId,
    undefined,
    client.ClientSecretBasic(input.secret),
  )
  client.allowInsecureRequests(config)
  config[client.customFetch] = loopbackFetch(input.providerPort)
  const configReady = Promise.resolve(config)

  app.get('/', async (c) => {
    const user = sessions.get(getCookie(c, 's') ?? '')
    if (user) {
      const html = docs
        ? docs.render(renderSignedIn({ username: user, name: user }), true)
        : `<!doctype html><title>peer</title><p>Signed in as ${user}</p>`
      return c.html(html, 200, { 'Cache-Control': 'no-store' })
    }
    const config = await configReady
    const verifier = client.randomPKCECodeVerifier()
    const state = client.randomState()
    const key = randomBytes(16).toString('base64url')
    pending.set(key, { verifier, state })
    setCookie(c, 'p', key, { httpOnly: true, sameSite: 'Lax', path: '/' })
    const target = client.buildAuthorizationUrl(config, {
      redirect_uri: `${input.url}/cb`,
      scope: 'openid',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      ...(c.req.query('login') ? {} : { prompt: 'none' }),
    })
    return c.redirect(target.href, 302)
  })

  app.get('/cb', async (c) => {
    const config = await configReady
    const key = getCookie(c, 'p') ?? ''
    const flow = pending.get(key)
    pending.delete(key)
    if (!flow) return c.text('no sign-in in flight', 400)
    const current = new URL(c.req.url)
    const tokens = await client.authorizationCodeGrant(config, new URL(`${input.url}/cb${current.search}`), {
      pkceCodeVerifier: flow.verifier,
      expectedState: flow.state,
    })
    const session = randomBytes(16).toString('base64url')
    sessions.set(session, String(tokens.claims()?.sub))
    setCookie(c, 's', session, { httpOnly: true, sameSite: 'Lax', path: '/' })
    return c.redirect('/', 302)
  })
  return app
}

// Untyped package (no @types wanted for a benchmark): only what is used here is described.
type Grant = { addOIDCScope(scope: string): void; save(): Promise<unknown> }
interface GrantContext {
  oidc: {
    client?: { clientId: string }
    session?: { accountId?: string; grantIdFor(clientId: string): string | undefined }
    provider: {
      Grant: {
        new (input: { clientId: string; accountId: string }): Grant
        find(id: string): Promise<Grant | undefined>
      }
    }
  }
}
type ProviderClass = new (issuer: string, config: unknown) => { callback(): http.RequestListener }

/**
 * `distDir` (the built demo pages): peer-shop answers a signed-in page with the very page Docs
 * renders (same HTML, inline styles and script), so that the hop is compared like for like.
 */
export async function startPeer(
  ports: PeerPorts,
  options: { distDir?: string } = {},
): Promise<{ close(): void }> {
  const specifier = 'oidc-provider'
  const { default: Provider } = (await import(specifier)) as { default: ProviderClass }
  const urls = peerUrls(ports)
  const client = (id: 'news' | 'shop') => ({
    client_id: `peer-${id}`,
    client_secret: `peer-${id}-secret`,
    redirect_uris: [`${urls[id]}/cb`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })
  const provider = new Provider(urls.provider, {
    clients: [client('news'), client('shop')],
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    findAccount: async (_ctx: unknown, id: string) => ({ accountId: id, claims: async () => ({ sub: id }) }),
    // First-party clients: the grant is given, no consent screen (as a site of the passport).
    loadExistingGrant: async (ctx: GrantContext) => {
      const { oidc } = ctx
      if (!oidc.client || !oidc.session?.accountId) return undefined
      const grantId = oidc.session.grantIdFor(oidc.client.clientId)
      if (grantId) return oidc.provider.Grant.find(grantId)
      const grant = new oidc.provider.Grant({
        clientId: oidc.client.clientId,
        accountId: oidc.session.accountId,
      })
      grant.addOIDCScope('openid')
      await grant.save()
      return grant
    },
  })
  const providerServer = http.createServer(provider.callback()).listen(ports.provider, '127.0.0.1')
  const site = (id: 'news' | 'shop') =>
    relyingParty({
      url: urls[id],
      clientId: `peer-${id}`,
      secret: `peer-${id}-secret`,
      issuer: urls.provider,
      providerPort: ports.provider,
      ...(id === 'shop' && options.distDir ? { distDir: options.distDir } : {}),
    })
  const servers = [
    serve({ fetch: site('news').fetch, port: ports.news, hostname: '127.0.0.1' }),
    serve({ fetch: site('shop').fetch, port: ports.shop, hostname: '127.0.0.1' }),
  ]
  return {
    close: () => {
      providerServer.close()
      for (const s of servers) s.close()
    },
  }
}
