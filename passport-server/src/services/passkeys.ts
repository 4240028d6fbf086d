import { webcrypto as crypto } from 'node:crypto'
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server'
import {
  decodeAttestationObject,
  decodeClientDataJSON,
  isoBase64URL,
  parseAuthenticatorData,
} from '@simplewebauthn/server/helpers'
import { sameSecret, sha256 } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import type { PasskeyChallengeRecord, PasskeyRecord, SessionRecord, UserRecord } from '../store/types.ts'

/**
 * Passkeys (WebAuthn, issue 16 item 2): registered from the account page, used on the sign-in
 * page. `@simplewebauthn/server` does the WebAuthn verification; this file decides what is
 * asked, keeps challenges and credentials, and names every refusal.
 *
 * - User verification is required, at registration and at every sign-in: a passkey replaces a
 *   password, so it must be "something you have" unlocked by "something you are or know".
 * - Challenges are 32 random bytes, single-use, valid for `CHALLENGE_TTL_MS`, stored server-side
 *   (by their hash) and bound to the browser that asked: the SHA-256 of a cookie only it holds
 *   (`PASSKEY_BINDING_COOKIE`). A challenge is used up by the first response that names it,
 *   whatever that response's verdict, so no response is ever checked twice against one.
 * - The checks run in a fixed order, each with a stable code, and a refused response changes
 *   nothing but the challenge it used up: no counter, no passkey, no session. The counter is
 *   judged only on a response whose signature verified (a regression then means a cloned
 *   authenticator, not a forged message) and is written by compare-and-swap, so of two racing
 *   uses of one counter value exactly one wins.
 */
export const CHALLENGE_TTL_MS = 5 * 60_000
/** What the browser is told to wait for the user (it never outlasts the challenge). */
const CEREMONY_TIMEOUT_MS = 4 * 60_000
export const PASSKEY_BINDING_COOKIE = '__Host-passport_webauthn'
export const MAX_PASSKEYS_PER_USER = 10
/** Ed25519, ES256, RS256: what current platform and roaming authenticators make. */
const SUPPORTED_ALGORITHMS = [-8, -7, -257]
/** A response larger than this is not one an authenticator made. */
const MAX_RESPONSE_CHARS = 16_384

export const PASSKEY_REFUSALS = [
  /** Not a WebAuthn response of the expected kind (shape, encoding, `type`). */
  'invalid_response',
  /** The challenge is not one this browser was given for this ceremony (or never existed). */
  'challenge_unknown',
  'challenge_replayed',
  'challenge_expired',
  /** The browser says the ceremony ran on another origin (or inside another site's frame). */
  'origin_mismatch',
  /** The authenticator signed for another relying party. */
  'rp_id_mismatch',
  'user_presence_missing',
  'user_verification_missing',
  'unknown_credential',
  'passkey_removed',
  /** The signature counter did not grow: a cloned authenticator, or a replayed assertion. */
  'counter_regressed',
  'invalid_signature',
  /** Registration: the authenticator's attestation or key did not verify. */
  'invalid_attestation',
  'credential_exists',
  'too_many_passkeys',
] as const
export type PasskeyRefusal = (typeof PASSKEY_REFUSALS)[number]

export type PasskeyResult<T> = ({ ok: true } & T) | { ok: false; refusal: PasskeyRefusal }

export interface RelyingParty {
  /** The RP ID: the passport's host name. */
  id: string
  name: string
  /** The only origin a ceremony may run on: the passport's own. */
  origin: string
}

export function relyingPartyOf(issuer: string): RelyingParty {
  const url = new URL(issuer)
  return { id: url.hostname, name: 'Passport', origin: url.origin }
}

/** The passkey as the account page shows it. */
export type PasskeyView = Pick<
  PasskeyRecord,
  'id' | 'name' | 'createdAt' | 'lastUsedAt' | 'backedUp' | 'deviceType'
>

const refuse = (refusal: PasskeyRefusal) => ({ ok: false as const, refusal })

interface ParsedResponse {
  id: string
  /** The client data as the browser wrote it. */
  clientData: { type: string; challenge: string; origin: string; crossOrigin?: boolean; topOrigin?: string }
}

/** The response JSON a form carried, checked for shape; null for anything else. */
function parseResponse<T extends 'create' | 'get'>(
  text: string | undefined,
  kind: T,
):
  | (ParsedResponse & { json: T extends 'create' ? RegistrationResponseJSON : AuthenticationResponseJSON })
  | null {
  if (!text || text.length > MAX_RESPONSE_CHARS) return null
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return null
  }
  const r = json as Record<string, unknown>
  const inner = r?.response as Record<string, unknown> | undefined
  const b64 = (v: unknown) => typeof v === 'string' && v.length > 0 && isoBase64URL.isBase64URL(v)
  if (
    typeof r !== 'object' ||
    r === null ||
    !b64(r.id) ||
    r.rawId !== r.id ||
    r.type !== 'public-key' ||
    typeof inner !== 'object' ||
    inner === null ||
    !b64(inner.clientDataJSON)
  ) {
    return null
  }
  if (kind === 'create' && !b64(inner.attestationObject)) return null
  if (
    kind === 'get' &&
    (!b64(inner.authenticatorData) ||
      !b64(inner.signature) ||
      (inner.userHandle !== undefined && inner.userHandle !== null && !b64(inner.userHandle)))
  ) {
    return null
  }
  try {
    const clientData = decodeClientDataJSON(inner.clientDataJSON as string)
    if (
      clientData.type !== `webauthn.${kind}` ||
      typeof clientData.challenge !== 'string' ||
      typeof clientData.origin !== 'string'
    ) {
      return null
    }
    return { id: r.id as string, clientData, json: json as never }
  } catch {
    return null
  }
}

/** The authenticator data's flags and RP ID hash, judged the same way for both ceremonies. */
function checkAuthenticatorData(
  authData: Uint8Array<ArrayBuffer>,
  rp: RelyingParty,
): { ok: true; counter: number } | { ok: false; refusal: PasskeyRefusal } {
  let parsed: ReturnType<typeof parseAuthenticatorData>
  try {
    parsed = parseAuthenticatorData(authData)
  } catch {
    return refuse('invalid_response')
  }
  const expected = Buffer.from(sha256(rp.id), 'base64url')
  if (!Buffer.from(parsed.rpIdHash).equals(expected)) return refuse('rp_id_mismatch')
  if (!parsed.flags.up) return refuse('user_presence_missing')
  if (!parsed.flags.uv) return refuse('user_verification_missing')
  return { ok: true, counter: parsed.counter }
}

export function createPasskeys(
  deps: Pick<AppDeps, 'store' | 'clock' | 'log' | 'config'>,
  rp: RelyingParty = relyingPartyOf(deps.config.issuer),
) {
  const newChallenge = async (
    binding: string,
    purpose: PasskeyChallengeRecord['purpose'],
    session: SessionRecord | null,
    userHandle: string | null = null,
  ): Promise<Uint8Array<ArrayBuffer>> => {
    const bytes = crypto.getRandomValues(new Uint8Array(32))
    const challenge = isoBase64URL.fromBuffer(bytes)
    const now = deps.clock.now()
    await deps.store.passkeys.createChallenge({
      id: sha256(challenge),
      challenge,
      bindingHash: sha256(binding),
      purpose,
      userId: session?.userId ?? null,
      sessionId: session?.id ?? null,
      userHandle,
      createdAt: now,
      expiresAt: now + CHALLENGE_TTL_MS,
      usedAt: null,
    })
    return bytes
  }

  /**
   * Uses up the challenge the response names and judges it: this browser's, for this ceremony
   * (and, for a registration, this session), unused, unexpired, on our origin.
   */
  const takeChallenge = async (
    parsed: ParsedResponse,
    binding: string | undefined,
    purpose: PasskeyChallengeRecord['purpose'],
    session: SessionRecord | null,
  ): Promise<
    { ok: true; challenge: string; userHandle: string | null } | { ok: false; refusal: PasskeyRefusal }
  > => {
    const now = deps.clock.now()
    const record = await deps.store.passkeys.useChallenge(sha256(parsed.clientData.challenge), now)
    if (
      !record ||
      !binding ||
      !sameSecret(record.bindingHash, sha256(binding)) ||
      record.purpose !== purpose ||
      record.userId !== (session?.userId ?? null) ||
      record.sessionId !== (session?.id ?? null)
    ) {
      return refuse('challenge_unknown')
    }
    if (record.usedAt !== null) return refuse('challenge_replayed')
    if (record.expiresAt <= now) return refuse('challenge_expired')
    const { origin, crossOrigin, topOrigin } = parsed.clientData
    if (origin !== rp.origin || crossOrigin === true || topOrigin !== undefined) {
      return refuse('origin_mismatch')
    }
    return { ok: true, challenge: record.challenge, userHandle: record.userHandle }
  }

  const fail = <T>(what: 'register' | 'sign_in', refusal: PasskeyRefusal, fields: object = {}) => {
    deps.log(what === 'sign_in' ? 'authn_passkey_fail' : 'passkey_register_fail', { refusal, ...fields })
    return refuse(refusal) as PasskeyResult<T>
  }

  return {
    rp,

    /** Options for `navigator.credentials.create()`: a discoverable, user-verified credential. */
    async registrationOptions(input: {
      user: UserRecord
      session: SessionRecord
      binding: string
    }): Promise<PublicKeyCredentialCreationOptionsJSON> {
      const existing = await deps.store.passkeys.listByUser(input.user.id)
      // One random handle per user, kept with their passkeys: an authenticator then replaces
      // its own earlier passkey for this account instead of keeping two.
      const handle =
        (await deps.store.passkeys.userHandleOf(input.user.id)) ??
        isoBase64URL.fromBuffer(crypto.getRandomValues(new Uint8Array(32)))
      return generateRegistrationOptions({
        rpName: rp.name,
        rpID: rp.id,
        userName: input.user.username,
        userDisplayName: input.user.name,
        userID: isoBase64URL.toBuffer(handle),
        challenge: await newChallenge(input.binding, 'registration', input.session, handle),
        timeout: CEREMONY_TIMEOUT_MS,
        attestationType: 'none',
        // The same authenticator twice would be one passkey listed twice.
        excludeCredentials: existing.map((p) => ({ id: p.id, transports: p.transports })),
        authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
        supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
      })
    },

    /** Verifies a registration response for the signed-in user and stores the passkey. */
    async register(input: {
      response: string | undefined
      user: UserRecord
      session: SessionRecord
      binding: string | undefined
    }): Promise<PasskeyResult<{ passkey: PasskeyRecord }>> {
      type R = { passkey: PasskeyRecord }
      const parsed = parseResponse(input.response, 'create')
      if (!parsed) return fail<R>('register', 'invalid_response')
      const taken = await takeChallenge(parsed, input.binding, 'registration', input.session)
      if (!taken.ok) return fail<R>('register', taken.refusal)
      let authData: Uint8Array<ArrayBuffer>
      try {
        const attestation = decodeAttestationObject(
          isoBase64URL.toBuffer(parsed.json.response.attestationObject),
        )
        authData = attestation.get('authData')
      } catch {
        return fail<R>('register', 'invalid_response')
      }
      const flags = checkAuthenticatorData(authData, rp)
      if (!flags.ok) return fail<R>('register', flags.refusal)
      let info: Awaited<ReturnType<typeof verifyRegistrationResponse>>['registrationInfo']
      try {
        const verified = await verifyRegistrationResponse({
          response: parsed.json,
          expectedChallenge: taken.challenge,
          expectedOrigin: rp.origin,
          expectedRPID: rp.id,
          requireUserVerification: true,
          supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
        })
        info = verified.verified ? verified.registrationInfo : undefined
      } catch (err) {
        deps.log('passkey_register_fail', {
          refusal: 'invalid_attestation',
          detail: String(err).slice(0, 200),
        })
        return refuse('invalid_attestation')
      }
      if (!info) return fail<R>('register', 'invalid_attestation')
      const user = input.user
      if ((await deps.store.passkeys.listByUser(user.id)).length >= MAX_PASSKEYS_PER_USER) {
        return fail<R>('register', 'too_many_passkeys', { user: user.id })
      }
      const now = deps.clock.now()
      const passkey: PasskeyRecord = {
        id: info.credential.id,
        userId: user.id,
        // The handle the options carried, which the authenticator stored with the credential.
        userHandle: taken.userHandle ?? '',
        publicKey: isoBase64URL.fromBuffer(info.credential.publicKey),
        counter: info.credential.counter,
        transports: (parsed.json.response.transports ?? []).filter((t) => typeof t === 'string').slice(0, 8),
        deviceType: info.credentialDeviceType,
        backedUp: info.credentialBackedUp,
        aaguid: info.aaguid,
        name: `Passkey added ${new Date(now).toISOString().slice(0, 10)}`,
        createdAt: now,
        lastUsedAt: null,
        removedAt: null,
      }
      if (!(await deps.store.passkeys.create(passkey))) {
        return fail<R>('register', 'credential_exists', { user: user.id })
      }
      deps.log('passkey_registered', { user: user.id, backedUp: passkey.backedUp })
      return { ok: true, passkey }
    },

    /** Options for `navigator.credentials.get()`: any discoverable passkey, user-verified. */
    async authenticationOptions(binding: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
      return generateAuthenticationOptions({
        rpID: rp.id,
        challenge: await newChallenge(binding, 'authentication', null),
        timeout: CEREMONY_TIMEOUT_MS,
        userVerification: 'required',
      })
    },

    /**
     * Verifies a sign-in response; on success the passkey's counter and backup state are
     * recorded and the caller signs the browser in as `userId`.
     */
    async authenticate(input: {
      response: string | undefined
      binding: string | undefined
    }): Promise<PasskeyResult<{ userId: string; passkeyId: string }>> {
      type R = { userId: string; passkeyId: string }
      const parsed = parseResponse(input.response, 'get')
      if (!parsed) return fail<R>('sign_in', 'invalid_response')
      const taken = await takeChallenge(parsed, input.binding, 'authentication', null)
      if (!taken.ok) return fail<R>('sign_in', taken.refusal)
      const authData = checkAuthenticatorData(
        isoBase64URL.toBuffer(parsed.json.response.authenticatorData),
        rp,
      )
      if (!authData.ok) return fail<R>('sign_in', authData.refusal)
      const passkey = await deps.store.passkeys.get(parsed.id)
      const userHandle = parsed.json.response.userHandle
      if (!passkey || (userHandle && userHandle !== passkey.userHandle)) {
        return fail<R>('sign_in', 'unknown_credential')
      }
      if (passkey.removedAt !== null) return fail<R>('sign_in', 'passkey_removed', { user: passkey.userId })
      let verified: Awaited<ReturnType<typeof verifyAuthenticationResponse>>
      try {
        verified = await verifyAuthenticationResponse({
          response: parsed.json,
          expectedChallenge: taken.challenge,
          expectedOrigin: rp.origin,
          expectedRPID: rp.id,
          requireUserVerification: true,
          // The counter is judged below, once the signature is known to be the authenticator's.
          credential: {
            id: passkey.id,
            publicKey: isoBase64URL.toBuffer(passkey.publicKey),
            counter: 0,
          },
        })
      } catch {
        return fail<R>('sign_in', 'invalid_signature', { user: passkey.userId })
      }
      if (!verified.verified) return fail<R>('sign_in', 'invalid_signature', { user: passkey.userId })
      const counter = verified.authenticationInfo.newCounter
      // Authenticators that keep no counter send 0 forever; any other must send more each time.
      if ((counter > 0 || passkey.counter > 0) && counter <= passkey.counter) {
        return fail<R>('sign_in', 'counter_regressed', {
          user: passkey.userId,
          stored: passkey.counter,
          presented: counter,
        })
      }
      const recorded = await deps.store.passkeys.recordUse(passkey.id, passkey.counter, {
        counter,
        backedUp: verified.authenticationInfo.credentialBackedUp,
        at: deps.clock.now(),
      })
      if (!recorded) {
        // Removed, or used with this counter value meanwhile: look again to say which.
        const now = await deps.store.passkeys.get(passkey.id)
        return fail<R>('sign_in', now?.removedAt ? 'passkey_removed' : 'counter_regressed', {
          user: passkey.userId,
        })
      }
      deps.log('authn_passkey', { user: passkey.userId })
      return { ok: true, userId: passkey.userId, passkeyId: passkey.id }
    },

    async list(userId: string): Promise<PasskeyView[]> {
      return (await deps.store.passkeys.listByUser(userId)).map((p) => ({
        id: p.id,
        name: p.name,
        createdAt: p.createdAt,
        lastUsedAt: p.lastUsedAt,
        backedUp: p.backedUp,
        deviceType: p.deviceType,
      }))
    },

    /** Removes one of the user's own passkeys; false when it is not theirs (or already gone). */
    async remove(userId: string, passkeyId: string): Promise<boolean> {
      if (!passkeyId || passkeyId.length > 1400) return false
      const removed = await deps.store.passkeys.remove(userId, passkeyId, deps.clock.now())
      if (removed) deps.log('passkey_removed', { user: userId })
      return removed
    },
  }
}

export type Passkeys = ReturnType<typeof createPasskeys>
