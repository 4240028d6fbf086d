import { hashScramPassword } from '../../passport-server/src/crypto/scram.ts'
import type { AppDeps } from '../../passport-server/src/deps.ts'
import { ensureSite, type RegisteredSite } from '../../passport-server/src/services/registry.ts'

export const DEMO_USERS = [
  { username: 'alice', name: 'Alice', password: 'alice-password-1' },
  { username: 'bob', name: 'Bob', password: 'bob-password-1' },
  // May use the operator console at /admin.
  { username: 'admin', name: 'Admin', password: 'admin-password-1', isAdmin: true },
] as const

/**
 * Demo data, created by `npm start` only (the production start creates none): three users (one an
 * admin of the console) and
 * the three demo sites. Each start gives the sites fresh client secrets, handed to their
 * backends in memory; nothing secret is written anywhere but the store (as hashes). All
 * sites offer "Sign in with another device" (login mode `device`) beside the password.
 */
export async function seedDemo(
  deps: AppDeps,
  sites: { news: string; shop: string; docs: string },
  /** Where each demo backend takes back-channel logout tokens (an address Node can reach). */
  backchannel: { news: string; shop: string; docs: string },
  /** News and Shop opt in to FedCM (docs/fedcm.md). */
  options: { fedcm?: boolean } = {},
): Promise<{ news: RegisteredSite; shop: RegisteredSite; docs: RegisteredSite }> {
  for (const user of DEMO_USERS) {
    if (await deps.store.users.findByUsername(user.username)) continue
    await deps.store.users.create({
      id: `u_${crypto.randomUUID()}`,
      username: user.username,
      name: user.name,
      // SCRAM credentials: the sign-in page never sends the password (docs/sign-in.md).
      passwordHash: await hashScramPassword(user.password, deps.config.scramIterations),
      createdAt: deps.clock.now(),
      ...('isAdmin' in user ? { isAdmin: true } : {}),
    })
  }
  return {
    news: await ensureSite(deps, {
      id: 'news',
      name: 'News',
      origins: [sites.news],
      loginModes: ['password', 'device'],
      backchannelLogoutUri: backchannel.news,
      ...(options.fedcm ? { fedcm: true, privacyPolicyUrl: `${sites.news}/privacy` } : {}),
    }),
    shop: await ensureSite(deps, {
      id: 'shop',
      name: 'Shop',
      origins: [sites.shop],
      loginModes: ['password', 'device'],
      backchannelLogoutUri: backchannel.shop,
      ...(options.fedcm ? { fedcm: true } : {}),
      // Shop shows the other kind: its tokens name the frame's key, and its backend wants a proof.
      dpopBoundTokens: true,
    }),
    // Server-rendered: its backend takes the code at the session middleware's callback.
    docs: await ensureSite(deps, {
      id: 'docs',
      name: 'Docs',
      origins: [sites.docs],
      redirectUris: [`${sites.docs}/passport/callback`],
      backchannelLogoutUri: backchannel.docs,
    }),
  }
}
