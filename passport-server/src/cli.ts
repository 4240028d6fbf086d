import { parseArgs } from 'node:util'
import type { AppDeps } from './deps.ts'
import { PassportError } from './errors.ts'
import { listAudit, recordAudit } from './services/audit.ts'
import { issueAuthkey, registerSite } from './services/registry.ts'
import { endSession } from './services/sessions.ts'
import { removeSite } from './services/site-removal.ts'
import { createUser, resetPassword, setUserDisabled } from './services/users.ts'
import { rotateSigningKey } from './tokens/keys.ts'

export const CLI_USAGE = `usage: npm run passport -- <command>

  site add --id ID --origin ORIGIN [--origin ORIGIN …] [--name NAME]
           [--redirect-uri URI …] [--login-mode password|device|ciba …]
           [--token-ttl SECONDS] [--one-device-per-site true|false] [--dpop-bound-tokens true|false]
           [--refresh-idle SECONDS]
           [--refresh-absolute SECONDS] [--refresh-before SECONDS]
           [--backchannel-logout-uri URL]
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
  keys rotate                     Adds a signing key: in the JWKS at once, signing in 5 minutes;
                                  the old key keeps verifying until its tokens have expired.`

export interface CliIo {
  out: (line: string) => void
  readSecret: () => Promise<string>
}

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
      user: { type: 'string' },
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
  let parsed: ReturnType<typeof parseCliOptions>
  try {
    // Session ids are base64url and may begin with '-': never read one as an option.
    // `audit` has no verb: its options start right after it.
    const args = noun === 'audit' ? argv.slice(1) : rest
    parsed = parseCliOptions(noun === 'session' && verb === 'revoke' ? ['--', ...rest] : args)
  } catch (err) {
    // Unknown option or missing value: say which, then how to call it; change nothing.
    io.out(`error: ${(err as Error).message}`)
    io.out(CLI_USAGE)
    return 2
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
      })
      await recordAudit(deps, { type: 'cli_site_registered', actor: 'cli', siteId: site.id })
      io.out(`site ${site.id} registered (version ${site.authkeyVersion})`)
      io.out(`origins:       ${site.origins.join(' ')}`)
      io.out(`redirect URIs: ${site.redirectUris.join(' ')}`)
      io.out(`authkey:       ${authkey}`)
      io.out(`client id:     ${site.id}`)
      io.out(`client secret: ${clientSecret}   (shown once; the site backend uses it for introspection)`)
      return 0
    }
    if (noun === 'site' && verb === 'list') {
      const sites = await deps.store.sites.list()
      if (sites.length === 0) io.out('no sites registered')
      for (const s of sites) {
        io.out(
          `${s.id}\t${s.name}\t${s.origins.join(',')}\tttl=${s.tokenTtlSeconds}s\trefresh=${s.refreshBeforeSeconds}s-before,idle=${s.refreshIdleSeconds}s,max=${s.refreshAbsoluteSeconds}s\tone-device=${s.oneDevicePerSite}\tdpop-bound=${s.dpopBoundTokens}\tv${s.authkeyVersion}`,
        )
      }
      return 0
    }
    if (noun === 'site' && verb === 'remove' && positionals[0]) {
      const removed = await removeSite(deps, positionals[0])
      if (removed) await recordAudit(deps, { type: 'cli_site_removed', actor: 'cli', siteId: positionals[0] })
      io.out(removed ? `site ${positionals[0]} removed` : `no site ${positionals[0]}`)
      return removed ? 0 : 1
    }
    if (noun === 'site' && verb === 'authkey' && positionals[0]) {
      const site = await deps.store.sites.get(positionals[0])
      if (!site) {
        io.out(`no site ${positionals[0]}`)
        return 1
      }
      io.out(await issueAuthkey(deps, site))
      return 0
    }
    if (noun === 'session' && verb === 'list' && values.user) {
      const user = await deps.store.users.findByUsername(values.user)
      if (!user) throw new PassportError('not_found', `no user ${values.user}`)
      const sessions = await deps.store.sessions.listByUser(user.id)
      if (sessions.length === 0) io.out('no sessions')
      const now = deps.clock.now()
      for (const s of sessions) {
        const state = s.endedAt !== null ? `ended (${s.endReason})` : s.expiresAt <= now ? 'expired' : 'live'
        io.out(`${s.id}\t${new Date(s.createdAt).toISOString()}\t${state}\t${s.userAgent.slice(0, 60)}`)
      }
      return 0
    }
    if (noun === 'session' && verb === 'revoke' && positionals[0]) {
      const session = await deps.store.sessions.get(positionals[0])
      if (!session) throw new PassportError('not_found', `no session ${positionals[0]}`)
      if (session.endedAt !== null) {
        io.out(`session already ended (${session.endReason})`)
        return 0
      }
      await endSession(deps, session, 'revoked')
      await recordAudit(deps, {
        type: 'cli_session_revoked',
        actor: 'cli',
        userId: session.userId,
        sessionId: session.id,
      })
      io.out(`session ${session.id} revoked`)
      return 0
    }
    if (noun === 'keys' && verb === 'rotate' && positionals.length === 0) {
      const rotated = await rotateSigningKey(deps.store, deps.clock.now())
      io.out(
        `signing key ${rotated.kid} published; it signs from ${new Date(rotated.activeFrom).toISOString()}`,
      )
      if (rotated.dropped.length) io.out(`retired keys removed: ${rotated.dropped.join(' ')}`)
      return 0
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
      io.out(`password of ${user.username} changed; ${ended} session(s) signed out`)
      return 0
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
      io.out(`${user.username} ${on ? 'may' : 'may no longer'} use the console`)
      return 0
    }
    if (noun === 'user' && (verb === 'disable' || verb === 'enable') && positionals[0]) {
      const user = await deps.store.users.findByUsername(positionals[0])
      if (!user) throw new PassportError('not_found', `no user ${positionals[0]}`)
      const ended = await setUserDisabled(deps, user, verb === 'disable')
      await recordAudit(deps, { type: `cli_user_${verb}d`, actor: 'cli', userId: user.id })
      io.out(`${user.username} ${verb}d${verb === 'disable' ? `; ${ended} session(s) signed out` : ''}`)
      return 0
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
      if (events.length === 0) io.out('no audit events')
      for (const e of events) {
        io.out(
          `${new Date(e.at).toISOString()}\t${e.type}\tactor=${e.actor ?? '-'}\tuser=${e.userId ?? '-'}\tsite=${e.siteId ?? '-'}\tsession=${e.sessionId?.slice(0, 12) ?? '-'}\t${JSON.stringify(e.detail)}`,
        )
      }
      return 0
    }
    if (noun === 'user' && verb === 'add' && positionals[0]) {
      const username = positionals[0]
      // Checked before the password is asked for (createUser checks it again).
      if (!/^[a-z0-9._-]{1,64}$/i.test(username))
        throw new PassportError('invalid_request', 'usernames are 1-64 of a-z, 0-9, . _ -')
      if (await deps.store.users.findByUsername(username))
        throw new PassportError('invalid_request', `user ${username} exists`)
      const user = await createUser(deps, {
        username,
        ...(values.name ? { name: values.name } : {}),
        password: await io.readSecret(),
        isAdmin: values.admin === true,
      })
      await recordAudit(deps, {
        type: 'cli_user_added',
        actor: 'cli',
        userId: user.id,
        detail: { admin: values.admin === true },
      })
      io.out(`user ${username} created${values.admin ? ' (admin)' : ''}`)
      return 0
    }
  } catch (err) {
    if (err instanceof PassportError) {
      io.out(`error: ${err.code}: ${err.description ?? ''}`)
      return 1
    }
    throw err
  }
  io.out(CLI_USAGE)
  return 2
}
