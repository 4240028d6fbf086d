import { type Context, Hono } from 'hono'
import type { AppDeps } from '../deps.ts'
import { readForm } from '../middleware/body.ts'
import { issueCsrf, refuseForeignPost } from '../middleware/csrf.ts'
import { type DeviceRow, renderAccountPage } from '../pages/account-page.ts'
import { renderErrorPage } from '../pages/login-page.ts'
import { passkeyScriptUrl } from '../pages/passkey-parts.ts'
import { sendPage } from '../pages/send-page.ts'
import {
  type DecisionOutcome,
  type DeviceApprovals,
  pendingPrompts,
  readAnswer,
  waitForNotice,
} from '../services/device-approval.ts'
import { createPasskeys } from '../services/passkeys.ts'
import { endSession } from '../services/sessions.ts'
import { describeUserAgent } from '../services/user-agent.ts'
import type { SessionRecord, SignInMethod } from '../store/types.ts'
import { passkeyAccountRoutes } from './passkeys.ts'
import { sessionFromCookies } from './session-cookies.ts'

/**
 * The passport's account page, "Your devices": every live sign-in of the user with its sites,
 * and a "Sign out" for each other one. Signing a device out ends its session like any other end:
 * logged, and pushed to its open tabs over the live channel at once (seed 001's remote logout).
 */
const decisionNotices: Record<DecisionOutcome['outcome'], string> = {
  approved: 'Approved: the other device is signing in.',
  mismatch:
    'That is not the number shown on the other device: the request is cancelled and the other device was not signed in.',
  denied:
    'Denied: the other device was not signed in, and no new sign-in request for your account is shown for an hour.',
  gone: 'That sign-in request is no longer open.',
  not_yours: 'That sign-in request is no longer open.',
}

const methodLabels: Record<SignInMethod, string> = {
  password: 'password',
  device_approval: 'approval on another device',
  ciba: 'a backchannel request approved on another device',
  passkey: 'a passkey',
}

/** The longest an account page's watch waits before asking again. */
const WATCH_MS = 25_000

/** The user's live sign-ins ("Your devices"), the current one marked. */
export async function listDevices(deps: AppDeps, current: SessionRecord): Promise<DeviceRow[]> {
  const now = deps.clock.now()
  const sessions = (await deps.store.sessions.listByUser(current.userId)).filter(
    (s) => s.endedAt === null && s.expiresAt > now,
  )
  const names = new Map<string, string>()
  const siteName = async (id: string) => {
    if (!names.has(id)) names.set(id, (await deps.store.sites.get(id))?.name ?? id)
    return names.get(id) as string
  }
  return Promise.all(
    sessions.map(async (s) => ({
      id: s.id,
      device: s.method === 'ciba' ? s.userAgent : describeUserAgent(s.userAgent),
      sites: await Promise.all((await deps.store.sessions.sitesOf(s.id)).map(siteName)),
      signedInAt: s.createdAt,
      lastActivityAt: await deps.store.sessions.lastActivity(s.id),
      method: methodLabels[s.method ?? 'password'],
      current: s.id === current.id,
    })),
  )
}

export function accountRoutes(deps: AppDeps, approvals: DeviceApprovals): Hono {
  const app = new Hono()
  const passkeys = createPasskeys(deps)

  const devicesOf = (current: SessionRecord) => listDevices(deps, current)

  const show = async (c: Context, current: SessionRecord, notice?: string, devicesMode?: 'plain') => {
    const user = await deps.store.users.findById(current.userId)
    // Sealed (the default) the HTML carries no device, passkey or sign-in request: the page
    // script fetches each sealed. `plain` (`?devices=plain`) is the no-JavaScript page.
    const plain = devicesMode === 'plain'
    return sendPage(
      c,
      renderAccountPage({
        username: user?.username ?? '',
        devices: plain ? await devicesOf(current) : [],
        ...(devicesMode ? { devicesMode } : {}),
        signInScript: `${deps.config.issuer}/sign-in.js`,
        scramIterations: deps.config.scramIterations,
        approvals: plain ? await pendingPrompts(deps, current.userId) : [],
        csrf: issueCsrf(c),
        ...(notice ? { notice } : {}),
        passkeys: {
          list: plain ? await passkeys.list(current.userId) : [],
          script: passkeyScriptUrl(deps.config.issuer),
        },
      }),
    )
  }

  app.get('/account', async (c) => {
    const current = await sessionFromCookies(deps, c)
    if (!current) return sendPage(c, renderErrorPage('You are not signed in at the passport.'), 401)
    return show(c, current, undefined, c.req.query('devices') === 'plain' ? 'plain' : undefined)
  })

  /** A post of one of this page's forms by the signed-in user, or the page that refuses it. */
  const readAccountPost = async (
    c: Context,
  ): Promise<{ form: Record<string, string>; current: SessionRecord } | { refused: Response }> => {
    const form = await readForm(c)
    const refused = refuseForeignPost(deps, c, form.csrf, 'account')
    if (refused) return { refused }
    const current = await sessionFromCookies(deps, c)
    if (!current) {
      return { refused: sendPage(c, renderErrorPage('You are not signed in at the passport.'), 401) }
    }
    return { form, current }
  }

  app.route('/', passkeyAccountRoutes(deps, { readAccountPost, show }, passkeys))

  app.post('/account/sessions/end', async (c) => {
    const post = await readAccountPost(c)
    if ('refused' in post) return post.refused
    const { form, current } = post
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

  app.post('/account/approvals/decide', async (c) => {
    const post = await readAccountPost(c)
    if ('refused' in post) return post.refused
    const { form, current } = post
    const answer = readAnswer(form.code, form.deny === undefined ? undefined : form.deny === '1')
    if (!answer) return sendPage(c, renderErrorPage('Type the two digits, or deny.'), 400)
    const decided = await approvals.decide({
      approvalId: (form.approval ?? '').slice(0, 64),
      approver: current,
      answer,
    })
    return show(c, current, decisionNotices[decided.outcome])
  })

  /** Answers `{changed: true}` when a sign-in request of this user opens or closes (long poll). */
  app.get('/account/approvals/wait', async (c) => {
    c.header('Cache-Control', 'no-store')
    const current = await sessionFromCookies(deps, c)
    if (!current) return c.json({ error: 'login_required' }, 401)
    const changed = await waitForNotice(deps, (notice) => notice.userId === current.userId, WATCH_MS)
    return c.json({ changed })
  })

  return app
}
