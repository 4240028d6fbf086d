import { hashScramPassword } from '../crypto/scram.ts'
import type { AppDeps } from '../deps.ts'
import { PassportError } from '../errors.ts'
import type { UserRecord } from '../store/types.ts'
import { endSession } from './sessions.ts'

/** Account changes shared by the CLI and the console. Each ends sessions through `endSession`. */

type UserDeps = Pick<AppDeps, 'store' | 'clock' | 'config' | 'events' | 'log'>

const USERNAME = /^[a-z0-9._-]{1,64}$/i

function checkPassword(password: string): string {
  const trimmed = password.trim()
  if (trimmed.length < 8) throw new PassportError('invalid_request', 'passwords need at least 8 characters')
  if (trimmed.length > 256) throw new PassportError('invalid_request', 'passwords are at most 256 characters')
  return trimmed
}

export async function createUser(
  deps: UserDeps,
  input: { username: string; name?: string; password: string; isAdmin?: boolean },
): Promise<UserRecord> {
  const { username } = input
  if (!USERNAME.test(username))
    throw new PassportError('invalid_request', 'usernames are 1-64 of a-z, 0-9, . _ -')
  if (await deps.store.users.findByUsername(username))
    throw new PassportError('invalid_request', `user ${username} exists`)
  const user: UserRecord = {
    id: `u_${crypto.randomUUID()}`,
    username,
    name: input.name?.trim().slice(0, 64) || username,
    passwordHash: await hashScramPassword(checkPassword(input.password), deps.config.scramIterations),
    createdAt: deps.clock.now(),
    ...(input.isAdmin ? { isAdmin: true } : {}),
  }
  await deps.store.users.create(user)
  return user
}

/** Ends every live session of the user (pushed to their open tabs); returns how many. */
export async function signOutEverywhere(deps: UserDeps, userId: string): Promise<number> {
  const live = (await deps.store.sessions.listByUser(userId)).filter((s) => s.endedAt === null)
  for (const session of live) await endSession(deps, session, 'revoked')
  return live.length
}

/** A new password; every sign-in made with the old one ends. Returns the sessions ended. */
export async function resetPassword(deps: UserDeps, user: UserRecord, password: string): Promise<number> {
  await deps.store.users.setPasswordHash(
    user.id,
    await hashScramPassword(checkPassword(password), deps.config.scramIterations),
  )
  return signOutEverywhere(deps, user.id)
}

/**
 * Disables (or enables) an account. Disabled: refused at every sign-in, and every session ends
 * now, pushed. Returns the sessions ended.
 */
export async function setUserDisabled(deps: UserDeps, user: UserRecord, disabled: boolean): Promise<number> {
  await deps.store.users.setDisabled(user.id, disabled)
  return disabled ? signOutEverywhere(deps, user.id) : 0
}
