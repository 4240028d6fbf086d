import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { endSession, SESSION_COOKIE, startSession } from '../services/sessions.ts'
import { signIn } from '../test-flows.ts'
import { addSite, addUser, EVIL_ORIGIN, startTestServer } from '../test-support.ts'
import { CONSOLE_LIVE_PATH, CONSOLE_LIVE_PROTOCOL } from './console-socket.ts'

/** @see issue 19: the console's live session view (no polling). */
const servers: { close(): Promise<void> }[] = []
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close()
})

async function world() {
  const started = await startTestServer()
  servers.push(started.server)
  const { deps } = started
  const root = await addUser(deps, 'root')
  await deps.store.users.setAdmin(root.id, true)
  const alice = await addUser(deps, 'alice')
  const news = await addSite(deps, { id: 'news' })
  const admin = await startSession(deps, root.id, 'Chrome/156.0 Linux')
  const plain = await startSession(deps, alice.id, 'Chrome/156.0 Linux')
  return { ...started, alice, news, admin, plain }
}

function connect(url: string, origin: string, cookieValue: string | null) {
  return new WebSocket(url, CONSOLE_LIVE_PROTOCOL, {
    headers: { Origin: origin, ...(cookieValue ? { Cookie: `${SESSION_COOKIE}=${cookieValue}` } : {}) },
  })
}

function upgradeStatus(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    ws.on('open', () => resolve(101))
    ws.on('error', () => resolve(-1))
  })
}

function messages(ws: WebSocket) {
  const got: { type: string; [k: string]: unknown }[] = []
  const waiters: (() => void)[] = []
  ws.on('message', (data) => {
    got.push(JSON.parse(String(data)))
    for (const w of waiters.splice(0)) w()
  })
  return {
    got,
    async until(test: (m: { type: string; [k: string]: unknown }) => boolean, ms = 2000) {
      const deadline = Date.now() + ms
      for (;;) {
        const hit = got.find(test)
        if (hit) return hit
        if (Date.now() > deadline) throw new Error(`no such message in ${JSON.stringify(got).slice(0, 500)}`)
        await new Promise<void>((r) => {
          waiters.push(r)
          setTimeout(r, 50)
        })
      }
    },
  }
}

describe('console live socket', () => {
  it('is refused (403) to another origin, a non-admin and nobody', async () => {
    const w = await world()
    const url = `${w.issuer.replace('http', 'ws')}${CONSOLE_LIVE_PATH}`
    expect(await upgradeStatus(connect(url, EVIL_ORIGIN, w.admin.cookieValue))).toBe(403)
    expect(await upgradeStatus(connect(url, w.issuer, w.plain.cookieValue))).toBe(403)
    expect(await upgradeStatus(connect(url, w.issuer, null))).toBe(403)
  })

  it('sends a snapshot, then each sign-in and each end as it happens', async () => {
    const w = await world()
    const url = `${w.issuer.replace('http', 'ws')}${CONSOLE_LIVE_PATH}`
    const ws = connect(url, w.issuer, w.admin.cookieValue)
    const inbox = messages(ws)
    const snapshot = await inbox.until((m) => m.type === 'snapshot')
    expect((snapshot.sessions as unknown[]).length).toBe(2)
    // alice signs in on News in a new browser: her device appears with the site.
    await signIn(w.server.app, w.news, w.alice, new Map(), w.issuer)
    const row = (await inbox.until(
      (m) => m.type === 'session' && (m.row as { sites: unknown[] }).sites.length === 1,
    )) as unknown as { row: { id: string; username: string; sites: { siteId: string }[] } }
    expect(row.row.username).toBe('alice')
    expect(row.row.sites[0]?.siteId).toBe('news')
    const session = await w.deps.store.sessions.get(row.row.id)
    await endSession(w.deps, session as NonNullable<typeof session>, 'revoked')
    await inbox.until((m) => m.type === 'session_removed' && m.id === row.row.id)
    ws.close()
  })
})
