import { randomBytes } from 'node:crypto'
import {
  bindingData,
  decodeSaslName,
  parseScramAttributes,
  parseSignInClientMessage,
  SCRAM_NONCE,
  SIGN_IN_GS2_HEADER,
  SIGN_IN_NONCE_TTL_MS,
  type SignInErrorCode,
  type SignInServerMessage,
} from '../../../passport-frame/src/protocol/sign-in.ts'
import {
  authMessage,
  decoyCredential,
  parseScramCredential,
  type ScramCredential,
  verifyClientProof,
} from '../crypto/scram.ts'
import type { AppDeps } from '../deps.ts'
import { loginThrottleOf } from '../services/login-throttle.ts'
import { allowsLoginMode } from '../services/registry.ts'
import { openSealedKey, sealAnswer } from '../services/sealed-answers.ts'
import { issueSignInTicket } from '../services/sign-in-tickets.ts'
import type { SiteRecord, UserRecord } from '../store/types.ts'

/** Exchanges one socket may start (retries after a wrong password) before it is closed. */
export const MAX_EXCHANGES_PER_SOCKET = 10

interface Exchange {
  username: string
  user: UserRecord | null
  credential: ScramCredential
  /** Whether `credential` is real (false: a decoy for an unknown or not yet upgraded account). */
  real: boolean
  siteId: string
  clientFirstBare: string
  serverFirst: string
  nonce: string
  startedAt: number
}

/**
 * One socket's SCRAM state machine, apart from the socket so tests drive it message by message.
 * `address` is the client address the passport sees for this socket (the channel binding).
 *
 * Every refusal is an `error` message with a stable code and changes nothing but the login
 * throttle's count (a wrong proof counts as a wrong password does on the form). Each server
 * nonce answers one client-final, on this socket, within `SIGN_IN_NONCE_TTL_MS`.
 */
export function createSignInExchange(deps: AppDeps, address: string) {
  const throttle = loginThrottleOf(deps)
  let current: Exchange | null = null
  /** Server nonces this socket handed out and that were answered or replaced. */
  const spent = new Set<string>()
  let exchanges = 0

  const refuse = (code: SignInErrorCode, retryAfter?: number): SignInServerMessage =>
    retryAfter === undefined ? { type: 'error', code } : { type: 'error', code, retry_after: retryAfter }

  const clientFirst = async (siteId: string, message: string): Promise<SignInServerMessage> => {
    if (!message.startsWith(SIGN_IN_GS2_HEADER)) return refuse('invalid_message')
    const bare = message.slice(SIGN_IN_GS2_HEADER.length)
    const attrs = parseScramAttributes(bare)
    const username = decodeSaslName(attrs?.get('n') ?? '')
    const clientNonce = attrs?.get('r') ?? ''
    // No `m=` (mandatory extensions) and nothing but n and r, in that order (RFC 5802 §7).
    if (!attrs || [...attrs.keys()].join() !== 'n,r' || !username || username.length > 64) {
      return refuse('invalid_message')
    }
    if (!SCRAM_NONCE.test(clientNonce)) return refuse('invalid_message')
    // An empty site: the passport itself, re-authenticating a signed-in user (a password change);
    // its result opens no sign-in, only `POST /account/password/sealed`.
    const site = siteId === '' ? { id: '' } : await deps.store.sites.get(siteId)
    if (!site || (site.id !== '' && !allowsLoginMode(site as SiteRecord, 'password'))) {
      return refuse('unknown_site')
    }
    const gate = await throttle.check(username, address)
    // As on the form: an address over its limit is told so (429 there); a locked account is
    // not (the exchange runs and ends in the same invalid_proof as a wrong password).
    if (!gate.allowed && gate.scope === 'address') {
      deps.log('excess_rate_limit_exceeded', { what: 'login_scram', retryAfter: gate.retryAfterSeconds })
      return refuse('throttled', gate.retryAfterSeconds)
    }
    exchanges += 1
    if (current) spent.add(current.nonce)
    const user = await deps.store.users.findByUsername(username)
    const stored = user ? parseScramCredential(user.passwordHash) : null
    // An unknown user, or one still on an scrypt hash, gets a decoy: the same salt every time
    // for that name, the configured iterations, and keys no proof matches. Same shape, same work.
    const credential = stored ?? decoyCredential(deps.keys.scramSecret, username, deps.config.scramIterations)
    const nonce = `${clientNonce}${randomBytes(24).toString('base64url')}`
    const serverFirst = `r=${nonce},s=${credential.salt.toString('base64')},i=${credential.iterations}`
    current = {
      username,
      user,
      credential,
      real: stored !== null,
      siteId: site.id,
      clientFirstBare: bare,
      serverFirst,
      nonce,
      startedAt: deps.clock.now(),
    }
    return { type: 'server_first', address, message: serverFirst }
  }

  const clientFinal = async (message: string, seal: string): Promise<SignInServerMessage> => {
    const attrs = parseScramAttributes(message)
    const nonce = attrs?.get('r')
    const binding = attrs?.get('c')
    const proof = attrs?.get('p')
    if (!attrs || [...attrs.keys()].join() !== 'c,r,p' || !nonce || !binding || !proof) {
      return refuse('invalid_message')
    }
    if (spent.has(nonce)) return refuse('nonce_used')
    const exchange = current
    if (!exchange || nonce !== exchange.nonce) return refuse('nonce_mismatch')
    // From here this nonce is answered: whatever follows, it opens nothing again.
    spent.add(nonce)
    current = null
    if (deps.clock.now() - exchange.startedAt > SIGN_IN_NONCE_TTL_MS) return refuse('nonce_expired')
    const expected = Buffer.from(`${SIGN_IN_GS2_HEADER}${bindingData(address, exchange.siteId)}`).toString(
      'base64',
    )
    if (binding !== expected) return refuse('binding_mismatch')
    const contentKey = await openSealedKey(deps, 'sign_in', seal)
    if (!contentKey) return refuse('invalid_seal')
    const withoutProof = message.slice(0, message.lastIndexOf(',p='))
    const { ok, serverSignature } = verifyClientProof(
      exchange.credential,
      authMessage(exchange.clientFirstBare, exchange.serverFirst, withoutProof),
      Buffer.from(proof, 'base64'),
    )
    const gate = await throttle.check(exchange.username, address)
    if (!ok || !exchange.real || !exchange.user || !gate.allowed) {
      const locked = await throttle.failed(exchange.username, address)
      deps.log(locked ? 'authn_login_lock' : 'authn_login_fail', { site: exchange.siteId, method: 'scram' })
      if (!deps.config.passwordForm) return refuse('invalid_proof')
      // The page may post the form once for this attempt without a second failure counted:
      // that is how an account still on an scrypt hash signs in (and is upgraded).
      const fallback = issueSignInTicket(deps, {
        kind: 'fallback',
        subject: exchange.username,
        siteId: exchange.siteId,
        address,
      })
      return { type: 'error', code: 'invalid_proof', fallback }
    }
    await throttle.succeeded(exchange.username)
    const result = issueSignInTicket(deps, {
      kind: 'result',
      subject: exchange.user.id,
      siteId: exchange.siteId,
      address,
    })
    deps.log('authn_login_scram', { site: exchange.siteId })
    return {
      type: 'server_final',
      message: `v=${serverSignature.toString('base64')}`,
      result: await sealAnswer(contentKey, { result }),
    }
  }

  return {
    /** The answer to one message from the page, and whether the socket should close after it. */
    async handle(text: string): Promise<{ reply: SignInServerMessage; close: boolean }> {
      const m = parseSignInClientMessage(text)
      if (!m) return { reply: refuse('invalid_message'), close: true }
      if (m.type === 'client_first') {
        if (exchanges >= MAX_EXCHANGES_PER_SOCKET) return { reply: refuse('throttled'), close: true }
        return { reply: await clientFirst(m.site, m.message), close: false }
      }
      const reply = await clientFinal(m.message, m.seal)
      return { reply, close: reply.type === 'server_final' }
    },
  }
}
