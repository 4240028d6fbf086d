import { type Context, Hono } from 'hono'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import type { AppDeps } from '../deps.ts'
import { readForm } from '../middleware/body.ts'
import { issueCsrf, refuseForeignPost } from '../middleware/csrf.ts'
import { renderDeviceWaitPage } from '../pages/device-sign-in-page.ts'
import { type AuthorizeParams, renderErrorPage } from '../pages/login-page.ts'
import { sendPage } from '../pages/send-page.ts'
import type { ApprovalRefusal, DeviceApprovals } from '../services/device-approval.ts'
import { clientAddress } from './client-address.ts'
import { codeRedirect, cookieOptions, readSignInParams, signInBrowser } from './sign-in-flow.ts'

/** The new browser's proof that the request is its own: only this browser ever holds it. */
export const APPROVAL_COOKIE = '__Host-passport_approval'
/** The long poll's longest wait; a decision ends it at once. */
const WAIT_MS = 20_000

/** What the new browser is told when no request is opened. */
const refusals: Record<ApprovalRefusal, { message: string; status: 403 | 429 }> = {
  too_many_pending: {
    message:
      'Too many sign-in requests are waiting for this account. Answer them on your other device, or wait two minutes.',
    status: 429,
  },
  rate_limited: { message: 'Too many sign-in requests. Try again later.', status: 429 },
  // A plain refusal: the requester learns nothing about who denied or why.
  blocked: {
    message: 'Sign-in with another device is not available for this account right now.',
    status: 403,
  },
  mode_not_allowed: { message: 'This site does not offer sign-in with another device.', status: 403 },
}

/** The sign-in parameters as the passport's forms carry them (what `readSignInParams` reads). */
const signInForm = (p: AuthorizeParams) => ({
  client_id: p.clientId,
  redirect_uri: p.redirectUri,
  state: p.state,
  code_challenge: p.codeChallenge,
  response_mode: p.responseMode,
})

/**
 * "Sign in with another device" on the new browser: `POST /login/device` opens a request and
 * shows the code, `GET /login/device/wait` long-polls its outcome, `POST /login/device/complete`
 * turns an approval into a normal passport session and the usual code back to the site.
 */
export function deviceSignInRoutes(deps: AppDeps, approvals: DeviceApprovals): Hono {
  const app = new Hono()

  const showRequest = async (c: Context) => {
    const view = await approvals.view(getCookie(c, APPROVAL_COOKIE), 'browser')
    if (!view) return sendPage(c, renderErrorPage('There is no sign-in request from this browser.'), 404)
    const site = await deps.store.sites.get(view.siteId)
    const params = JSON.parse(view.context) as Record<string, string>
    return sendPage(
      c,
      renderDeviceWaitPage({
        view,
        siteName: site?.name ?? view.siteId,
        csrf: issueCsrf(c),
        siteOrigin: new URL(params.redirect_uri as string).origin,
      }),
    )
  }

  app.post('/login/device', async (c) => {
    const form = await readForm(c)
    const refused = refuseForeignPost(deps, c, form.csrf, 'sign_in')
    if (refused) return refused
    const signIn = await readSignInParams(deps, form)
    if (!signIn) return sendPage(c, renderErrorPage('Unknown site or unregistered redirect address.'), 400)
    const username = (form.username ?? '').trim()
    if (!username || username.length > 64) {
      return sendPage(c, renderErrorPage('Enter your username to sign in with another device.'), 400)
    }
    const result = await approvals.request({
      username,
      site: signIn.site,
      kind: 'browser',
      context: JSON.stringify(signInForm(signIn.params)),
      userAgent: c.req.header('User-Agent') ?? '',
      address: clientAddress(c, deps.config),
    })
    if (!result.ok) {
      if (result.retryAfterSeconds > 0) c.header('Retry-After', String(result.retryAfterSeconds))
      const { message, status } = refusals[result.refusal]
      return sendPage(c, renderErrorPage(message), status)
    }
    setCookie(c, APPROVAL_COOKIE, result.secret, { ...cookieOptions, sameSite: 'Strict', maxAge: 300 })
    // Post/redirect/get: a reload of the waiting page never opens a second request.
    return c.redirect('/login/device', 303)
  })

  app.get('/login/device', (c) => showRequest(c))

  app.get('/login/device/wait', async (c) => {
    c.header('Cache-Control', 'no-store')
    const secret = getCookie(c, APPROVAL_COOKIE)
    const before = await approvals.view(secret, 'browser')
    if (!before) return c.json({ status: 'gone' }, 404)
    if (before.status === 'pending') {
      await approvals.waitForChange(
        before.id,
        Math.max(0, Math.min(WAIT_MS, before.expiresAt - deps.clock.now())),
      )
    }
    return c.json({ status: (await approvals.view(secret, 'browser'))?.status ?? 'gone' })
  })

  app.post('/login/device/complete', async (c) => {
    const form = await readForm(c)
    const refused = refuseForeignPost(deps, c, form.csrf, 'sign_in')
    if (refused) return refused
    const approval = await approvals.redeem(getCookie(c, APPROVAL_COOKIE), 'browser')
    if (!approval || approval.userId === null) return showRequest(c)
    deleteCookie(c, APPROVAL_COOKIE, cookieOptions)
    // The parameters were fixed when the request was made; the site is checked again now.
    const signIn = await readSignInParams(deps, JSON.parse(approval.context))
    if (!signIn) return sendPage(c, renderErrorPage('Unknown site or unregistered redirect address.'), 400)
    const session = await signInBrowser(deps, c, approval.userId, 'device_approval')
    deps.log('authn_device_approval', { user: approval.userId, approval: approval.id })
    return codeRedirect(deps, c, signIn.site, session, signIn.params)
  })

  app.post('/login/device/cancel', async (c) => {
    const form = await readForm(c)
    const refused = refuseForeignPost(deps, c, form.csrf, 'sign_in')
    if (refused) return refused
    await approvals.withdraw(getCookie(c, APPROVAL_COOKIE), 'browser')
    return showRequest(c)
  })

  return app
}
