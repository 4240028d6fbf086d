import { type Context, Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import type { AppDeps } from '../deps.ts'
import { readForm } from '../middleware/body.ts'
import { isSameOriginPost, issueCsrf } from '../middleware/csrf.ts'
import { type DeviceRow, renderAccountPage } from '../pages/account-page.ts'
import { renderErrorPage } from '../pages/login-page.ts'
import { sendPage } from '../pages/send-page.ts'
import { endSession, findLiveSession, SESSION_COOKIE } from '../services/sessions.ts'
import type { SessionRecord } from '../store/types.ts'

/**
 * The passport's account page, "Your devices": every live sign-in of the user with its sites,
 * and a "Sign out" for each other one. Signing a device out ends its session like any other end:
 * logged, and pushed to its open tabs over the live channel at once (seed 001's remote logout).
 */
export function accountRoutes(deps: AppDeps): Hono {
  const app = new Hono()

  const devicesOf = async (current: SessionRecord): Promise<DeviceRow[]> => {
    const now = deps.clock.now()
    const sessions = (await deps.store.sessions.listByUser(current.userId)).filter(
      (s) => s.endedAt === null && s.expiresAt > now,
    )
    return Promise.all(
      sessions.map(async (s) => ({
        id: s.id,
        device: s.userAgent,
        sites: await deps.store.sessions.sitesOf(s.id),
        signedInAt: s.createdAt,
        lastActivityAt: await deps.store.sessions.lastActivity(s.id),
        method: 'password',
        current: s.id === current.id,
      })),
    )
  }

  const show = async (c: Context, current: SessionRecord, notice?: string) => {
    const user = await deps.store.users.findById(current.userId)
    return sendPage(
      c,
      renderAccountPage({
        username: user?.username ?? '',
        devices: await devicesOf(current),
        csrf: issueCsrf(c),
        ...(notice ? { notice } : {}),
      }),
    )
  }

  app.get('/account', async (c) => {
    const current = await findLiveSession(deps, getCookie(c, SESSION_COOKIE))
    if (!current) return sendPage(c, renderErrorPage('You are not signed in at the passport.'), 401)
    return show(c, current)
  })

  app.post('/account/sessions/end', async (c) => {
    const form = await readForm(c)
    if (!isSameOriginPost(c, form.csrf, deps.config.issuer)) {
      deps.log('malicious_csrf', { what: 'account' })
      return sendPage(c, renderErrorPage('This form expired or came from another site.'), 403)
    }
    const current = await findLiveSession(deps, getCookie(c, SESSION_COOKIE))
    if (!current) return sendPage(c, renderErrorPage('You are not signed in at the passport.'), 401)
    const target =
      form.session && form.session.length <= 64 ? await deps.store.sessions.get(form.session) : null
    // Only the user's own other devices; anything else is the same "no such device".
    if (!target || target.userId !== current.userId || target.id === current.id) {
      return sendPage(c, renderErrorPage('No such device.'), 404)
    }
    await endSession(deps, target, 'revoked')
    deps.log('session_revoked', { user: current.userId, by: 'account_page' })
    return show(c, current, 'That device is signed out.')
  })

  return app
}
