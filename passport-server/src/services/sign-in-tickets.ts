import { createHmac, randomBytes } from 'node:crypto'
import { sameSecret } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'

/**
 * Short-lived, single-use tickets the SCRAM socket hands the page, redeemed by an ordinary
 * top-level form post (so cookies and redirects work as they always did, on any instance):
 *
 * - `result`: the sign-in succeeded; the post to `/login/scram` signs the browser in.
 * - `fallback`: the proof was refused; the password form may post once for the same username
 *   without counting a second failure (the socket already counted this attempt).
 *
 * A ticket is `base64url(JSON claims).base64url(HMAC-SHA-256)` under a key derived from the
 * server's SCRAM secret, bound to the client address the socket saw and the site (or the
 * username), valid one minute; its id is claimed in the store on use, so it opens once.
 */
export const SIGN_IN_TICKET_TTL_MS = 60_000

export type TicketKind = 'result' | 'fallback'
interface TicketClaims {
  kind: TicketKind
  id: string
  /** result: the user id; fallback: the username typed. */
  subject: string
  siteId: string
  address: string
  exp: number
}

function mac(deps: Pick<AppDeps, 'keys'>, body: string): string {
  const key = createHmac('sha256', deps.keys.scramSecret).update('sign-in-ticket').digest()
  return createHmac('sha256', key).update(body).digest('base64url')
}

export function issueSignInTicket(
  deps: Pick<AppDeps, 'keys' | 'clock'>,
  claims: Omit<TicketClaims, 'id' | 'exp'>,
): string {
  const full: TicketClaims = {
    ...claims,
    id: randomBytes(16).toString('base64url'),
    exp: deps.clock.now() + SIGN_IN_TICKET_TTL_MS,
  }
  const body = Buffer.from(JSON.stringify(full)).toString('base64url')
  return `${body}.${mac(deps, body)}`
}

/**
 * The ticket's subject if it is genuine, of this kind, for this site and address, unexpired,
 * and not redeemed before (claimed now); otherwise null.
 */
export async function redeemSignInTicket(
  deps: Pick<AppDeps, 'keys' | 'clock' | 'store'>,
  ticket: string | undefined,
  expect: { kind: TicketKind; siteId: string; address: string },
): Promise<string | null> {
  if (!ticket || ticket.length > 1024) return null
  const [body, tag, extra] = ticket.split('.')
  if (!body || !tag || extra !== undefined || !sameSecret(tag, mac(deps, body))) return null
  let claims: TicketClaims
  try {
    claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TicketClaims
  } catch {
    return null
  }
  if (
    claims.kind !== expect.kind ||
    claims.siteId !== expect.siteId ||
    claims.address !== expect.address ||
    typeof claims.exp !== 'number' ||
    claims.exp <= deps.clock.now() ||
    typeof claims.subject !== 'string'
  ) {
    return null
  }
  if (!(await deps.store.oneTimeIds.claim(`ticket:${claims.id}`, claims.exp))) return null
  return claims.subject
}
