import type { AppDeps } from '../deps.ts'
import type { SessionRecord, UserRecord } from '../store/types.ts'
import { findLiveSession } from './sessions.ts'

/** An admin's passport session: who may use the console (`/admin` and its socket). */
export interface AdminContext {
  session: SessionRecord
  user: UserRecord
}

/** The admin behind a request's passport session, or null (not signed in, not an admin, disabled). */
export async function adminOfCookie(
  deps: Pick<AppDeps, 'store' | 'clock' | 'config'>,
  cookieValue: string | undefined,
): Promise<AdminContext | null> {
  const session = await findLiveSession(deps, cookieValue)
  if (!session) return null
  const user = await deps.store.users.findById(session.userId)
  if (!user?.isAdmin || user.disabled) return null
  return { session, user }
}
