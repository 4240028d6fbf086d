import { parseArgs } from 'node:util'
import { hashPassword } from './auth/password.ts'
import type { AppDeps } from './deps.ts'
import { PassportError } from './errors.ts'
import { issueAuthkey, registerSite } from './services/registry.ts'
import { endSession } from './services/sessions.ts'
import { removeSite } from './services/site-removal.ts'
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
  user add USERNAME [--name NAME] Creates a user; reads the password from standard input.
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
      fedcm: { type: 'string' },
      'privacy-policy-url': { type: 'string' },
      'terms-of-service-url': { type: 'string' },
      user: { type: 'string' },
    },
  })
}

/** Runs one CLI command against the given dependencies. Returns the process exit code. */
export async function runCli(deps: AppDeps, argv: string[], io: CliIo): Promise<number> {
  const [noun, verb, ...rest] = argv
  let parsed: ReturnType<typeof parseCliOptions>
  try {
    // Session ids are base64url and may begin with '-': never read one as an option.
    parsed = parseCliOptions(noun === 'session' && verb === 'revoke' ? ['--', ...rest] : rest)
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
          `${s.id}\t${s.name}\t${s.origins.join(',')}\tttl=${s.tokenTtlSeconds}s\trefresh=${s.refreshBeforeSeconds}s-before,idle=${s.refreshIdleSeconds}s,max=${s.refreshAbsoluteSeconds}s\tone-device=${s.oneDevicePerSite}\tdpop-bound=${s.dpopBoundTokens}${s.fedcm ? '\tfedcm' : ''}\tv${s.authkeyVersion}`,
        )
      }
      return 0
    }
    if (noun === 'site' && verb === 'remove' && positionals[0]) {
      const removed = await removeSite(deps, positionals[0])
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
      await deps.store.users.setPasswordHash(user.id, await hashPassword(password, deps.config.scryptCost))
      // A password change ends every sign-in made with the old one.
      const live = (await deps.store.sessions.listByUser(user.id)).filter((s) => s.endedAt === null)
      for (const session of live) await endSession(deps, session, 'revoked')
      io.out(`password of ${user.username} changed; ${live.length} session(s) signed out`)
      return 0
    }
    if (noun === 'user' && verb === 'add' && positionals[0]) {
      const username = positionals[0]
      if (!/^[a-z0-9._-]{1,64}$/i.test(username))
        throw new PassportError('invalid_request', 'usernames are 1-64 of a-z, 0-9, . _ -')
      if (await deps.store.users.findByUsername(username))
        throw new PassportError('invalid_request', `user ${username} exists`)
      const password = (await io.readSecret()).trim()
      if (password.length < 8)
        throw new PassportError('invalid_request', 'passwords need at least 8 characters')
      await deps.store.users.create({
        id: `u_${crypto.randomUUID()}`,
        username,
        name: values.name?.slice(0, 64) || username,
        passwordHash: await hashPassword(password, deps.config.scryptCost),
        createdAt: deps.clock.now(),
      })
      io.out(`user ${username} created`)
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
