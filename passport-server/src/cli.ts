import path from 'node:path'
import { parseArgs } from 'node:util'
import type { MasterKey } from './crypto/master-key.ts'
import type { AppDeps } from './deps.ts'
import { PassportError } from './errors.ts'
import { fetchPresence, type PresenceAnswer } from './observability/cli-presence.ts'
import type { ManagementOptions } from './observability/management.ts'
import { listAudit, recordAudit } from './services/audit.ts'
import { issueAuthkey, registerSite } from './services/registry.ts'
import { endSession } from './services/sessions.ts'
import { removeSite } from './services/site-removal.ts'
import { createUser, resetPassword, setUserDisabled } from './services/users.ts'
import { importSqliteIntoPostgres } from './store/import-sqlite.ts'
import type { SiteRecord } from './store/types.ts'
import { rotateSigningKey } from './tokens/keys.ts'

export const CLI_USAGE = `usage: npm run passport -- <command>

  site add --id ID --origin ORIGIN [--origin ORIGIN …] [--name NAME]
           [--redirect-uri URI …] [--login-mode password|device|ciba …]
           [--token-ttl SECONDS] [--one-device-per-site true|false] [--dpop-bound-tokens true|false]
           [--refresh-idle SECONDS]
           [--refresh-absolute SECONDS] [--refresh-before SECONDS]
           [--backchannel-logout-uri URL]
           [--fedcm true|false] [--privacy-policy-url URL] [--terms-of-service-url URL]
      Registers a site (or replaces its config) and prints its authkey and client secret.
      Replacing a site's config voids its earlier authkeys. Login modes: password only unless
      given (device: sign in with another device; ciba: backchannel requests).
  site list                       Lists registered sites.
  site remove ID                  Removes a site; its authkeys, tokens and refresh credentials stop working at once.
  site authkey ID                 Prints a fresh authkey for a site (same version).
  user add USERNAME [--name NAME] [--admin]
                                  Creates a user; reads the password from standard input.
                                  --admin: may use the console at /admin.
  user admin USERNAME on|off      Grants or withdraws the console (admin role).
  user disable USERNAME           Refuses the user's every sign-in and signs them out everywhere.
  user enable USERNAME            Lets a disabled user sign in again.
  audit [--user USERNAME] [--site ID] [--type TYPE] [--since TIME] [--until TIME] [--limit N]
                                  Lists audit events, newest first (TIME: ISO 8601).
  user password USERNAME          Sets a new password (from standard input) and signs the user
                                  out everywhere; their open tabs are told at once.
  session list --user USERNAME    Lists the user's passport sessions (id, device, state).
  session revoke SESSION_ID       Ends a session; its open tabs are told at once.
  store import-sqlite FILE        Copies an embedded store (data/passport.sqlite) into the empty
                                  PostgreSQL database of PASSPORT_DATABASE_URL: users, sites,
                                  sessions, live tokens and refresh families, so nobody signs in
                                  again. Same master key; every instance stopped while it runs.
  keys rotate                     Adds a signing key: in the JWKS at once, signing in 5 minutes;
                                  the old key keeps verifying until its tokens have expired.

  --json (any command)            One JSON object on standard output instead of text, errors
                                  included ({"error", "error_description"}); same exit codes.
  session list shows each session's open live sockets per site, asked of the running passport's
  management listener (PASSPORT_MANAGEMENT_HOST/PORT, PASSPORT_METRICS_TOKEN).`

export interface CliIo {
  out: (line: string) => void
  readSecret: () => Promise<string>
  /** The running passport's management listener, where `session list` reads live sockets. */
  management?: ManagementOptions | null
  /** Asks it (tests replace it); by default an HTTP call with a 2 s timeout. */
  presence?: (sessionIds: string[]) => Promise<PresenceAnswer>
  /** The key the stored secrets are sealed under: `store import-sqlite` checks the file's open with it. */
  masterKey?: MasterKey
}

/** A site as `--json` prints it (snake_case, like the HTTP API). Never its secrets. */
function siteJson(s: SiteRecord) {
  return {
    id: s.id,
    name: s.name,
    origins: s.origins,
    redirect_uris: s.redirectUris,
    login_modes: s.loginModes,
    token_ttl_seconds: s.tokenTtlSeconds,
    refresh_before_seconds: s.refreshBeforeSeconds,
    refresh_idle_seconds: s.refreshIdleSeconds,
    refresh_absolute_seconds: s.refreshAbsoluteSeconds,
    one_device_per_site: s.oneDevicePerSite,
    dpop_bound_tokens: s.dpopBoundTokens,
    backchannel_logout_uri: s.backchannelLogoutUri ?? null,
    authkey_version: s.authkeyVersion,
  }
}
const iso = (ms: number | null | undefined) => (typeof ms === 'number' ? new Date(ms).toISOString() : null)

function parseCliOptions(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      id: { type: 'string' },
      name: { type: 'string' },
      origin: { type: 'string', multiple: true },
      'redirect-uri': { type: 'string', multiple: true },
      'login-mode': { type: 'string', multiple: true },
      'token-ttl': { type: 'string' },
      'refresh-idle': { type: 'string' },
      'refresh-absolute': { type: 'string' },
      'refresh-before': { type: 'string' },
      'backchannel-logout-uri': { type: 'string' },
      'one-device-per-site': { type: 'string' },
      'dpop-bound-tokens': { type: 'string' },
      fedcm: { type: 'string' },
      'privacy-policy-url': { type: 'string' },
      'terms-of-service-url': { type: 'string' },
      user: { type: 'string' },
      json: { type: 'boolean' },
      admin: { type: 'boolean' },
      site: { type: 'string' },
      type: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      limit: { type: 'string' },
    },
  })
}

/** Runs one CLI command against the given dependencies. Returns the process exit code. */
export async function runCli(deps: AppDeps, argv: string[], io: CliIo): Promise<number> {
  const [noun, verb, ...rest] = argv
  const json = argv.includes('--json')
  /** Prints the JSON answer, or the text lines, and returns the exit code. */
  const answer = (code: number, value: Record<string, unknown>, lines: () => string[]): number => {
    if (json) io.out(JSON.stringify(value))
    else for (const line of lines()) io.out(line)
    return code
  }
  const usage = (code: number, message?: string) =>
    answer(code, { error: 'invalid_request', error_description: message ?? 'unknown command' }, () => [
      ...(message ? [`error: ${message}`] : []),
      CLI_USAGE,
    ])
  let parsed: ReturnType<typeof parseCliOptions>
  try {
    // Session ids are base64url and may begin with '-': never read one as an option.
    parsed = parseCliOptions(
      noun === 'session' && verb === 'revoke'
        ? [...(json ? ['--json'] : []), '--', ...rest.filter((a) => a !== '--json')]
        : // `audit` has no verb: its options start right after it.
          noun === 'audit'
          ? argv.slice(1)
          : rest,
    )
  } catch (err) {
    // Unknown option or missing value: say which, then how to call it; change nothing.
    return usage(2, (err as Error).message)
  }
  const { values, positionals } = parsed
  try {
    if (noun === 'site' && verb === 'add') {
      const ttl = values['token-ttl']
      const oneDevice = values['one-device-per-site']
      const dpopBound = values['dpop-bound-tokens']
      for (const [flag, value] of [
        ['one-device-per-site', oneDevice],
        ['dpop-bound-tokens', dpopBound],
        ['fedcm', values.fedcm],
      ] as const) {
        if (value !== undefined && value !== 'true' && value !== 'false') {
          throw new PassportError('invalid_request', `--${flag} takes true or false`)
        }
      }
      const { site, authkey, clientSecret } = await registerSite(deps, {
        id: values.id ?? '',
        origins: values.origin ?? [],
        ...(values.name ? { name: values.name } : {}),
        ...(values['redirect-uri'] ? { redirectUris: values['redirect-uri'] } : {}),
        ...(values['login-mode'] ? { loginModes: values['login-mode'] } : {}),
        ...(ttl ? { tokenTtlSeconds: Number(ttl) } : {}),
        ...(values['refresh-idle'] ? { refreshIdleSeconds: Number(values['refresh-idle']) } : {}),
        ...(values['refresh-absolute'] ? { refreshAbsoluteSeconds: Number(values['refresh-absolute']) } : {}),
        ...(values['refresh-before'] ? { refreshBeforeSeconds: Number(values['refresh-before']) } : {}),
        ...(values['backchannel-logout-uri']
          ? { backchannelLogoutUri: values['backchannel-logout-uri'] }
          : {}),
        ...(oneDevice ? { oneDevicePerSite: oneDevice === 'true' } : {}),
        ...(dpopBound ? { dpopBoundTokens: dpopBound === 'true' } : {}),
        ...(values.fedcm ? { fedcm: values.fedcm === 'true' } : {}),
        ...(values['privacy-policy-url'] ? { privacyPolicyUrl: values['privacy-policy-url'] } : {}),
        ...(values['terms-of-service-url'] ? { termsOfServiceUrl: values['terms-of-service-url'] } : {}),
      })
      await recordAudit(deps, { type: 'cli_site_registered', actor: 'cli', siteId: site.id })
      return answer(
        0,
        { site: siteJson(site), authkey, client_id: site.id, client_secret: clientSecret },
        () => [
          `site ${site.id} registered (version ${site.authkeyVersion})`,
          `origins:       ${site.origins.join(' ')}`,
          `redirect URIs: ${site.redirectUris.join(' ')}`,
          `authkey:       ${authkey}`,
          `client id:     ${site.id}`,
          `client secret: ${clientSecret}   (shown once; the site backend uses it for introspection)`,
        ],
      )
    }
    if (noun === 'site' && verb === 'list') {
      const sites = await deps.store.sites.list()
      return answer(0, { sites: sites.map(siteJson) }, () =>
        sites.length === 0
          ? ['no sites registered']
          : sites.map(
              (s) =>
                `${s.id}\t${s.name}\t${s.origins.join(',')}\tttl=${s.tokenTtlSeconds}s\trefresh=${s.refreshBeforeSeconds}s-before,idle=${s.refreshIdleSeconds}s,max=${s.refreshAbsoluteSeconds}s\tone-device=${s.oneDevicePerSite}\tdpop-bound=${s.dpopBoundTokens}${s.fedcm ? '\tfedcm' : ''}\tv${s.authkeyVersion}`,
            ),
      )
    }
    if (noun === 'site' && verb === 'remove' && positionals[0]) {
      const id = positionals[0]
      const removed = await removeSite(deps, id)
      if (removed) await recordAudit(deps, { type: 'cli_site_removed', actor: 'cli', siteId: id })
      return answer(removed ? 0 : 1, { id, removed }, () => [
        removed ? `site ${id} removed` : `no site ${id}`,
      ])
    }
    if (noun === 'store' && verb === 'import-sqlite' && positionals[0]) {
      if (deps.config.databaseUrl === '' || !io.masterKey) {
        throw new PassportError(
          'invalid_request',
          'set PASSPORT_DATABASE_URL to the PostgreSQL database to fill',
        )
      }
      const file = path.resolve(positionals[0])
      const report = await importSqliteIntoPostgres({
        sqliteFile: file,
        databaseUrl: deps.config.databaseUrl,
        masterKey: io.masterKey,
      })
      await recordAudit(deps, {
        type: 'cli_store_imported',
        actor: 'cli',
        detail: { tables: report.tables.length },
      })
      return answer(0, { imported: report.tables }, () => [
        `imported ${file} into PostgreSQL:`,
        ...report.tables.map((t) => `  ${t.table}\t${t.rows}`),
      ])
    }
    if (noun === 'site' && verb === 'authkey' && positionals[0]) {
      const site = await deps.store.sites.get(positionals[0])
      if (!site) {
        const description = `no site ${positionals[0]}`
        return answer(1, { error: 'not_found', error_description: description }, () => [description])
      }
      const authkey = await issueAuthkey(deps, site)
      return answer(0, { id: site.id, authkey }, () => [authkey])
    }
    if (noun === 'session' && verb === 'list' && values.user) {
      const user = await deps.store.users.findByUsername(values.user)
      if (!user) throw new PassportError('not_found', `no user ${values.user}`)
      const sessions = await deps.store.sessions.listByUser(user.id)
      const now = deps.clock.now()
      const stateOf = (s: (typeof sessions)[number]) =>
        s.endedAt !== null ? 'ended' : s.expiresAt <= now ? 'expired' : 'live'
      // Sockets live in the running passport, not in this process: ask it, for live sessions only.
      const live = sessions.filter((s) => stateOf(s) === 'live').map((s) => s.id)
      const presence: PresenceAnswer =
        live.length === 0
          ? { ok: true, sessions: {} }
          : await (io.presence ?? ((ids) => fetchPresence(io.management ?? null, ids)))(live)
      const socketsOf = (id: string) => (presence.ok ? (presence.sessions[id] ?? {}) : null)
      const socketsText = (id: string) => {
        const sockets = socketsOf(id)
        if (sockets === null) return 'sockets=?'
        const entries = Object.entries(sockets)
        return entries.length === 0
          ? 'sockets=none'
          : `sockets=${entries.map(([k, n]) => `${k}:${n}`).join(',')}`
      }
      return answer(
        0,
        {
          user: { id: user.id, username: user.username },
          presence: presence.ok ? 'ok' : 'unavailable',
          sessions: sessions.map((s) => ({
            id: s.id,
            state: stateOf(s),
            end_reason: s.endReason,
            created_at: iso(s.createdAt),
            last_seen_at: iso(s.lastSeenAt),
            expires_at: iso(s.expiresAt),
            method: s.method ?? null,
            user_agent: s.userAgent,
            live_sockets: stateOf(s) === 'live' ? socketsOf(s.id) : {},
          })),
        },
        () => [
          ...(sessions.length === 0 ? ['no sessions'] : []),
          ...sessions.map((s) => {
            const state = stateOf(s) === 'ended' ? `ended (${s.endReason})` : stateOf(s)
            const sockets = stateOf(s) === 'live' ? `\t${socketsText(s.id)}` : ''
            return `${s.id}\t${new Date(s.createdAt).toISOString()}\t${state}${sockets}\t${s.userAgent.slice(0, 60)}`
          }),
          ...(presence.ok ? [] : [`(live sockets unknown: ${presence.reason})`]),
        ],
      )
    }
    if (noun === 'session' && verb === 'revoke' && positionals[0]) {
      const session = await deps.store.sessions.get(positionals[0])
      if (!session) throw new PassportError('not_found', `no session ${positionals[0]}`)
      if (session.endedAt !== null) {
        return answer(0, { id: session.id, revoked: false, end_reason: session.endReason }, () => [
          `session already ended (${session.endReason})`,
        ])
      }
      await endSession(deps, session, 'revoked')
      await recordAudit(deps, {
        type: 'cli_session_revoked',
        actor: 'cli',
        userId: session.userId,
        sessionId: session.id,
      })
      return answer(0, { id: session.id, revoked: true, end_reason: 'revoked' }, () => [
        `session ${session.id} revoked`,
      ])
    }
    if (noun === 'keys' && verb === 'rotate' && positionals.length === 0) {
      const rotated = await rotateSigningKey(deps.store, deps.clock.now())
      return answer(
        0,
        { kid: rotated.kid, active_from: iso(rotated.activeFrom), dropped: rotated.dropped },
        () => [
          `signing key ${rotated.kid} published; it signs from ${new Date(rotated.activeFrom).toISOString()}`,
          ...(rotated.dropped.length ? [`retired keys removed: ${rotated.dropped.join(' ')}`] : []),
        ],
      )
    }
    if (noun === 'user' && verb === 'password' && positionals[0]) {
      const user = await deps.store.users.findByUsername(positionals[0])
      if (!user) throw new PassportError('not_found', `no user ${positionals[0]}`)
      const password = (await io.readSecret()).trim()
      if (password.length < 8)
        throw new PassportError('invalid_request', 'passwords need at least 8 characters')
      // A password change ends every sign-in made with the old one.
      const ended = await resetPassword(deps, user, password)
      await recordAudit(deps, { type: 'cli_password_reset', actor: 'cli', userId: user.id })
      return answer(0, { username: user.username, sessions_signed_out: ended }, () => [
        `password of ${user.username} changed; ${ended} session(s) signed out`,
      ])
    }
    if (noun === 'user' && verb === 'admin' && positionals[0] && /^(on|off)$/.test(positionals[1] ?? '')) {
      const user = await deps.store.users.findByUsername(positionals[0])
      if (!user) throw new PassportError('not_found', `no user ${positionals[0]}`)
      const on = positionals[1] === 'on'
      await deps.store.users.setAdmin(user.id, on)
      await recordAudit(deps, {
        type: on ? 'cli_admin_granted' : 'cli_admin_revoked',
        actor: 'cli',
        userId: user.id,
      })
      return answer(0, { username: user.username, admin: on }, () => [
        `${user.username} ${on ? 'may' : 'may no longer'} use the console`,
      ])
    }
    if (noun === 'user' && (verb === 'disable' || verb === 'enable') && positionals[0]) {
      const user = await deps.store.users.findByUsername(positionals[0])
      if (!user) throw new PassportError('not_found', `no user ${positionals[0]}`)
      const ended = await setUserDisabled(deps, user, verb === 'disable')
      await recordAudit(deps, { type: `cli_user_${verb}d`, actor: 'cli', userId: user.id })
      return answer(
        0,
        { username: user.username, disabled: verb === 'disable', sessions_signed_out: ended },
        () => [`${user.username} ${verb}d${verb === 'disable' ? `; ${ended} session(s) signed out` : ''}`],
      )
    }
    if (noun === 'audit') {
      const time = (flag: string, value: string | undefined) => {
        if (value === undefined) return undefined
        const ms = Date.parse(value)
        if (!Number.isFinite(ms))
          throw new PassportError('invalid_request', `--${flag} takes an ISO 8601 time`)
        return ms
      }
      const since = time('since', values.since)
      const until = time('until', values.until)
      let userId: string | undefined
      if (values.user) {
        const user = await deps.store.users.findByUsername(values.user)
        if (!user) throw new PassportError('not_found', `no user ${values.user}`)
        userId = user.id
      }
      const events = await listAudit(deps, {
        ...(userId ? { userId } : {}),
        ...(values.site ? { siteId: values.site } : {}),
        ...(values.type ? { type: values.type } : {}),
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
        ...(values.limit ? { limit: Number(values.limit) } : {}),
      })
      return answer(
        0,
        {
          events: events.map((e) => ({
            id: e.id,
            at: iso(e.at),
            type: e.type,
            actor: e.actor,
            user_id: e.userId,
            site_id: e.siteId,
            session_id: e.sessionId,
            detail: e.detail,
          })),
        },
        () =>
          events.length === 0
            ? ['no audit events']
            : events.map(
                (e) =>
                  `${new Date(e.at).toISOString()}\t${e.type}\tactor=${e.actor ?? '-'}\tuser=${e.userId ?? '-'}\tsite=${e.siteId ?? '-'}\tsession=${e.sessionId?.slice(0, 12) ?? '-'}\t${JSON.stringify(e.detail)}`,
              ),
      )
    }
    if (noun === 'user' && verb === 'add' && positionals[0]) {
      const username = positionals[0]
      if (!/^[a-z0-9._-]{1,64}$/i.test(username))
        throw new PassportError('invalid_request', 'usernames are 1-64 of a-z, 0-9, . _ -')
      if (await deps.store.users.findByUsername(username))
        throw new PassportError('invalid_request', `user ${username} exists`)
      const created = await createUser(deps, {
        username,
        ...(values.name ? { name: values.name } : {}),
        password: await io.readSecret(),
        isAdmin: values.admin === true,
      })
      await recordAudit(deps, {
        type: 'cli_user_added',
        actor: 'cli',
        userId: created.id,
        detail: { admin: values.admin === true },
      })
      return answer(
        0,
        {
          user: { id: created.id, username, name: created.name, ...(created.isAdmin ? { admin: true } : {}) },
        },
        () => [`user ${username} created${values.admin ? ' (admin)' : ''}`],
      )
    }
  } catch (err) {
    if (err instanceof PassportError) {
      return answer(1, { error: err.code, error_description: err.description ?? null }, () => [
        `error: ${err.code}: ${err.description ?? ''}`,
      ])
    }
    throw err
  }
  return usage(2)
}
