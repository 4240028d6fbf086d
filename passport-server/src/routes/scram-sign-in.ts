import { Hono } from 'hono'
import { SIGN_IN_COMPLETE_PATH } from '../../../passport-frame/src/protocol/sign-in.ts'
import type { AppDeps } from '../deps.ts'
import { readForm } from '../middleware/body.ts'
import { refuseForeignPost } from '../middleware/csrf.ts'
import { renderErrorPage } from '../pages/login-page.ts'
import { sendPage } from '../pages/send-page.ts'
import { redeemSignInTicket } from '../services/sign-in-tickets.ts'
import { clientAddress } from './client-address.ts'
import { codeRedirect, readSignInParams, signInBrowser } from './sign-in-flow.ts'

/**
 * The end of a SCRAM sign-in: the page posts the one-time result the socket sealed for it,
 * top-level, with the sign-in form's parameters (never the password). The result must be
 * genuine, unused, unexpired, for this site and from the address the socket saw; then this is
 * an ordinary sign-in (session cookie, events, newest wins) ending in the code redirect.
 */
export function scramSignInRoutes(deps: AppDeps): Hono {
  const app = new Hono()
  app.post(SIGN_IN_COMPLETE_PATH, async (c) => {
    const form = await readForm(c)
    const refused = refuseForeignPost(deps, c, form.csrf, 'sign_in')
    if (refused) return refused
    const signIn = await readSignInParams(deps, form)
    if (!signIn) return sendPage(c, renderErrorPage('Unknown site or unregistered redirect address.'), 400)
    const userId = await redeemSignInTicket(deps, form.result, {
      kind: 'result',
      siteId: signIn.site.id,
      address: clientAddress(c, deps.config),
    })
    const user = userId ? await deps.store.users.findById(userId) : null
    if (!user) {
      deps.log('authn_login_fail', { site: signIn.site.id, method: 'scram', reason: 'bad_result' })
      return sendPage(
        c,
        renderErrorPage('This sign-in expired or was already used. Start again from the site.'),
        400,
      )
    }
    const session = await signInBrowser(deps, c, user.id, 'password')
    return codeRedirect(deps, c, signIn.site, session, signIn.params)
  })
  return app
}
