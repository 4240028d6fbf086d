import {
  CLOSE_NOT_ADMIN,
  CONSOLE_LIVE_PATH,
  CONSOLE_LIVE_PROTOCOL,
} from '../../passport-frame/src/protocol/console.ts'
import { post } from './api.ts'
import { countdown, h, time } from './dom.ts'
import type { ConsoleMessage, SessionRow } from './types.ts'

/**
 * The live session store of the console: fed by the `/admin/live` socket (a snapshot, then one
 * message per change), read by the sessions and monitoring views. Views re-render only the rows
 * that changed, so an update costs the same with 10 or 10,000 sessions.
 */
export interface LiveSessions {
  rows: Map<string, SessionRow>
  /** Server time minus this browser's clock, from the last message. */
  skewMs: number
  connected: boolean
  onChange(listener: (changed: string[] | 'all') => void): void
}

export function connectLiveSessions(onStatus: (text: string) => void): LiveSessions {
  const listeners = new Set<(changed: string[] | 'all') => void>()
  const state: LiveSessions = {
    rows: new Map(),
    skewMs: 0,
    connected: false,
    onChange: (listener) => {
      listeners.add(listener)
    },
  }
  const emit = (changed: string[] | 'all') => {
    for (const l of listeners) l(changed)
  }
  let attempt = 0
  const open = () => {
    const ws = new WebSocket(
      `${location.origin.replace(/^http/, 'ws')}${CONSOLE_LIVE_PATH}`,
      CONSOLE_LIVE_PROTOCOL,
    )
    ws.onopen = () => {
      attempt = 0
      state.connected = true
      onStatus('live')
    }
    ws.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as ConsoleMessage
      state.skewMs = message.now - Date.now()
      if (message.type === 'snapshot') {
        state.rows = new Map(message.sessions.map((s) => [s.id, s]))
        emit('all')
      } else if (message.type === 'session') {
        state.rows.set(message.row.id, message.row)
        emit([message.row.id])
      } else if (message.type === 'session_removed') {
        state.rows.delete(message.id)
        emit([message.id])
      }
    }
    ws.onclose = (event) => {
      state.connected = false
      if (event.code === CLOSE_NOT_ADMIN) {
        onStatus('signed out')
        return
      }
      onStatus('reconnecting…')
      attempt += 1
      setTimeout(open, Math.min(10_000, 500 * 2 ** attempt))
    }
  }
  open()
  return state
}

function socketCell(n: number) {
  return n > 0
    ? h('span', { class: 'ok', title: `${n} open` }, `● connected (${n})`)
    : h('span', { class: 'muted' }, '—')
}

/** The sessions view: one row per live device, actions per device, per user and per site. */
export function sessionsView(
  live: LiveSessions,
  notice: (text: string, error?: boolean) => void,
): HTMLElement {
  const userFilter = h('input', {
    placeholder: 'user',
    'aria-label': 'Filter by user',
    'data-testid': 'filter-user',
  })
  const siteFilter = h('input', {
    placeholder: 'site',
    'aria-label': 'Filter by site',
    'data-testid': 'filter-site',
  })
  const count = h('span', { class: 'muted' })
  const body = h('tbody')
  const table = h(
    'table',
    { 'data-testid': 'sessions' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...[
          'User',
          'Device',
          'Address',
          'Signed in with',
          'Signed in',
          'Last activity',
          'Live socket',
          'Sites',
          '',
        ].map((t) => h('th', {}, t)),
      ),
    ),
    body,
  )
  const trs = new Map<string, HTMLTableRowElement>()

  const act = async (what: string, path: string) => {
    try {
      await post(path)
      notice(what)
    } catch (err) {
      notice(`${what} failed: ${(err as Error).message}`, true)
    }
  }

  const visible = (row: SessionRow) => {
    const u = userFilter.value.trim().toLowerCase()
    const s = siteFilter.value.trim().toLowerCase()
    return (
      (!u || row.username.toLowerCase().includes(u)) && (!s || row.sites.some((x) => x.siteId.includes(s)))
    )
  }

  const renderRow = (row: SessionRow): HTMLTableRowElement => {
    const id = encodeURIComponent(row.id)
    return h(
      'tr',
      { 'data-session': row.id, 'data-user': row.username },
      h('td', {}, row.username),
      h('td', { title: row.userAgent }, row.device),
      h('td', {}, row.address ?? '—'),
      h('td', {}, row.method),
      h('td', {}, time(row.createdAt)),
      h('td', {}, time(row.lastActivityAt)),
      h('td', { 'data-testid': 'socket' }, socketCell(row.sockets)),
      h(
        'td',
        { 'data-testid': 'sites' },
        ...row.sites.map((site) =>
          h(
            'span',
            { class: 'tag', 'data-site': site.siteId },
            `${site.siteId} `,
            h(
              'button',
              {
                type: 'button',
                title: `End ${site.siteId} for this device`,
                onclick: () =>
                  act(
                    `${site.siteId} ended for the device`,
                    `/admin/api/sessions/${id}/sites/${encodeURIComponent(site.siteId)}/end`,
                  ),
              },
              'End',
            ),
          ),
        ),
      ),
      h(
        'td',
        {},
        h(
          'button',
          {
            type: 'button',
            class: 'danger',
            onclick: () => act('Device signed out', `/admin/api/sessions/${id}/sign-out`),
          },
          'Sign out this device',
        ),
        ' ',
        h(
          'button',
          {
            type: 'button',
            onclick: () =>
              confirm(`Sign ${row.username} out on every device?`) &&
              act(
                `${row.username} signed out everywhere`,
                `/admin/api/users/${encodeURIComponent(row.userId)}/sign-out`,
              ),
          },
          'Sign out user everywhere',
        ),
      ),
    )
  }

  const renderAll = () => {
    const fragment = document.createDocumentFragment()
    trs.clear()
    for (const row of live.rows.values()) {
      const tr = renderRow(row)
      trs.set(row.id, tr)
      if (visible(row)) fragment.appendChild(tr)
    }
    body.replaceChildren(fragment)
    count.textContent = `${live.rows.size} live device(s)`
  }

  live.onChange((changed) => {
    if (changed === 'all') return renderAll()
    for (const id of changed) {
      const old = trs.get(id)
      const row = live.rows.get(id)
      if (!row) {
        old?.remove()
        trs.delete(id)
        continue
      }
      const tr = renderRow(row)
      trs.set(id, tr)
      if (old?.isConnected) old.replaceWith(tr)
      else if (visible(row)) body.prepend(tr)
    }
    count.textContent = `${live.rows.size} live device(s)`
  })
  userFilter.addEventListener('input', renderAll)
  siteFilter.addEventListener('input', renderAll)
  renderAll()
  return h(
    'section',
    {},
    h('fieldset', {}, h('label', {}, 'User ', userFilter), h('label', {}, 'Site ', siteFilter), count),
    table,
  )
}

/**
 * The monitoring terminal: every live token per site and device, its validity counting down,
 * the point where the frame refreshes it by itself, and "Refresh now".
 */
export function monitoringView(
  live: LiveSessions,
  notice: (text: string, error?: boolean) => void,
): HTMLElement {
  const body = h('tbody')
  const table = h(
    'table',
    { 'data-testid': 'tokens' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['Site', 'User', 'Device', 'Token', 'Valid for', 'Refreshes in', 'Live socket', ''].map((t) =>
          h('th', {}, t),
        ),
      ),
    ),
    body,
  )
  const countdowns: { el: HTMLElement; at: number }[] = []
  const render = () => {
    countdowns.length = 0
    const rows: HTMLTableRowElement[] = []
    const all = [...live.rows.values()].flatMap((s) => s.sites.map((site) => ({ s, site })))
    all.sort((a, b) => a.site.siteId.localeCompare(b.site.siteId) || a.site.expiresAt - b.site.expiresAt)
    for (const { s, site } of all) {
      const valid = h('td', { 'data-testid': 'valid-for' })
      const refresh = h('td', { 'data-testid': 'refresh-in' })
      countdowns.push({ el: valid, at: site.expiresAt }, { el: refresh, at: site.refreshAt })
      rows.push(
        h(
          'tr',
          {
            'data-session': s.id,
            'data-site': site.siteId,
            'data-user': s.username,
            'data-expires': site.expiresAt,
          },
          h('td', {}, site.siteId),
          h('td', {}, s.username),
          h('td', {}, s.device),
          h(
            'td',
            { class: 'mono', 'data-testid': 'jti', title: `issued ${time(site.issuedAt)}` },
            site.jti.slice(-12),
          ),
          valid,
          refresh,
          h('td', {}, socketCell(site.sockets)),
          h(
            'td',
            {},
            h(
              'button',
              {
                type: 'button',
                disabled: site.sockets === 0,
                title:
                  site.sockets === 0
                    ? 'No open tab of this site on the device'
                    : 'Ask the device to refresh now',
                onclick: async () => {
                  try {
                    await post(
                      `/admin/api/sessions/${encodeURIComponent(s.id)}/sites/${encodeURIComponent(site.siteId)}/refresh`,
                    )
                    notice(`Refresh asked of ${s.username}'s device on ${site.siteId}`)
                  } catch (err) {
                    notice(`Refresh failed: ${(err as Error).message}`, true)
                  }
                },
              },
              'Refresh now',
            ),
          ),
        ),
      )
    }
    body.replaceChildren(...rows)
    tick()
  }
  const tick = () => {
    const now = Date.now() + live.skewMs
    for (const c of countdowns) c.el.textContent = c.at > now ? countdown(c.at - now) : 'now'
  }
  const section = h('section', {}, table)
  // Rendered while shown; a hidden view only notes that it is out of date.
  let stale = false
  const shown = () => section.isConnected && section.closest('[hidden]') === null
  setInterval(() => {
    if (!shown()) return
    if (stale) {
      stale = false
      render()
    } else tick()
  }, 1000)
  live.onChange(() => {
    if (shown()) render()
    else stale = true
  })
  render()
  return section
}
