import { parseExactOrigin } from '../../../passport-frame/src/protocol/origins.ts'
import { randomSecret, sameSecret, sha256 } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import type { SiteRecord } from '../store/types.ts'
import { openAuthkeyCached, sealAuthkey } from '../tokens/authkey.ts'

/**
 * How a site's users may sign in: `password` on the sign-in page, `device` ("Sign in with another
 * device" on that page), `ciba` (the site's backend asks by username, docs/device-approval.md).
 */
export const LOGIN_MODES = ['password', 'device', 'ciba'] as const
export type LoginMode = (typeof LOGIN_MODES)[number]
/** A site added without `--login-mode` gets password only: approval-based ways are opt-in. */
export const DEFAULT_LOGIN_MODES: readonly LoginMode[] = ['password']

export function allowsLoginMode(site: Pick<SiteRecord, 'loginModes'>, mode: LoginMode): boolean {
  return site.loginModes.includes(mode)
}
const SITE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/

export interface SiteInput {
  id: string
  name?: string
  origins: string[]
  redirectUris?: string[]
  loginModes?: string[]
  tokenTtlSeconds?: number
  refreshIdleSeconds?: number
  refreshAbsoluteSeconds?: number
  refreshBeforeSeconds?: number
  backchannelLogoutUri?: string | null
  oneDevicePerSite?: boolean
  dpopBoundTokens?: boolean
  fedcm?: boolean
  privacyPolicyUrl?: string | null
  termsOfServiceUrl?: string | null
}

/** Defaults, documented in the README: 15-minute tokens refreshed 5 minutes early; a device
 * that has not refreshed for a day, or signed in 30 days ago, signs in to the site again. */
export const SITE_DEFAULTS = {
  tokenTtlSeconds: 900,
  refreshIdleSeconds: 86_400,
  refreshAbsoluteSeconds: 30 * 86_400,
  refreshBeforeSeconds: 300,
} as const

/**
 * Whether a site on this origin can keep its tokens and authkey to itself: https, or plain http
 * where the traffic never leaves the machine (loopback addresses, `localhost` and `*.localhost`,
 * which browsers resolve to loopback). A plain-http site elsewhere hands every token to the
 * network, and browsers treat such a page as insecure (no Web Locks, no secure cookies).
 */
export function isSecureOrigin(origin: string): boolean {
  const url = new URL(origin)
  if (url.protocol === 'https:') return true
  const host = url.hostname
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
  )
}

/** Validates operator input into a site record; throws `invalid_request` naming the field. */
export function validateSiteInput(
  input: SiteInput,
): Omit<SiteRecord, 'authkeyVersion' | 'clientSecretHash' | 'createdAt'> {
  const bad = (what: string) => new PassportError('invalid_request', what)
  if (!SITE_ID.test(input.id)) throw bad('site id must be 1-63 of a-z, 0-9 and -')
  if (input.origins.length === 0) throw bad('a site needs at least one origin')
  const origins = input.origins.map((o) => {
    if (parseExactOrigin(o) === null)
      throw bad(`not an exact origin (scheme://host[:port], no path, no wildcard): ${o}`)
    if (!isSecureOrigin(o))
      throw bad(`an origin must be https (plain http only on loopback or *.localhost): ${o}`)
    return o
  })
  const redirectUris = (input.redirectUris?.length ? input.redirectUris : origins.map((o) => `${o}/`)).map(
    (uri) => {
      let url: URL
      try {
        url = new URL(uri)
      } catch {
        throw bad(`not a URL: ${uri}`)
      }
      // `url.hash` is '' for a bare trailing '#', so look for the character itself: the response
      // is sent in the fragment, and a registered one would garble it.
      if (!origins.includes(url.origin) || uri.includes('#') || url.href !== uri) {
        throw bad(`redirect URI must be an exact URL on one of the site's origins, without fragment: ${uri}`)
      }
      return uri
    },
  )
  const loginModes = input.loginModes?.length ? input.loginModes : [...DEFAULT_LOGIN_MODES]
  for (const mode of loginModes) {
    if (!(LOGIN_MODES as readonly string[]).includes(mode)) throw bad(`unknown login mode: ${mode}`)
  }
  const tokenTtlSeconds = input.tokenTtlSeconds ?? SITE_DEFAULTS.tokenTtlSeconds
  if (!Number.isInteger(tokenTtlSeconds) || tokenTtlSeconds < 60 || tokenTtlSeconds > 86400) {
    throw bad('token lifetime must be 60 to 86400 seconds')
  }
  const refreshBeforeSeconds =
    input.refreshBeforeSeconds ??
    Math.min(SITE_DEFAULTS.refreshBeforeSeconds, Math.floor(tokenTtlSeconds / 3))
  if (
    !Number.isInteger(refreshBeforeSeconds) ||
    refreshBeforeSeconds < 10 ||
    refreshBeforeSeconds >= tokenTtlSeconds
  ) {
    throw bad('refresh-before must be at least 10 seconds and less than the token lifetime')
  }
  const refreshAbsoluteSeconds = input.refreshAbsoluteSeconds ?? SITE_DEFAULTS.refreshAbsoluteSeconds
  const refreshIdleSeconds =
    input.refreshIdleSeconds ?? Math.min(SITE_DEFAULTS.refreshIdleSeconds, refreshAbsoluteSeconds)
  if (
    !Number.isInteger(refreshIdleSeconds) ||
    !Number.isInteger(refreshAbsoluteSeconds) ||
    refreshIdleSeconds < tokenTtlSeconds ||
    refreshAbsoluteSeconds < refreshIdleSeconds ||
    refreshAbsoluteSeconds > 365 * 86_400
  ) {
    throw bad('refresh lifetimes: token lifetime ≤ idle ≤ absolute ≤ 365 days, in whole seconds')
  }
  // Shown as links in the browser's own dialog: https only (http on loopback for the demo).
  const policyUrl = (value: string | null | undefined, what: string): string | null => {
    if (!value) return null
    let url: URL
    try {
      url = new URL(value)
    } catch {
      throw bad(`not a URL: ${value}`)
    }
    if (!isSecureOrigin(url.origin) || url.username || url.password || url.href !== value) {
      throw bad(`the ${what} URL must be an exact https URL without credentials: ${value}`)
    }
    return value
  }
  const privacyPolicyUrl = policyUrl(input.privacyPolicyUrl, 'privacy policy')
  const termsOfServiceUrl = policyUrl(input.termsOfServiceUrl, 'terms of service')
  let backchannelLogoutUri: string | null = null
  if (input.backchannelLogoutUri) {
    let url: URL
    try {
      url = new URL(input.backchannelLogoutUri)
    } catch {
      throw bad(`not a URL: ${input.backchannelLogoutUri}`)
    }
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.hash || url.username || url.password) {
      throw bad('the back-channel logout URI must be an http(s) URL without fragment or credentials')
    }
    backchannelLogoutUri = url.href
  }
  return {
    id: input.id,
    name: input.name?.trim() || input.id,
    origins,
    redirectUris,
    loginModes,
    tokenTtlSeconds,
    refreshIdleSeconds,
    refreshAbsoluteSeconds,
    refreshBeforeSeconds,
    backchannelLogoutUri,
    oneDevicePerSite: input.oneDevicePerSite ?? true,
    dpopBoundTokens: input.dpopBoundTokens ?? false,
    ...(input.fedcm ? { fedcm: true } : {}),
    ...(privacyPolicyUrl ? { privacyPolicyUrl } : {}),
    ...(termsOfServiceUrl ? { termsOfServiceUrl } : {}),
  }
}

export interface RegisteredSite {
  site: SiteRecord
  /** Shown once; only its hash is stored. */
  clientSecret: string
  authkey: string
}

export function issueAuthkey(deps: Pick<AppDeps, 'keys'>, site: SiteRecord): Promise<string> {
  return sealAuthkey(deps.keys.authkeyKey, {
    siteId: site.id,
    origins: site.origins,
    version: site.authkeyVersion,
  })
}

/** Registers a new site, or replaces the config of an existing one (which voids its old authkeys). */
export async function registerSite(
  deps: Pick<AppDeps, 'store' | 'keys' | 'clock'>,
  input: SiteInput,
): Promise<RegisteredSite> {
  const fields = validateSiteInput(input)
  const clientSecret = randomSecret()
  const site = await deps.store.transaction(async (tx) => {
    const existing = await tx.sites.get(fields.id)
    // Versions never restart: an id removed and registered again continues after its old
    // authkeys, which would otherwise open again (same id, same origins, version 1).
    const previous = Math.max(existing?.authkeyVersion ?? 0, await tx.sites.retiredVersion(fields.id))
    const record: SiteRecord = {
      ...fields,
      authkeyVersion: previous + 1,
      clientSecretHash: sha256(clientSecret),
      createdAt: existing?.createdAt ?? deps.clock.now(),
    }
    await (existing ? tx.sites.update(record) : tx.sites.create(record))
    return record
  })
  return { site, clientSecret, authkey: await issueAuthkey(deps, site) }
}

/**
 * Changes an existing site's settings from the console, keeping its client secret (the site
 * backend keeps working). Its authkey version is bumped (older authkeys stop working) when its
 * origins change, since an authkey names them, or when `rotateAuthkey` asks for it; a change of
 * lifetimes or login modes alone keeps the authkeys the site already embeds.
 */
export async function updateSite(
  deps: Pick<AppDeps, 'store' | 'keys'>,
  input: SiteInput,
  options: { rotateAuthkey?: boolean } = {},
): Promise<{ site: SiteRecord; authkey: string; rotated: boolean } | null> {
  const fields = validateSiteInput(input)
  const updated = await deps.store.transaction(async (tx) => {
    const existing = await tx.sites.get(fields.id)
    if (!existing) return null
    const rotated =
      options.rotateAuthkey === true || existing.origins.join('\n') !== fields.origins.join('\n')
    const record: SiteRecord = {
      ...fields,
      authkeyVersion: existing.authkeyVersion + (rotated ? 1 : 0),
      clientSecretHash: existing.clientSecretHash,
      createdAt: existing.createdAt,
    }
    await tx.sites.update(record)
    return { site: record, rotated }
  })
  if (!updated) return null
  return { ...updated, authkey: await issueAuthkey(deps, updated.site) }
}

/** A site's settings as `SiteInput` (to change one field and save the rest as they are). */
export function siteInputOf(site: SiteRecord): SiteInput {
  return {
    id: site.id,
    name: site.name,
    origins: [...site.origins],
    redirectUris: [...site.redirectUris],
    loginModes: [...site.loginModes],
    tokenTtlSeconds: site.tokenTtlSeconds,
    refreshIdleSeconds: site.refreshIdleSeconds,
    refreshAbsoluteSeconds: site.refreshAbsoluteSeconds,
    refreshBeforeSeconds: site.refreshBeforeSeconds,
    backchannelLogoutUri: site.backchannelLogoutUri,
    oneDevicePerSite: site.oneDevicePerSite,
    dpopBoundTokens: site.dpopBoundTokens,
  }
}

/**
 * Registers a site unless it is registered with the same config, in which case only its client
 * secret is replaced (its authkeys stay valid). Used by the demo, which starts with fresh secrets.
 */
export async function ensureSite(
  deps: Pick<AppDeps, 'store' | 'keys' | 'clock'>,
  input: SiteInput,
): Promise<RegisteredSite> {
  const fields = validateSiteInput(input)
  const existing = await deps.store.sites.get(fields.id)
  const configOf = (x: typeof fields) =>
    JSON.stringify([
      x.name,
      x.origins,
      x.redirectUris,
      x.loginModes,
      x.tokenTtlSeconds,
      x.refreshIdleSeconds,
      x.refreshAbsoluteSeconds,
      x.refreshBeforeSeconds,
      x.backchannelLogoutUri,
      x.oneDevicePerSite,
      x.dpopBoundTokens,
      x.fedcm ?? false,
      x.privacyPolicyUrl ?? null,
      x.termsOfServiceUrl ?? null,
    ])
  const same = existing !== null && configOf(existing) === configOf(fields)
  if (!existing || !same) return registerSite(deps, input)
  const clientSecret = randomSecret()
  const site = { ...existing, clientSecretHash: sha256(clientSecret) }
  await deps.store.sites.update(site)
  return { site, clientSecret, authkey: await issueAuthkey(deps, site) }
}

/**
 * Opens an authkey and checks it against the live registry: the site must still exist, at the
 * same version and with the same origins. Any failure is the same `invalid_authkey`.
 */
export async function resolveAuthkey(
  deps: Pick<AppDeps, 'store' | 'keys' | 'log'>,
  authkey: unknown,
): Promise<SiteRecord> {
  const content = typeof authkey === 'string' ? await openAuthkeyCached(deps.keys.authkeyKey, authkey) : null
  const site = content && (await deps.store.sites.get(content.siteId))
  if (
    !content ||
    !site ||
    site.authkeyVersion !== content.version ||
    site.origins.join('\n') !== content.origins.join('\n')
  ) {
    deps.log('authkey_invalid', { site: content?.siteId })
    throw new PassportError('invalid_authkey', 'the authkey is not valid for any registered site')
  }
  return site
}

/** HTTP Basic client authentication of a site backend (RFC 6749 §2.3.1). */
export async function authenticateSite(
  deps: Pick<AppDeps, 'store' | 'log'>,
  authorization: string | undefined,
): Promise<SiteRecord> {
  const fail = () => new PassportError('invalid_client', 'site credentials are missing or wrong')
  if (!authorization?.startsWith('Basic ') || authorization.length > 1024) throw fail()
  const decoded = Buffer.from(authorization.slice(6), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 1) throw fail()
  let id: string
  let secret: string
  try {
    id = decodeURIComponent(decoded.slice(0, colon))
    secret = decodeURIComponent(decoded.slice(colon + 1))
  } catch {
    throw fail()
  }
  return checkClientSecret(deps, id, secret)
}

/**
 * The token endpoint's client authentication: HTTP Basic (`client_secret_basic`) or the
 * credentials in the form (`client_secret_post`), never both at once (RFC 6749 §2.3).
 */
export async function authenticateClient(
  deps: Pick<AppDeps, 'store' | 'log'>,
  authorization: string | undefined,
  form: Record<string, string>,
): Promise<SiteRecord> {
  if (authorization !== undefined) {
    if (form.client_secret !== undefined) {
      throw new PassportError('invalid_request', 'use one way of client authentication')
    }
    const site = await authenticateSite(deps, authorization)
    if (form.client_id !== undefined && form.client_id !== site.id) {
      throw new PassportError('invalid_client', 'site credentials are missing or wrong')
    }
    return site
  }
  const id = form.client_id ?? ''
  const secret = form.client_secret ?? ''
  if (!id || !secret || id.length > 64 || secret.length > 256) {
    throw new PassportError('invalid_client', 'site credentials are missing or wrong')
  }
  return checkClientSecret(deps, id, secret)
}

async function checkClientSecret(
  deps: Pick<AppDeps, 'store' | 'log'>,
  id: string,
  secret: string,
): Promise<SiteRecord> {
  const site = await deps.store.sites.get(id)
  // Compare hashes of a 256-bit random secret in constant time; a slow KDF adds nothing here.
  const expected = site?.clientSecretHash ?? sha256('no-such-site')
  if (!site || !sameSecret(expected, sha256(secret))) {
    deps.log('authz_fail', { site: site ? id : undefined })
    throw new PassportError('invalid_client', 'site credentials are missing or wrong')
  }
  return site
}
