import { type Context, Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import { encodeScramCredential, type ScramCredential } from '../crypto/scram.ts'
import type { AppDeps } from '../deps.ts'
import { pendingPrompts } from '../services/device-approval.ts'
import { createPasskeys, type Passkeys } from '../services/passkeys.ts'
import { openSealed, openSealedKey, sealAnswer } from '../services/sealed-answers.ts'
import { endSession, findLiveSession, SESSION_COOKIE, signedInRecently } from '../services/sessions.ts'
import { redeemSignInTicket } from '../services/sign-in-tickets.ts'
import type { SessionRecord } from '../store/types.ts'
import { listDevices } from './account.ts'
import { clientAddress } from './client-address.ts'

/**
 * Sealed account exchanges (issue 16 item 3; docs/sign-in.md): "Your devices", the passkey list,
 * the sign-in requests waiting for this user's approval, and a password change. A read, e.g.
 * "Your devices": `POST /account/devices/sealed` with
 * `{ "seal": <JWE> }`, a one-time content key wrapped to the passport's `enc` key for the
 * purpose `devices` (`passkeys`, `approvals`); the answer `{ "sealed": <JWE> }` is the list under that key, so
 * only the page that made the key reads it (not a TLS-terminating box, not a body log).
 *
 * Same-origin only (the passport's own pages): `Origin` must be the issuer and, where the
 * browser says, `Sec-Fetch-Site` same-origin; the session cookie says whose devices. Refusals:
 * 401 `login_required`, 403 `origin_not_allowed`, 400 `invalid_request` (a seal that is
 * malformed, replayed, tampered, for another key or another purpose).
 */
export function accountSealedRoutes(deps: AppDeps, passkeys: Passkeys = createPasskeys(deps)): Hono {
  const app = new Hono()

  /** What both exchanges check first: the passport's own page, a live session, a JSON body. */
  const readSealedAsk = async (
    c: Context,
  ): Promise<Response | { current: SessionRecord; body: { seal?: unknown } }> => {
    c.header('Cache-Control', 'no-store')
    const fetchSite = c.req.header('Sec-Fetch-Site')
    if (
      c.req.header('Origin') !== deps.config.issuer ||
      (fetchSite !== undefined && fetchSite !== 'same-origin')
    ) {
      return c.json({ error: 'origin_not_allowed' }, 403)
    }
    const current = await findLiveSession(deps, getCookie(c, SESSION_COOKIE))
    if (!current) return c.json({ error: 'login_required' }, 401)
    try {
      return { current, body: (await c.req.json()) as { seal?: unknown } }
    } catch {
      return c.json({ error: 'invalid_request' }, 400)
    }
  }

  /**
   * The sealed reads: the page's one-time key for `purpose`, the answer under it. A wrapped key
   * opens one answer only (its id is claimed), for the purpose it names only.
   */
  const sealedRead = (
    purpose: 'devices' | 'passkeys' | 'approvals',
    read: (current: SessionRecord) => Promise<Record<string, unknown>>,
  ) =>
    app.post(`/account/${purpose}/sealed`, async (c) => {
      const asked = await readSealedAsk(c)
      if (asked instanceof Response) return asked
      const { current, body } = asked
      const key = await openSealedKey(deps, purpose, body?.seal)
      if (!key) return c.json({ error: 'invalid_request', error_description: 'bad seal' }, 400)
      return c.json({ sealed: await sealAnswer(key, await read(current)) })
    })

  sealedRead('devices', async (current) => ({ devices: await listDevices(deps, current) }))
  // The passkey list: names (often a device's), sync state, last use.
  sealedRead('passkeys', async (current) => ({
    passkeys: await passkeys.list(current.userId),
    // Whether "Add a passkey" may be offered now without a fresh sign-in.
    can_add: signedInRecently(current, deps.clock.now()),
  }))
  // What another device asking to sign in says of itself: site, browser, address, message.
  sealedRead('approvals', async (current) => ({ approvals: await pendingPrompts(deps, current.userId) }))

  /**
   * A password change with neither password on the wire: the page proves the current password by
   * a SCRAM exchange for the passport itself (`site: ''`, whose one-time result is `reauth`), makes
   * the new credential itself (salt, iterations, StoredKey, ServerKey) and sends both sealed,
   * purpose `password`. The change signs every other device of the user out.
   */
  app.post('/account/password/sealed', async (c) => {
    const asked = await readSealedAsk(c)
    if (asked instanceof Response) return asked
    const { current, body } = asked
    const opened = await openSealed(deps, 'password', body?.seal)
    const credential = opened && readCredential(opened.claims.credential, deps.config.scramIterations)
    if (!opened || !credential || typeof opened.claims.reauth !== 'string') {
      return c.json({ error: 'invalid_request', error_description: 'bad seal' }, 400)
    }
    const proven = await redeemSignInTicket(deps, opened.claims.reauth, {
      kind: 'result',
      siteId: '',
      address: clientAddress(c, deps.config),
    })
    if (proven !== current.userId) {
      return c.json({ error: 'access_denied', error_description: 'prove the current password first' }, 403)
    }
    await deps.store.users.setPasswordHash(current.userId, encodeScramCredential(credential))
    const others = (await deps.store.sessions.listByUser(current.userId)).filter(
      (s) => s.endedAt === null && s.id !== current.id,
    )
    for (const session of others) await endSession(deps, session, 'revoked')
    deps.log('password_changed', { user: current.userId, by: 'account_page', signedOut: others.length })
    return c.json({ sealed: await sealAnswer(opened.key, { changed: true, signed_out: others.length }) })
  })
  return app
}

/** A credential the page made: sizes checked, and never cheaper than the configured iterations. */
function readCredential(value: unknown, minIterations: number): ScramCredential | null {
  const v = value as {
    salt?: unknown
    iterations?: unknown
    stored_key?: unknown
    server_key?: unknown
  } | null
  if (typeof v !== 'object' || v === null) return null
  const { salt, iterations, stored_key: storedKey, server_key: serverKey } = v
  if (typeof salt !== 'string' || typeof storedKey !== 'string' || typeof serverKey !== 'string') return null
  if (
    !Number.isSafeInteger(iterations) ||
    (iterations as number) < minIterations ||
    (iterations as number) > 10_000_000
  ) {
    return null
  }
  const c = {
    iterations: iterations as number,
    salt: Buffer.from(salt, 'base64'),
    storedKey: Buffer.from(storedKey, 'base64'),
    serverKey: Buffer.from(serverKey, 'base64'),
  }
  return c.salt.length >= 16 && c.salt.length <= 64 && c.storedKey.length === 32 && c.serverKey.length === 32
    ? c
    : null
}
