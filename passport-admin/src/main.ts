import { get, post } from './api.ts'
import { append, clear, h, time } from './dom.ts'
import { connectLiveSessions, monitoringView, sessionsView } from './sessions.ts'
import type { AuditEvent, Site, User } from './types.ts'

/** The operator console (served at /admin by the passport; see docs/console.md). */
const root = document.getElementById('console') as HTMLElement
const me = document.querySelector<HTMLMetaElement>('meta[name="passport-admin"]')?.content ?? ''

const status = h('span', { class: 'muted', 'data-testid': 'live-status' }, 'connecting…')
const noticeBox = h('div', { 'aria-live': 'polite' })
function notice(text: string, error = false) {
  noticeBox.replaceChildren(
    h('p', { class: error ? 'error' : 'notice', role: error ? 'alert' : 'status' }, text),
  )
}

const live = connectLiveSessions((text) => {
  status.textContent = text
})

// ---------------------------------------------------------------- sites
function numberField(label: string, name: string, value: number | undefined) {
  return h(
    'label',
    {},
    `${label} `,
    h('input', { name, type: 'number', min: 1, value: value ?? '', style: undefined }),
  )
}
function textField(label: string, name: string, value: string, attrs: Record<string, string> = {}) {
  return h('label', {}, `${label} `, h('input', { name, value, ...attrs }))
}
const lines = (v: FormDataEntryValue | null) =>
  String(v ?? '')
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean)

function siteForm(site: Site | null, onSaved: () => void): HTMLFormElement {
  const form = h(
    'form',
    { 'data-testid': site ? `edit-${site.id}` : 'register-site' },
    site ? null : textField('Id', 'id', '', { required: 'true', pattern: '[a-z0-9][a-z0-9\\-]*' }),
    textField('Name', 'name', site?.name ?? ''),
    textField('Origins', 'origins', site?.origins.join(' ') ?? '', { required: 'true', size: '40' }),
    textField('Redirect URIs', 'redirectUris', site?.redirectUris.join(' ') ?? '', { size: '40' }),
    h(
      'label',
      {},
      'Login modes ',
      ...['password', 'device', 'ciba'].map((mode) =>
        h(
          'label',
          {},
          h('input', {
            type: 'checkbox',
            name: 'loginModes',
            value: mode,
            checked: site ? site.loginModes.includes(mode) : mode === 'password',
          }),
          ` ${mode}`,
        ),
      ),
    ),
    numberField('Token life (s)', 'tokenTtlSeconds', site?.tokenTtlSeconds),
    numberField('Refresh before expiry (s)', 'refreshBeforeSeconds', site?.refreshBeforeSeconds),
    numberField('Refresh idle (s)', 'refreshIdleSeconds', site?.refreshIdleSeconds),
    numberField('Refresh absolute (s)', 'refreshAbsoluteSeconds', site?.refreshAbsoluteSeconds),
    h(
      'label',
      {},
      h('input', {
        type: 'checkbox',
        name: 'oneDevicePerSite',
        checked: site ? site.oneDevicePerSite : true,
      }),
      ' one device per site',
    ),
    h('button', { type: 'submit' }, site ? 'Save' : 'Register site'),
  )
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const data = new FormData(form)
    const num = (name: string) => (data.get(name) ? Number(data.get(name)) : undefined)
    const body = {
      ...(site ? {} : { id: String(data.get('id') ?? '') }),
      name: String(data.get('name') ?? ''),
      origins: lines(data.get('origins')),
      redirectUris: lines(data.get('redirectUris')),
      loginModes: data.getAll('loginModes').map(String),
      tokenTtlSeconds: num('tokenTtlSeconds'),
      refreshBeforeSeconds: num('refreshBeforeSeconds'),
      refreshIdleSeconds: num('refreshIdleSeconds'),
      refreshAbsoluteSeconds: num('refreshAbsoluteSeconds'),
      oneDevicePerSite: data.get('oneDevicePerSite') !== null,
      ...(site
        ? { dpopBoundTokens: site.dpopBoundTokens, backchannelLogoutUri: site.backchannelLogoutUri }
        : {}),
    }
    try {
      if (site) {
        const saved = await post<{ authkey: string; rotated: boolean }>(`/admin/api/sites/${site.id}`, body)
        notice(saved.rotated ? `Saved. The origins changed: the new authkey is ${saved.authkey}` : 'Saved.')
      } else {
        const made = await post<{ site: Site; authkey: string; clientSecret: string }>(
          '/admin/api/sites',
          body,
        )
        secretsBox.replaceChildren(
          h(
            'div',
            { class: 'notice', 'data-testid': 'new-site' },
            h('p', {}, `Site ${made.site.id} registered. Its client secret is shown once:`),
            h('p', {}, 'Authkey: ', h('code', { class: 'mono', 'data-testid': 'authkey' }, made.authkey)),
            h(
              'p',
              {},
              'Client secret: ',
              h('code', { class: 'mono', 'data-testid': 'client-secret' }, made.clientSecret),
            ),
          ),
        )
        form.reset()
      }
      onSaved()
    } catch (err) {
      notice(`Not saved: ${(err as Error).message}`, true)
    }
  })
  return form
}

const secretsBox = h('div')
const sitesSection = h('section', {}, secretsBox)
async function showSites() {
  const { sites } = await get<{ sites: Site[] }>('/admin/api/sites')
  const list = h('tbody')
  for (const site of sites) {
    const details = h('td', { colspan: 5 })
    details.hidden = true
    const authkeyOut = h('code', { class: 'mono', 'data-testid': `authkey-${site.id}` })
    list.append(
      h(
        'tr',
        { 'data-site': site.id },
        h('td', {}, site.id),
        h('td', {}, site.name),
        h('td', {}, site.origins.join(' ')),
        h(
          'td',
          {},
          `token ${site.tokenTtlSeconds}s, refresh ${site.refreshBeforeSeconds}s before, idle ${site.refreshIdleSeconds}s, max ${site.refreshAbsoluteSeconds}s; ${site.loginModes.join(', ')}; v${site.authkeyVersion}`,
        ),
        h(
          'td',
          {},
          h('button', { type: 'button', onclick: () => (details.hidden = !details.hidden) }, 'Edit'),
          ' ',
          h(
            'button',
            {
              type: 'button',
              onclick: async () => {
                const { authkey } = await get<{ authkey: string }>(`/admin/api/sites/${site.id}/authkey`)
                authkeyOut.textContent = authkey
              },
            },
            'Show authkey',
          ),
          ' ',
          h(
            'button',
            {
              type: 'button',
              onclick: async () => {
                if (!confirm(`Rotate the authkey of ${site.id}? Pages embedding the old one stop working.`))
                  return
                const { authkey } = await post<{ authkey: string }>(
                  `/admin/api/sites/${site.id}/rotate-authkey`,
                )
                authkeyOut.textContent = authkey
                notice(`Authkey of ${site.id} rotated.`)
              },
            },
            'Rotate authkey',
          ),
          ' ',
          h(
            'button',
            {
              type: 'button',
              class: 'danger',
              onclick: async () => {
                if (!confirm(`Remove ${site.id}? Its tokens stop working at once.`)) return
                await post(`/admin/api/sites/${site.id}/remove`)
                notice(`Site ${site.id} removed.`)
                void showSites()
              },
            },
            'Remove',
          ),
          h('div', {}, authkeyOut),
        ),
      ),
      h('tr', {}, details),
    )
    details.append(siteForm(site, () => void showSites()))
  }
  sitesSection.replaceChildren(
    secretsBox,
    h(
      'fieldset',
      {},
      h('legend', {}, 'Register a site'),
      siteForm(null, () => void showSites()),
    ),
    h(
      'table',
      { 'data-testid': 'sites' },
      h('thead', {}, h('tr', {}, ...['Id', 'Name', 'Origins', 'Settings', ''].map((t) => h('th', {}, t)))),
      list,
    ),
  )
}

// ---------------------------------------------------------------- users
const usersSection = h('section')
async function showUsers() {
  const { users } = await get<{ users: User[] }>('/admin/api/users')
  const add = h(
    'form',
    { 'data-testid': 'add-user' },
    textField('Username', 'username', '', { required: 'true' }),
    textField('Name', 'name', ''),
    textField('Password', 'password', '', {
      type: 'password',
      required: 'true',
      minlength: '8',
      autocomplete: 'new-password',
    }),
    h('label', {}, h('input', { type: 'checkbox', name: 'isAdmin' }), ' admin'),
    h('button', { type: 'submit' }, 'Add user'),
  )
  add.addEventListener('submit', async (event) => {
    event.preventDefault()
    const data = new FormData(add)
    try {
      await post('/admin/api/users', {
        username: data.get('username'),
        name: data.get('name'),
        password: data.get('password'),
        isAdmin: data.get('isAdmin') !== null,
      })
      notice(`User ${data.get('username')} added.`)
      void showUsers()
    } catch (err) {
      notice(`Not added: ${(err as Error).message}`, true)
    }
  })
  const act = async (text: string, path: string, body: unknown = {}) => {
    try {
      await post(path, body)
      notice(text)
      void showUsers()
    } catch (err) {
      notice(`${text} failed: ${(err as Error).message}`, true)
    }
  }
  const rows = users.map((u) => {
    const id = encodeURIComponent(u.id)
    const password = h('input', {
      type: 'password',
      placeholder: 'new password',
      autocomplete: 'new-password',
    })
    return h(
      'tr',
      { 'data-user': u.username },
      h('td', {}, u.username),
      h('td', {}, u.name),
      h('td', {}, u.isAdmin ? 'admin' : ''),
      h('td', {}, u.disabled ? h('span', { class: 'danger' }, 'disabled') : 'active'),
      h(
        'td',
        {},
        password,
        h(
          'button',
          {
            type: 'button',
            onclick: () =>
              act(`Password of ${u.username} reset`, `/admin/api/users/${id}/password`, {
                password: password.value,
              }),
          },
          'Reset password',
        ),
        ' ',
        h(
          'button',
          {
            type: 'button',
            onclick: () =>
              act(`${u.username} ${u.disabled ? 'enabled' : 'disabled'}`, `/admin/api/users/${id}/disabled`, {
                disabled: !u.disabled,
              }),
          },
          u.disabled ? 'Enable' : 'Disable',
        ),
        ' ',
        h(
          'button',
          {
            type: 'button',
            onclick: () =>
              act(`${u.username} updated`, `/admin/api/users/${id}/admin`, { isAdmin: !u.isAdmin }),
          },
          u.isAdmin ? 'Withdraw admin' : 'Make admin',
        ),
        ' ',
        h(
          'button',
          {
            type: 'button',
            onclick: () => act(`${u.username} signed out everywhere`, `/admin/api/users/${id}/sign-out`),
          },
          'Sign out everywhere',
        ),
      ),
    )
  })
  usersSection.replaceChildren(
    h('fieldset', {}, h('legend', {}, 'Add a user'), add),
    h(
      'table',
      { 'data-testid': 'users' },
      h('thead', {}, h('tr', {}, ...['Username', 'Name', 'Role', 'State', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, ...rows),
    ),
  )
}

// ---------------------------------------------------------------- audit
const auditSection = h('section')
function auditView() {
  const filters = h(
    'form',
    { 'data-testid': 'audit-filters' },
    textField('User', 'user', ''),
    textField('Site', 'site', ''),
    textField('Type', 'type', ''),
    textField('Since', 'since', '', { type: 'datetime-local' }),
    textField('Until', 'until', '', { type: 'datetime-local' }),
    h('button', { type: 'submit' }, 'Show'),
  )
  const body = h('tbody')
  const more = h('button', { type: 'button', hidden: true }, 'Older')
  let oldest: number | undefined
  const load = async (append_: boolean) => {
    const data = new FormData(filters)
    const q = new URLSearchParams()
    for (const key of ['user', 'site', 'type'] as const) {
      const v = String(data.get(key) ?? '').trim()
      if (v) q.set(key, v)
    }
    for (const key of ['since', 'until'] as const) {
      const v = String(data.get(key) ?? '')
      if (v) q.set(key, String(new Date(v).getTime()))
    }
    if (append_ && oldest !== undefined) q.set('before', String(oldest))
    const { events } = await get<{ events: AuditEvent[] }>(`/admin/api/audit?${q}`)
    if (!append_) clear(body)
    append(
      body,
      events.map((e) =>
        h(
          'tr',
          { 'data-type': e.type },
          h('td', {}, time(e.at)),
          h('td', {}, e.type),
          h('td', {}, e.actor ?? '—'),
          h('td', {}, e.userId ?? '—'),
          h('td', {}, e.siteId ?? '—'),
          h('td', { class: 'mono' }, e.sessionId ? e.sessionId.slice(0, 12) : '—'),
          h('td', { class: 'mono' }, JSON.stringify(e.detail)),
        ),
      ),
    )
    oldest = events.at(-1)?.id ?? oldest
    more.hidden = events.length < 100
  }
  filters.addEventListener('submit', (event) => {
    event.preventDefault()
    void load(false)
  })
  more.addEventListener('click', () => void load(true))
  auditSection.replaceChildren(
    filters,
    h(
      'table',
      { 'data-testid': 'audit' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...['Time', 'Event', 'Actor', 'User', 'Site', 'Session', 'Detail'].map((t) => h('th', {}, t)),
        ),
      ),
      body,
    ),
    more,
  )
  return () => load(false)
}
const reloadAudit = auditView()

// ---------------------------------------------------------------- refresh lead time per site
const leadSection = h('fieldset', { 'data-testid': 'refresh-lead' })
async function showLeadTimes() {
  const { sites } = await get<{ sites: Site[] }>('/admin/api/sites')
  leadSection.replaceChildren(
    h('legend', {}, 'Automatic refresh: seconds before expiry, per site'),
    ...sites.map((site) => {
      const input = h('input', {
        type: 'number',
        min: 10,
        value: site.refreshBeforeSeconds,
        'aria-label': `Refresh lead time of ${site.id}`,
      })
      return h(
        'label',
        { 'data-site': site.id },
        `${site.id} `,
        input,
        h(
          'button',
          {
            type: 'button',
            onclick: async () => {
              try {
                await post(`/admin/api/sites/${site.id}/refresh-before`, { seconds: Number(input.value) })
                notice(`${site.id} now refreshes ${input.value} s before expiry.`)
              } catch (err) {
                notice(`Not saved: ${(err as Error).message}`, true)
              }
            },
          },
          'Save',
        ),
      )
    }),
  )
}

// ---------------------------------------------------------------- layout
const sessions = sessionsView(live, notice)
const monitoring = h('section', {}, leadSection, monitoringView(live, notice))
const views: Record<string, { el: HTMLElement; show?: () => unknown }> = {
  Sessions: { el: sessions },
  Monitoring: { el: monitoring, show: showLeadTimes },
  Sites: { el: sitesSection, show: showSites },
  Users: { el: usersSection, show: showUsers },
  Audit: { el: auditSection, show: reloadAudit },
}
const main = h('main')
const buttons = Object.keys(views).map((name) =>
  h('button', { type: 'button', 'data-view': name, onclick: () => select(name) }, name),
)
function select(name: string) {
  for (const [key, view] of Object.entries(views)) {
    view.el.hidden = key !== name
    // The monitoring table lives inside its section: keep it shown with it.
    if (key === name) void view.show?.()
  }
  for (const b of buttons) {
    if (b.dataset.view === name) b.setAttribute('aria-current', 'page')
    else b.removeAttribute('aria-current')
  }
  history.replaceState(null, '', `#${name.toLowerCase()}`)
}
const signOut = h(
  'button',
  {
    type: 'button',
    onclick: async () => {
      await post('/admin/logout')
      location.reload()
    },
  },
  'Sign out',
)
root.append(
  h(
    'header',
    {},
    h('h1', {}, 'Passport console'),
    h('nav', {}, ...buttons),
    status,
    h('span', { class: 'me' }, me, ' ', signOut),
  ),
  noticeBox,
  main,
)
for (const view of Object.values(views)) main.append(view.el)
const initial = Object.keys(views).find((n) => `#${n.toLowerCase()}` === location.hash) ?? 'Sessions'
select(initial)
