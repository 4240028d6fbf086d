import type { Context } from 'hono'
import { deleteCookie, getCookie } from 'hono/cookie'
import type { AppDeps } from '../deps.ts'
import { CROSS_SITE_COOKIE, findLiveSession, SESSION_COOKIE } from '../services/sessions.ts'
import type { SessionRecord } from '../store/types.ts'

/**
 * The passport session a request carries, in either of its two cookies (`Lax` for top-level
 * navigations, `None` for the FedCM requests and a frame with storage access). A cookie that
 * names an ended or expired session is cleared on the way, with `Set-Login: logged-out`: the
 * browser's login status then matches the passport (FedCM shows no stale account chooser).
 */
export async function sessionFromCookies(
  deps: Pick<AppDeps, 'store' | 'clock' | 'config'>,
  c: Context,
): Promise<SessionRecord | null> {
  const value = getCookie(c, SESSION_COOKIE) ?? getCookie(c, CROSS_SITE_COOKIE)
  if (value === undefined) return null
  const session = await findLiveSession(deps, value)
  if (!session) clearSessionCookies(c)
  return session
}

/** Sign-out on this browser: both session cookies go, and the browser learns it (Login Status API). */
export function clearSessionCookies(c: Context): void {
  const options = { path: '/', secure: true, httpOnly: true } as const
  deleteCookie(c, SESSION_COOKIE, { ...options, sameSite: 'Lax' })
  deleteCookie(c, CROSS_SITE_COOKIE, { ...options, sameSite: 'None' })
  c.header('Set-Login', 'logged-out')
}
