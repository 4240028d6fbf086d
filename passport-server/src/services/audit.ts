import type { AppDeps } from '../deps.ts'
import { errorFields } from '../errors.ts'
import { logSafely } from '../guard.ts'

/**
 * The audit log: durable rows of every console action and of the security events (sign-in,
 * sign-out, newest-wins replacement, approvals decided, site changes), kept
 * `auditRetentionDays` (the maintenance sweep purges older rows). Read by the console and
 * `npm run passport -- audit`. Rows carry ids, names and reasons only, never a secret.
 */
export interface AuditInput {
  type: string
  actor: string | null
  userId?: string | null
  siteId?: string | null
  sessionId?: string | null
  detail?: Record<string, string | number | boolean | null>
}

export interface AuditFilter {
  userId?: string
  siteId?: string
  type?: string
  since?: number
  until?: number
  limit?: number
  beforeId?: number
}

export interface AuditEvent extends Required<Omit<AuditInput, 'detail'>> {
  id: number
  at: number
  detail: Record<string, unknown>
}

/** The most rows one read returns. */
export const AUDIT_PAGE_MAX = 500

/**
 * Appends one row. Never throws to the caller: the change it records has already happened, and
 * failing the request for its audit row would only hide it; the failure is logged instead.
 */
export async function recordAudit(
  deps: Pick<AppDeps, 'store' | 'clock' | 'log'> & Partial<Pick<AppDeps, 'events'>>,
  input: AuditInput,
): Promise<void> {
  const at = deps.clock.now()
  try {
    await deps.store.audit.append({
      type: input.type,
      actor: input.actor,
      userId: input.userId ?? null,
      siteId: input.siteId ?? null,
      sessionId: input.sessionId ?? null,
      detail: JSON.stringify(input.detail ?? {}),
      at,
    })
  } catch (err) {
    logSafely(deps.log, 'audit_write_failed', { type: input.type, ...errorFields(err) })
  }
  // The consoles of every instance show the session's row anew (`SessionActivity`).
  if (deps.events && input.sessionId) {
    deps.events.publishActivity({
      sessionId: input.sessionId,
      userId: input.userId ?? null,
      type: input.type,
    })
  }
}

/** Newest first, at most `AUDIT_PAGE_MAX` rows. */
export async function listAudit(deps: Pick<AppDeps, 'store'>, filter: AuditFilter): Promise<AuditEvent[]> {
  const limit = Math.max(1, Math.min(filter.limit ?? 100, AUDIT_PAGE_MAX))
  const rows = await deps.store.audit.list({
    ...(filter.userId ? { userId: filter.userId } : {}),
    ...(filter.siteId ? { siteId: filter.siteId } : {}),
    ...(filter.type ? { type: filter.type } : {}),
    ...(filter.since !== undefined ? { since: filter.since } : {}),
    ...(filter.until !== undefined ? { until: filter.until } : {}),
    ...(filter.beforeId !== undefined ? { beforeId: filter.beforeId } : {}),
    limit,
  })
  return rows.map((r) => {
    let detail: Record<string, unknown> = {}
    try {
      detail = JSON.parse(r.detail) as Record<string, unknown>
    } catch {}
    return {
      id: r.id,
      type: r.type,
      actor: r.actor,
      userId: r.userId,
      siteId: r.siteId,
      sessionId: r.sessionId,
      at: r.at,
      detail,
    }
  })
}

/** Deletes rows older than the retention; the maintenance sweep calls it. */
export function purgeAudit(deps: Pick<AppDeps, 'store' | 'clock' | 'config'>): Promise<number> {
  return deps.store.audit.purge(deps.clock.now() - deps.config.auditRetentionDays * 86_400_000)
}
