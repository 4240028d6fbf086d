import { randomSecret, sameSecret, sha256 } from '../auth/random.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import type { SiteRecord } from '../store/types.ts'
import { checkSiteToken } from './minting.ts'

/** A ticket is good for this long, once. */
export const LIVE_TICKET_TTL_MS = 30_000

/** Who a live connection belongs to, established from its ticket. */
export interface LiveBinding {
  userId: string
  sessionId: string
  siteId: string
  jti: string
}

export interface IssuedLiveTicket {
  ticket: string
  /** Issued with the ticket; the frame presents it in the WebSocket sub-protocol, not the URL. */
  registrationCode: string
  expiresAt: number
  /** Where a frame with no history of its own starts reading the event log. */
  lastEventId: number
}

/**
 * A connection ticket for the live channel: short-lived, single-use, bound to a valid site
 * token (hence its user, session and site) and to a registration code issued with it. No
 * long-lived credential ever goes into a WebSocket URL.
 */
export async function issueLiveTicket(
  deps: Pick<AppDeps, 'store' | 'keys' | 'clock' | 'config'>,
  site: SiteRecord,
  token: string,
): Promise<IssuedLiveTicket> {
  const status = await checkSiteToken(deps, token, site.id)
  if (!status.valid) {
    throw new PassportError('invalid_token', 'the token is not valid for this site', {
      extra: { reason: status.reason },
    })
  }
  const ticket = randomSecret()
  const registrationCode = randomSecret()
  const expiresAt = deps.clock.now() + LIVE_TICKET_TTL_MS
  await deps.store.liveTickets.create({
    hash: sha256(ticket),
    codeHash: sha256(registrationCode),
    jti: status.record.jti,
    siteId: site.id,
    userId: status.record.userId,
    sessionId: status.record.sessionId,
    expiresAt,
    usedAt: null,
  })
  return { ticket, registrationCode, expiresAt, lastEventId: await deps.store.events.latestId() }
}

/** What the WebSocket server asks before it accepts a connection. */
export interface LiveTicketValidator {
  validate(input: { ticket: string; registrationCode: string }): Promise<LiveBinding | null>
}

const SECRET = /^[A-Za-z0-9_-]{43}$/

/**
 * Validates a ticket against the store, spending it whatever the outcome. It was issued, at
 * most 30 s ago, for a then-valid token; whether that session has ended since is for the
 * connection to tell the frame (from the event log), not a reason to refuse it.
 */
export function createStoreTicketValidator(deps: Pick<AppDeps, 'store' | 'clock'>): LiveTicketValidator {
  return {
    validate: async ({ ticket, registrationCode }) => {
      if (!SECRET.test(ticket) || !SECRET.test(registrationCode)) return null
      const now = deps.clock.now()
      const record = await deps.store.liveTickets.consume(sha256(ticket), now)
      if (!record || record.expiresAt <= now || !sameSecret(record.codeHash, sha256(registrationCode)))
        return null
      return { userId: record.userId, sessionId: record.sessionId, siteId: record.siteId, jti: record.jti }
    },
  }
}

/**
 * The same question over HTTP, for a WebSocket server running apart from the passport: it
 * calls `POST /internal/live/validate` with a shared secret.
 */
export function createHttpTicketValidator(input: {
  passportUrl: string
  secret: string
  fetchImpl?: typeof fetch
}): LiveTicketValidator {
  const fetchImpl = input.fetchImpl ?? fetch
  return {
    validate: async ({ ticket, registrationCode }) => {
      const res = await fetchImpl(`${input.passportUrl}/internal/live/validate`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${input.secret}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ ticket, registration_code: registrationCode }),
      })
      if (res.status !== 200) return null
      const body = (await res.json()) as Partial<LiveBinding>
      if (
        typeof body.userId !== 'string' ||
        typeof body.sessionId !== 'string' ||
        typeof body.siteId !== 'string' ||
        typeof body.jti !== 'string'
      ) {
        return null
      }
      return { userId: body.userId, sessionId: body.sessionId, siteId: body.siteId, jti: body.jti }
    },
  }
}
