import { pkceChallenge, randomSecret, sameSecret, sha256 } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import type { CodeRecord, SessionRecord, SiteRecord } from '../store/types.ts'

/** A one-time code for one site, one redirect target and one PKCE challenge. */
export async function issueCode(
  deps: Pick<AppDeps, 'store' | 'clock' | 'config'>,
  input: { site: SiteRecord; session: SessionRecord; redirectUri: string; codeChallenge: string },
): Promise<string> {
  const code = randomSecret()
  await deps.store.codes.create({
    hash: sha256(code),
    siteId: input.site.id,
    userId: input.session.userId,
    sessionId: input.session.id,
    redirectUri: input.redirectUri,
    codeChallenge: input.codeChallenge,
    expiresAt: deps.clock.now() + deps.config.codeTtlSeconds * 1000,
    usedAt: null,
  })
  return code
}

/**
 * Redeems a code: it is spent on the first attempt whatever the outcome, so a stolen code that
 * is raced or guessed against is gone. Every failure is the same `invalid_grant`.
 */
export async function redeemCode(
  deps: Pick<AppDeps, 'store' | 'clock'>,
  input: { site: SiteRecord; code: string; codeVerifier: string; redirectUri: string },
): Promise<CodeRecord> {
  const fail = () =>
    new PassportError('invalid_grant', 'the code is invalid, expired, used or not for this site')
  if (input.code.length > 128) throw fail()
  const record = await deps.store.codes.consume(sha256(input.code), deps.clock.now())
  if (
    !record ||
    !/^[A-Za-z0-9_-]{43,128}$/.test(input.codeVerifier) ||
    record.expiresAt <= deps.clock.now() ||
    record.siteId !== input.site.id ||
    record.redirectUri !== input.redirectUri ||
    !sameSecret(record.codeChallenge, pkceChallenge(input.codeVerifier))
  ) {
    throw fail()
  }
  return record
}
