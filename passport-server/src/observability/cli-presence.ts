import type { ManagementOptions } from './management.ts'

export type PresenceAnswer =
  | { ok: true; sessions: Record<string, Record<string, number>> }
  | { ok: false; reason: string }

const TIMEOUT_MS = 2_000

/**
 * Open live sockets per site of the sessions given, asked of the running passport's management
 * listener (`POST /manage/presence`). The CLI runs in a process of its own that holds no
 * sockets; the server answers from its presence (this instance's sockets, or every instance's
 * where presence is shared), so the CLI needs no access to Redis or to any instance but one.
 */
export async function fetchPresence(
  management: ManagementOptions | null,
  sessionIds: string[],
): Promise<PresenceAnswer> {
  if (!management) return { ok: false, reason: 'the management listener is off' }
  // A listener bound to every address is reached on loopback from the same machine.
  const host = ['0.0.0.0', '::', ''].includes(management.host) ? '127.0.0.1' : management.host
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${management.port}/manage/presence`
  try {
    const sessions: Record<string, Record<string, number>> = {}
    for (let i = 0; i < sessionIds.length; i += 1000) {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          ...(management.token ? { Authorization: `Bearer ${management.token}` } : {}),
        },
        body: JSON.stringify({ session_ids: sessionIds.slice(i, i + 1000) }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
      if (!res.ok) return { ok: false, reason: `${url} answered ${res.status}` }
      Object.assign(sessions, ((await res.json()) as { sessions: typeof sessions }).sessions)
    }
    return { ok: true, sessions }
  } catch {
    return { ok: false, reason: `no passport answered at ${url}` }
  }
}
