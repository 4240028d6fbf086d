import type { ConsoleSessionRow, ConsoleSiteRow } from '../../../passport-frame/src/protocol/console.ts'
import type { AppDeps } from '../deps.ts'
import type { SessionRecord, SiteRecord, TokenRecord, UserRecord } from '../store/types.ts'
import { isSessionLive } from './sessions.ts'
import { describeUserAgent } from './user-agent.ts'

/**
 * What the console's sessions and monitoring views show: every live device (passport session)
 * with its user, browser, address, sign-in method, last activity, open live sockets, and per
 * site its current token (validity, refresh point). Built from the store and `deps.presence`;
 * the row shapes are the console wire's (`protocol/console.ts`).
 */
export type { ConsoleSessionRow, ConsoleSiteRow }

type ViewDeps = Pick<AppDeps, 'store' | 'clock' | 'config' | 'presence'>

/** The most sessions one snapshot holds. */
export const CONSOLE_SESSION_LIMIT = 50_000

function buildRow(
  session: SessionRecord,
  user: Pick<UserRecord, 'username'> | undefined,
  tokens: TokenRecord[],
  sites: Map<string, Pick<SiteRecord, 'refreshBeforeSeconds'>>,
  socketsBySite: Map<string, number>,
): ConsoleSessionRow {
  // The newest token per site is the device's current one there.
  const current = new Map<string, TokenRecord>()
  for (const t of tokens) {
    const seen = current.get(t.siteId)
    if (!seen || seen.issuedAt <= t.issuedAt) current.set(t.siteId, t)
  }
  let sockets = 0
  for (const n of socketsBySite.values()) sockets += n
  const siteRows = [...current.values()]
    .sort((a, b) => a.siteId.localeCompare(b.siteId))
    .map((t) => ({
      siteId: t.siteId,
      jti: t.jti,
      issuedAt: t.issuedAt,
      expiresAt: t.expiresAt,
      refreshAt: Math.max(
        t.issuedAt,
        t.expiresAt - (sites.get(t.siteId)?.refreshBeforeSeconds ?? 300) * 1000,
      ),
      sockets: socketsBySite.get(t.siteId) ?? 0,
    }))
  const lastToken = tokens.reduce((max, t) => Math.max(max, t.issuedAt), 0)
  return {
    id: session.id,
    userId: session.userId,
    username: user?.username ?? session.userId,
    device: session.method === 'ciba' ? session.userAgent : describeUserAgent(session.userAgent),
    userAgent: session.userAgent,
    method: session.method ?? 'password',
    address: session.address ?? null,
    createdAt: session.createdAt,
    lastActivityAt: Math.max(session.lastSeenAt ?? session.createdAt, lastToken),
    sockets,
    sites: siteRows,
  }
}

/** Every live session, newest first. */
export async function listConsoleSessions(deps: ViewDeps): Promise<ConsoleSessionRow[]> {
  const now = deps.clock.now()
  const sessions = (await deps.store.sessions.listLive(now, CONSOLE_SESSION_LIMIT)).filter((s) =>
    isSessionLive(s, now, deps.config),
  )
  const users = new Map((await deps.store.users.list()).map((u) => [u.id, u]))
  const sites = new Map((await deps.store.sites.list()).map((s) => [s.id, s]))
  const tokensBySession = new Map<string, TokenRecord[]>()
  for (const t of await deps.store.tokens.listLive(now)) {
    const list = tokensBySession.get(t.sessionId) ?? []
    list.push(t)
    tokensBySession.set(t.sessionId, list)
  }
  const counts = await deps.presence.countsBySession(sessions.map((s) => s.id))
  const rows: ConsoleSessionRow[] = []
  for (const s of sessions) {
    const bySite = counts.has(s.id)
      ? await deps.presence.countsBySessionSite(s.id)
      : new Map<string, number>()
    rows.push(buildRow(s, users.get(s.userId), tokensBySession.get(s.id) ?? [], sites, bySite))
  }
  return rows
}

/** One session's row, or null when it is no longer live. */
export async function consoleSessionRow(
  deps: ViewDeps,
  sessionId: string,
): Promise<ConsoleSessionRow | null> {
  const now = deps.clock.now()
  const session = await deps.store.sessions.get(sessionId)
  if (!isSessionLive(session, now, deps.config)) return null
  const user = await deps.store.users.findById(session.userId)
  const tokens = await deps.store.tokens.listLive(now, session.id)
  const sites = new Map<string, SiteRecord>()
  for (const t of tokens) {
    if (!sites.has(t.siteId)) {
      const site = await deps.store.sites.get(t.siteId)
      if (site) sites.set(t.siteId, site)
    }
  }
  const bySite = await deps.presence.countsBySessionSite(session.id)
  return buildRow(session, user ?? undefined, tokens, sites, bySite)
}
