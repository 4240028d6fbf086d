import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { getCookie } from 'hono/cookie'
import { verifyPassword } from '../crypto/password.ts'
import { randomSecret, sameSecret } from '../crypto/random.ts'
import { hashScramPassword } from '../crypto/scram.ts'
import type { AppDeps } from '../deps.ts'
import { errorBody, PassportError } from '../errors.ts'
import { readForm, readJsonObject } from '../middleware/body.ts'
import { CSRF_COOKIE, issueCsrf, refuseForeignPost } from '../middleware/csrf.ts'
import { renderConsoleLogin, renderConsolePage } from '../pages/admin-page.ts'
import { renderErrorPage } from '../pages/login-page.ts'
import { sendPage } from '../pages/send-page.ts'
import { type AdminContext, adminOfCookie } from '../services/admins.ts'
import { type AuditInput, listAudit, recordAudit } from '../services/audit.ts'
import { consoleSessionRow, listConsoleSessions } from '../services/console-view.ts'
import { loginThrottleOf } from '../services/login-throttle.ts'
import { requestRefresh } from '../services/refresh-request.ts'
import { issueAuthkey, registerSite, type SiteInput, siteInputOf, updateSite } from '../services/registry.ts'
import { endSession, findLiveSession, SESSION_COOKIE } from '../services/sessions.ts'
import { endSiteAccess } from '../services/site-access.ts'
import { removeSite } from '../services/site-removal.ts'
import { createUser, resetPassword, setUserDisabled, signOutEverywhere } from '../services/users.ts'
import type { SiteRecord, UserRecord } from '../store/types.ts'
import { clientAddress } from './client-address.ts'
import { signInBrowser } from './sign-in-flow.ts'

/**
 * The operator console at `/admin` (docs/console.md). Every route but the sign-in form answers
 * 403 unless the request comes from the passport's own origin and its passport session is an
 * admin's (`users.is_admin`, not disabled); every state-changing request also repeats the CSRF
 * cookie in `X-Passport-CSRF`. Every action is in the audit log, actor = the admin's username.
 */
export const ADMIN_CSRF_HEADER = 'X-Passport-CSRF'

/**
 * Whether a request may come from where it says: no `Origin` but the passport's, and, where the
 * browser says where it comes from (`Sec-Fetch-Site`), the passport itself or the address bar.
 */
function fromOwnOrigin(c: Context, issuer: string, allowNavigation: boolean): boolean {
  const origin = c.req.header('Origin')
  if (origin !== undefined && origin !== issuer) return false
  const site = c.req.header('Sec-Fetch-Site')
  if (site === undefined || site === 'same-origin') return true
  return allowNavigation && site === 'none'
}

const CONSOLE_SCRIPT = 'admin.js'

export function adminRoutes(deps: AppDeps): Hono<{ Variables: { admin: AdminContext } }> {
  const app = new Hono<{ Variables: { admin: AdminContext } }>()
  // The same throttle as the sign-in page and socket: the console is not a way around it.
  const throttle = loginThrottleOf(deps)
  let dummyHash: Promise<string> | undefined
  let script: string | undefined

  const refuse = (c: Context, why: string) => {
    deps.log('authz_fail', { what: 'admin', why, path: c.req.path.slice(0, 100) })
    c.header('Cache-Control', 'no-store')
    if (c.req.path.startsWith('/admin/api/')) return c.json(errorBody('access_denied'), 403)
    return sendPage(c, renderErrorPage('The console is for administrators of this passport.'), 403)
  }

  const requireAdmin: MiddlewareHandler<{ Variables: { admin: AdminContext } }> = async (c, next) => {
    const navigation = c.req.method === 'GET' && !c.req.path.startsWith('/admin/api/')
    if (!fromOwnOrigin(c, deps.config.issuer, navigation)) return refuse(c, 'cross_origin')
    const admin = await adminOfCookie(deps, getCookie(c, SESSION_COOKIE))
    if (!admin) {
      // Not signed in at all: the page offers the console's sign-in; anything else is refused.
      const signedIn = await findLiveSession(deps, getCookie(c, SESSION_COOKIE))
      if (!signedIn && c.req.method === 'GET' && c.req.path === '/admin') {
        return sendPage(c, renderConsoleLogin({ csrf: issueCsrf(c) }), 401)
      }
      return refuse(c, signedIn ? 'not_admin' : 'not_signed_in')
    }
    if (c.req.method !== 'GET') {
      // Double submit: the SameSite=Strict cookie repeated in a header a cross-site page cannot set.
      const origin = c.req.header('Origin')
      const cookie = getCookie(c, CSRF_COOKIE)
      const header = c.req.header(ADMIN_CSRF_HEADER)
      if (origin !== deps.config.issuer || !cookie || !header || !sameSecret(cookie, header)) {
        deps.log('malicious_csrf', { what: 'admin', origin: origin?.slice(0, 100) })
        return refuse(c, 'csrf')
      }
    }
    c.set('admin', admin)
    c.header('Cache-Control', 'no-store')
    await next()
    return undefined
  }

  // The sign-in form: the only console route open to everyone (it signs in, nothing more).
  app.get('/admin/login', (c) => sendPage(c, renderConsoleLogin({ csrf: issueCsrf(c) })))
  app.post('/admin/login', async (c) => {
    const form = await readForm(c)
    const refused = refuseForeignPost(deps, c, form.csrf, 'sign_in')
    if (refused) return refused
    const username = (form.username ?? '').slice(0, 64)
    const password = (form.password ?? '').slice(0, 256)
    const address = clientAddress(c, deps.config)
    const gate = await throttle.check(username, address)
    if (!gate.allowed && gate.scope === 'address') {
      c.header('Retry-After', String(gate.retryAfterSeconds))
      return sendPage(c, renderErrorPage('Too many sign-in attempts from here. Try again later.'), 429)
    }
    const user = username ? await deps.store.users.findByUsername(username) : null
    // A dummy credential of the kind real ones are (SCRAM, PBKDF2): an unknown name takes as long.
    dummyHash ??= hashScramPassword(randomSecret(), deps.config.scramIterations)
    const ok = await verifyPassword(password, user?.passwordHash ?? (await dummyHash))
    // A non-admin gets the same answer as a wrong password: the form tells nobody who is an admin.
    if (!user || !ok || !gate.allowed || user.disabled || !user.isAdmin) {
      const locked = await throttle.failed(username, address)
      deps.log(locked ? 'authn_login_lock' : 'authn_login_fail', { what: 'admin' })
      return sendPage(
        c,
        renderConsoleLogin({ csrf: issueCsrf(c), error: 'Wrong username or password.', username }),
        401,
      )
    }
    await throttle.succeeded(username)
    await signInBrowser(deps, c, user.id, 'password')
    await recordAudit(deps, { type: 'console_sign_in', actor: user.username, userId: user.id })
    c.header('Cache-Control', 'no-store')
    return c.redirect('/admin', 303)
  })

  app.use('/admin', requireAdmin)
  app.use('/admin/*', requireAdmin)

  app.get('/admin', (c) => {
    const { user } = c.get('admin')
    return sendPage(
      c,
      renderConsolePage({ issuer: deps.config.issuer, username: user.username, csrf: issueCsrf(c) }),
    )
  })

  app.get('/admin/console.js', async (c) => {
    try {
      script ??= await readFile(path.join(deps.config.assetsDir, CONSOLE_SCRIPT), 'utf8')
    } catch {
      deps.log('asset_missing', { file: CONSOLE_SCRIPT })
      throw new PassportError('temporarily_unavailable', 'browser files are not built; run `npm run build`')
    }
    c.header('Content-Type', 'text/javascript; charset=utf-8')
    return c.body(script)
  })

  /** Records a console action, actor = the admin. */
  const audit = (c: Context<{ Variables: { admin: AdminContext } }>, input: Omit<AuditInput, 'actor'>) =>
    recordAudit(deps, { ...input, actor: c.get('admin').user.username })

  const siteJson = (site: SiteRecord) => {
    const { clientSecretHash: _secret, ...shown } = site
    return shown
  }
  const findSite = async (id: string) => {
    const site = id.length <= 64 ? await deps.store.sites.get(id) : null
    if (!site) throw new PassportError('not_found', 'no such site')
    return site
  }
  const findUser = async (id: string) => {
    const user = id.length <= 128 ? await deps.store.users.findById(id) : null
    if (!user) throw new PassportError('not_found', 'no such user')
    return user
  }
  const findSession = async (id: string) => {
    const session = id.length <= 128 ? await deps.store.sessions.get(id) : null
    if (!session) throw new PassportError('not_found', 'no such session')
    return session
  }

  // ---- sites
  app.get('/admin/api/sites', async (c) => c.json({ sites: (await deps.store.sites.list()).map(siteJson) }))

  app.post('/admin/api/sites', async (c) => {
    const input = readSiteInput(await readJsonObject(c))
    if (await deps.store.sites.get(input.id))
      throw new PassportError('invalid_request', `site ${input.id} exists`)
    const registered = await registerSite(deps, input)
    await audit(c, {
      type: 'console_site_registered',
      siteId: registered.site.id,
      detail: { version: registered.site.authkeyVersion },
    })
    return c.json({
      site: siteJson(registered.site),
      authkey: registered.authkey,
      clientSecret: registered.clientSecret,
    })
  })

  app.post('/admin/api/sites/:id', async (c) => {
    const site = await findSite(c.req.param('id'))
    const input = readSiteInput({ ...(await readJsonObject(c)), id: site.id })
    const updated = await updateSite(deps, input)
    if (!updated) throw new PassportError('not_found', 'no such site')
    await audit(c, {
      type: 'console_site_updated',
      siteId: site.id,
      detail: { version: updated.site.authkeyVersion, authkey_rotated: updated.rotated },
    })
    return c.json({ site: siteJson(updated.site), authkey: updated.authkey, rotated: updated.rotated })
  })

  app.get('/admin/api/sites/:id/authkey', async (c) => {
    const site = await findSite(c.req.param('id'))
    await audit(c, { type: 'console_authkey_shown', siteId: site.id })
    return c.json({ authkey: await issueAuthkey(deps, site), version: site.authkeyVersion })
  })

  app.post('/admin/api/sites/:id/rotate-authkey', async (c) => {
    const site = await findSite(c.req.param('id'))
    const updated = await updateSite(deps, siteInputOf(site), { rotateAuthkey: true })
    if (!updated) throw new PassportError('not_found', 'no such site')
    await audit(c, {
      type: 'console_authkey_rotated',
      siteId: site.id,
      detail: { version: updated.site.authkeyVersion },
    })
    return c.json({ authkey: updated.authkey, version: updated.site.authkeyVersion })
  })

  app.post('/admin/api/sites/:id/refresh-before', async (c) => {
    const site = await findSite(c.req.param('id'))
    const seconds = (await readJsonObject(c)).seconds
    if (typeof seconds !== 'number') throw new PassportError('invalid_request', 'seconds must be a number')
    const updated = await updateSite(deps, { ...siteInputOf(site), refreshBeforeSeconds: seconds })
    if (!updated) throw new PassportError('not_found', 'no such site')
    await audit(c, { type: 'console_refresh_lead_changed', siteId: site.id, detail: { seconds } })
    return c.json({ site: siteJson(updated.site) })
  })

  app.post('/admin/api/sites/:id/remove', async (c) => {
    const site = await findSite(c.req.param('id'))
    await removeSite(deps, site.id)
    await audit(c, { type: 'console_site_removed', siteId: site.id })
    return c.json({ removed: true })
  })

  // ---- users
  const userJson = (u: UserRecord) => ({
    id: u.id,
    username: u.username,
    name: u.name,
    createdAt: u.createdAt,
    isAdmin: u.isAdmin === true,
    disabled: u.disabled === true,
  })
  app.get('/admin/api/users', async (c) => c.json({ users: (await deps.store.users.list()).map(userJson) }))

  app.post('/admin/api/users', async (c) => {
    const body = await readJsonObject(c)
    const user = await createUser(deps, {
      username: String(body.username ?? ''),
      name: String(body.name ?? ''),
      password: String(body.password ?? ''),
      isAdmin: body.isAdmin === true,
    })
    await audit(c, {
      type: 'console_user_added',
      userId: user.id,
      detail: { username: user.username, admin: user.isAdmin === true },
    })
    return c.json({ user: userJson(user) })
  })

  app.post('/admin/api/users/:id/password', async (c) => {
    const user = await findUser(c.req.param('id'))
    const ended = await resetPassword(deps, user, String((await readJsonObject(c)).password ?? ''))
    await audit(c, { type: 'console_password_reset', userId: user.id, detail: { sessions_ended: ended } })
    return c.json({ sessionsEnded: ended })
  })

  app.post('/admin/api/users/:id/disabled', async (c) => {
    const user = await findUser(c.req.param('id'))
    const disabled = (await readJsonObject(c)).disabled
    if (typeof disabled !== 'boolean')
      throw new PassportError('invalid_request', 'disabled must be true or false')
    const ended = await setUserDisabled(deps, user, disabled)
    await audit(c, {
      type: disabled ? 'console_user_disabled' : 'console_user_enabled',
      userId: user.id,
      detail: { sessions_ended: ended },
    })
    return c.json({ sessionsEnded: ended })
  })

  app.post('/admin/api/users/:id/admin', async (c) => {
    const user = await findUser(c.req.param('id'))
    const isAdmin = (await readJsonObject(c)).isAdmin
    if (typeof isAdmin !== 'boolean')
      throw new PassportError('invalid_request', 'isAdmin must be true or false')
    await deps.store.users.setAdmin(user.id, isAdmin)
    await audit(c, { type: isAdmin ? 'console_admin_granted' : 'console_admin_revoked', userId: user.id })
    return c.json({ isAdmin })
  })

  app.post('/admin/api/users/:id/sign-out', async (c) => {
    const user = await findUser(c.req.param('id'))
    const ended = await signOutEverywhere(deps, user.id)
    await audit(c, { type: 'console_user_signed_out', userId: user.id, detail: { sessions_ended: ended } })
    return c.json({ sessionsEnded: ended })
  })

  // ---- sessions
  app.get('/admin/api/sessions', async (c) =>
    c.json({ now: deps.clock.now(), sessions: await listConsoleSessions(deps) }),
  )

  app.post('/admin/api/sessions/:id/sign-out', async (c) => {
    const session = await findSession(c.req.param('id'))
    await endSession(deps, session, 'revoked')
    await audit(c, { type: 'console_device_signed_out', userId: session.userId, sessionId: session.id })
    return c.json({ ended: true })
  })

  app.post('/admin/api/sessions/:id/sites/:site/end', async (c) => {
    const session = await findSession(c.req.param('id'))
    const siteId = c.req.param('site').slice(0, 64)
    const ended = await endSiteAccess(deps, { sessionId: session.id, userId: session.userId }, siteId)
    await audit(c, {
      type: 'console_site_ended',
      userId: session.userId,
      sessionId: session.id,
      siteId,
      detail: { ended },
    })
    return c.json({ ended })
  })

  app.post('/admin/api/sessions/:id/sites/:site/refresh', async (c) => {
    const session = await findSession(c.req.param('id'))
    const site = await findSite(c.req.param('site'))
    const { requestId } = await requestRefresh(deps, { sessionId: session.id, siteId: site.id })
    await audit(c, {
      type: 'console_refresh_now',
      userId: session.userId,
      sessionId: session.id,
      siteId: site.id,
    })
    return c.json({ requestId, row: await consoleSessionRow(deps, session.id) })
  })

  // ---- audit log
  app.get('/admin/api/audit', async (c) => {
    const q = c.req.query()
    const time = (value: string | undefined) => {
      if (!value) return undefined
      const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
      if (!Number.isFinite(ms))
        throw new PassportError('invalid_request', 'times are ISO 8601 or milliseconds')
      return ms
    }
    let userId = q.user
    if (userId && !userId.startsWith('u_'))
      userId = (await deps.store.users.findByUsername(userId))?.id ?? userId
    const events = await listAudit(deps, {
      ...(userId ? { userId } : {}),
      ...(q.site ? { siteId: q.site } : {}),
      ...(q.type ? { type: q.type } : {}),
      ...(time(q.since) !== undefined ? { since: time(q.since) as number } : {}),
      ...(time(q.until) !== undefined ? { until: time(q.until) as number } : {}),
      ...(q.before && /^\d+$/.test(q.before) ? { beforeId: Number(q.before) } : {}),
      ...(q.limit && /^\d+$/.test(q.limit) ? { limit: Number(q.limit) } : {}),
    })
    return c.json({ events })
  })

  app.post('/admin/logout', async (c) => {
    const { session, user } = c.get('admin')
    await endSession(deps, session, 'signed_out')
    await recordAudit(deps, {
      type: 'console_sign_out',
      actor: user.username,
      userId: user.id,
      sessionId: session.id,
    })
    return c.json({ signedOut: true })
  })

  app.all('/admin/*', () => {
    throw new PassportError('not_found', 'no such console route')
  })
  return app
}

/** A site's settings from the console's JSON (the same validation as the CLI, in `registry.ts`). */
function readSiteInput(body: Record<string, unknown>): SiteInput {
  const strings = (name: string) => {
    const v = body[name]
    if (v === undefined) return undefined
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string') || v.length > 32)
      throw new PassportError('invalid_request', `${name} must be a list of strings`)
    return v as string[]
  }
  const number = (name: string) => {
    const v = body[name]
    if (v === undefined || v === null || v === '') return undefined
    if (typeof v !== 'number') throw new PassportError('invalid_request', `${name} must be a number`)
    return v
  }
  const bool = (name: string) => {
    const v = body[name]
    if (v === undefined) return undefined
    if (typeof v !== 'boolean') throw new PassportError('invalid_request', `${name} must be true or false`)
    return v
  }
  const id = body.id
  if (typeof id !== 'string') throw new PassportError('invalid_request', 'id is required')
  const input: SiteInput = { id, origins: strings('origins') ?? [] }
  if (typeof body.name === 'string') input.name = body.name.slice(0, 64)
  const redirectUris = strings('redirectUris')
  if (redirectUris) input.redirectUris = redirectUris
  const loginModes = strings('loginModes')
  if (loginModes) input.loginModes = loginModes
  for (const key of [
    'tokenTtlSeconds',
    'refreshIdleSeconds',
    'refreshAbsoluteSeconds',
    'refreshBeforeSeconds',
  ] as const) {
    const v = number(key)
    if (v !== undefined) input[key] = v
  }
  for (const key of ['oneDevicePerSite', 'dpopBoundTokens'] as const) {
    const v = bool(key)
    if (v !== undefined) input[key] = v
  }
  if (typeof body.backchannelLogoutUri === 'string' && body.backchannelLogoutUri)
    input.backchannelLogoutUri = body.backchannelLogoutUri
  return input
}
