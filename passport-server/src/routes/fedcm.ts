import { type Context, Hono } from 'hono'
import type { AppDeps } from '../deps.ts'
import { readForm } from '../middleware/body.ts'
import { renderFedcmLoginPage } from '../pages/fedcm-login-page.ts'
import { sendPage } from '../pages/send-page.ts'
import { issueCode } from '../services/codes.ts'
import { endSiteAccess } from '../services/site-access.ts'
import type { SessionRecord, SiteRecord } from '../store/types.ts'
import { sessionFromCookies } from './session-cookies.ts'
import { isCodeChallenge } from './sign-in-flow.ts'

/**
 * The passport as a FedCM identity provider (W3C Federated Credential Management; docs/fedcm.md).
 *
 * The browser, not the site, makes these requests, and marks them `Sec-Fetch-Dest: webidentity`:
 * a page's own `fetch` cannot set that header, so its absence refuses a forged cross-site post
 * (CSRF) on every endpoint that reads the session cookie. The accounts request carries the
 * `SameSite=None` session cookie and no `Origin` (the browser keeps the site from learning
 * anything before the user chooses); the assertion and disconnect requests carry both, and
 * `Origin` must be one of the registered origins of the site named by `client_id`, a site that
 * opted in with `--fedcm true`.
 *
 * The assertion is not a token: it is a one-time code bound to the nonce the SDK sent (the PKCE
 * challenge of a verifier only the SDK holds) and to the requesting origin. The frame redeems it
 * with the same exchange as the redirect's code, so newest-wins, events and the DPoP binding of
 * the sign-in to the frame's key apply unchanged.
 */
export const FEDCM_PATHS = {
  config: '/fedcm/config.json',
  accounts: '/fedcm/accounts',
  clientMetadata: '/fedcm/client-metadata',
  assertion: '/fedcm/assertion',
  disconnect: '/fedcm/disconnect',
  login: '/fedcm/sign-in',
} as const

type Refusal = { status: 400 | 401 | 403 | 404; code: string; log: string }

export function fedcmRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  const issuer = deps.config.issuer

  // The browser fetches these on behalf of the site's page: the default `same-origin` resource
  // policy would block them (ERR_BLOCKED_BY_RESPONSE). What each may reveal is decided below.
  for (const path of ['/.well-known/web-identity', '/fedcm/*']) {
    app.use(path, async (c, next) => {
      await next()
      c.res.headers.set('Cross-Origin-Resource-Policy', 'cross-origin') // not c.header(): see request-context.ts
    })
  }

  app.get('/.well-known/web-identity', (c) => {
    c.header('Cache-Control', 'no-store')
    // With client metadata in use, Chromium wants the accounts endpoint and login URL named here
    // as well (so a config file per site cannot be used to track which site asks).
    return c.json({
      provider_urls: [`${issuer}${FEDCM_PATHS.config}`],
      accounts_endpoint: `${issuer}${FEDCM_PATHS.accounts}`,
      login_url: `${issuer}${FEDCM_PATHS.login}`,
    })
  })

  app.get(FEDCM_PATHS.config, (c) => {
    c.header('Cache-Control', 'no-store')
    return c.json({
      accounts_endpoint: `${issuer}${FEDCM_PATHS.accounts}`,
      client_metadata_endpoint: `${issuer}${FEDCM_PATHS.clientMetadata}`,
      id_assertion_endpoint: `${issuer}${FEDCM_PATHS.assertion}`,
      disconnect_endpoint: `${issuer}${FEDCM_PATHS.disconnect}`,
      login_url: `${issuer}${FEDCM_PATHS.login}`,
      branding: { background_color: '#1f3a5f', color: '#ffffff', name: 'Passport' },
    })
  })

  /** Only the browser's own FedCM fetches: a page cannot set this header, a form cannot either. */
  const fromBrowserFedcm = (c: Context) => c.req.header('Sec-Fetch-Dest') === 'webidentity'

  const refuse = (
    c: Context,
    refusal: Refusal,
    cors: string | null,
    detail: Record<string, unknown> = {},
  ) => {
    deps.log(refusal.log, detail)
    c.header('Cache-Control', 'no-store')
    if (cors) corsHeaders(c, cors)
    // The FedCM error shape: the browser reads `error.code` (and would open `error.url`).
    return c.json({ error: { code: refusal.code } }, refusal.status)
  }

  app.get(FEDCM_PATHS.accounts, async (c) => {
    c.header('Cache-Control', 'no-store')
    if (!fromBrowserFedcm(c)) {
      return refuse(c, { status: 403, code: 'invalid_request', log: 'fedcm_refused' }, null, {
        what: 'accounts',
        why: 'not_webidentity',
      })
    }
    const session = await sessionFromCookies(deps, c)
    if (!session) {
      // No account: the browser shows nothing and records the passport as logged out.
      c.header('Set-Login', 'logged-out')
      return c.json({ error: { code: 'login_required' } }, 401)
    }
    const user = await deps.store.users.findById(session.userId)
    if (!user) return c.json({ error: { code: 'login_required' } }, 401)
    // No `approved_clients`: the browser's own record of which sites the user chose decides
    // whether it is a returning sign-in (a list from here would tell the browser more than it saw).
    return c.json({
      accounts: [{ id: user.id, name: user.name, given_name: user.name, username: user.username }],
    })
  })

  app.get(FEDCM_PATHS.clientMetadata, async (c) => {
    c.header('Cache-Control', 'no-store')
    if (!fromBrowserFedcm(c)) {
      return refuse(c, { status: 403, code: 'invalid_request', log: 'fedcm_refused' }, null, {
        what: 'client_metadata',
        why: 'not_webidentity',
      })
    }
    const site = await fedcmSite(c.req.query('client_id'))
    if (!site) {
      return refuse(c, { status: 404, code: 'invalid_client', log: 'fedcm_refused' }, null, {
        what: 'client_metadata',
        why: 'unknown_client',
      })
    }
    return c.json({
      ...(site.privacyPolicyUrl ? { privacy_policy_url: site.privacyPolicyUrl } : {}),
      ...(site.termsOfServiceUrl ? { terms_of_service_url: site.termsOfServiceUrl } : {}),
    })
  })

  const fedcmSite = async (clientId: string | undefined): Promise<SiteRecord | null> => {
    if (!clientId || clientId.length > 64) return null
    const site = await deps.store.sites.get(clientId)
    return site?.fedcm ? site : null
  }

  /**
   * The checks the assertion and disconnect requests share, in this order: the browser made it,
   * the site exists and opted in, `Origin` is one of *its* origins (another registered site
   * naming this one's `client_id` gets nothing), and the passport session is live.
   */
  const checkSiteRequest = async (
    c: Context,
    what: 'assertion' | 'disconnect',
    form: Record<string, string>,
  ): Promise<{ site: SiteRecord; session: SessionRecord; origin: string } | Response> => {
    c.header('Cache-Control', 'no-store')
    const origin = c.req.header('Origin') ?? ''
    if (!fromBrowserFedcm(c)) {
      return refuse(c, { status: 403, code: 'invalid_request', log: 'malicious_csrf' }, null, {
        what: `fedcm_${what}`,
        origin: origin.slice(0, 100),
      })
    }
    const site = await fedcmSite(form.client_id)
    if (!site?.origins.includes(origin)) {
      // Neither an unknown site nor an origin that is not the site's learns which one it was,
      // and no CORS header lets the calling page read even that.
      return refuse(c, { status: 403, code: 'access_denied', log: 'malicious_cors' }, null, {
        what: `fedcm_${what}`,
        origin: origin.slice(0, 100),
        client: site ? site.id : undefined,
      })
    }
    const session = await sessionFromCookies(deps, c)
    if (!session) {
      c.header('Set-Login', 'logged-out')
      return refuse(c, { status: 401, code: 'login_required', log: 'fedcm_refused' }, origin, {
        what,
        why: 'no_session',
      })
    }
    return { site, session, origin }
  }

  app.post(FEDCM_PATHS.assertion, async (c) => {
    const form = await readForm(c)
    const checked = await checkSiteRequest(c, 'assertion', form)
    if (checked instanceof Response) return checked
    const { site, session, origin } = checked
    const nonce = readNonce(form)
    if (form.account_id !== session.userId || !isCodeChallenge(nonce)) {
      return refuse(c, { status: 400, code: 'invalid_request', log: 'fedcm_refused' }, origin, {
        what: 'assertion',
        why: form.account_id !== session.userId ? 'other_account' : 'bad_nonce',
      })
    }
    // A device that lost this site (signed in elsewhere, revoked, disconnected) signs in again
    // with its password: the SDK falls back to the passport's page, which says why.
    const exclusion = await deps.store.sessions.exclusion(session.id, site.id)
    if (exclusion) {
      return refuse(c, { status: 403, code: 'access_denied', log: 'fedcm_refused' }, origin, {
        what: 'assertion',
        why: 'excluded',
      })
    }
    // The code's "redirect URI" is the exact origin that asked: the frame names it at the
    // exchange, so a code taken to another origin of the same site does not redeem.
    const code = await issueCode(deps, { site, session, redirectUri: origin, codeChallenge: nonce })
    deps.log('fedcm_assertion', {
      site: site.id,
      user: session.userId,
      auto: form.is_auto_selected === 'true',
    })
    corsHeaders(c, origin)
    return c.json({ token: code })
  })

  app.post(FEDCM_PATHS.disconnect, async (c) => {
    const form = await readForm(c)
    const checked = await checkSiteRequest(c, 'disconnect', form)
    if (checked instanceof Response) return checked
    const { site, session, origin } = checked
    // `IdentityCredential.disconnect()`: the user took the site's access back. This device
    // loses the site as on a revocation (its tokens and refresh credentials there end, its open
    // tabs are told) and is not signed in there again silently.
    await endSiteAccess(deps, { sessionId: session.id, userId: session.userId }, site.id)
    deps.log('fedcm_disconnect', { site: site.id, user: session.userId })
    corsHeaders(c, origin)
    return c.json({ account_id: session.userId })
  })

  // Where the browser's "sign in to the passport" dialog sends a signed-out user who pressed a
  // FedCM button. The page closes itself (the pop-up has no site to come back to) and the SDK
  // falls back to the redirect, which has.
  app.get(FEDCM_PATHS.login, (c) => sendPage(c, renderFedcmLoginPage()))

  return app
}

/** The FedCM nonce: top-level `nonce` (older browsers) or `params.nonce` (current ones), one value. */
function readNonce(form: Record<string, string>): string | undefined {
  let fromParams: unknown
  if (form.params !== undefined && form.params.length <= 2048) {
    try {
      fromParams = (JSON.parse(form.params) as { nonce?: unknown } | null)?.nonce
    } catch {
      return undefined
    }
  }
  if (fromParams !== undefined && typeof fromParams !== 'string') return undefined
  if (fromParams !== undefined && form.nonce !== undefined && fromParams !== form.nonce) return undefined
  return (fromParams as string | undefined) ?? form.nonce
}

function corsHeaders(c: Context, origin: string): void {
  c.header('Access-Control-Allow-Origin', origin)
  c.header('Access-Control-Allow-Credentials', 'true')
  c.header('Vary', 'Origin')
}
