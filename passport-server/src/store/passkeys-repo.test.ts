import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { beforeEach, describe, expect, it } from 'vitest'
import { T0 } from '../test-support.ts'
import { openSqliteStore } from './sqlite.ts'
import { ENGINES, useEngine } from './test-engines.ts'
import type { PasskeyChallengeRecord, PasskeyRecord, Store } from './types.ts'

const passkey = (id: string, over: Partial<PasskeyRecord> = {}): PasskeyRecord => ({
  id,
  userId: 'u_alice',
  userHandle: 'handle-alice',
  publicKey: 'pk',
  counter: 0,
  transports: ['internal', 'hybrid'],
  deviceType: 'multiDevice',
  backedUp: true,
  aaguid: '00000000-0000-0000-0000-000000000000',
  name: 'Passkey',
  createdAt: T0,
  lastUsedAt: null,
  removedAt: null,
  ...over,
})

const challenge = (id: string, over: Partial<PasskeyChallengeRecord> = {}): PasskeyChallengeRecord => ({
  id,
  challenge: `c-${id}`,
  bindingHash: 'binding',
  purpose: 'authentication',
  userId: null,
  sessionId: null,
  userHandle: null,
  createdAt: T0,
  expiresAt: T0 + 300_000,
  usedAt: null,
  ...over,
})

describe.each(ENGINES)('passkeys repository: %s', (engineName) => {
  const engine = useEngine(engineName)
  let store: Store
  beforeEach(() => {
    store = engine.store()
  })

  it('stores a passkey whole; a second with the same id is refused', async () => {
    expect(await store.passkeys.create(passkey('p1'))).toBe(true)
    expect(await store.passkeys.get('p1')).toEqual(passkey('p1'))
    expect(await store.passkeys.create(passkey('p1', { userId: 'u_bob' }))).toBe(false)
    expect((await store.passkeys.get('p1'))?.userId).toBe('u_alice')
    expect(await store.passkeys.get('nope')).toBeNull()
  })

  it("lists a user's live passkeys oldest first; the handle outlives removal", async () => {
    await store.passkeys.create(passkey('p2', { createdAt: T0 + 2 }))
    await store.passkeys.create(passkey('p1', { createdAt: T0 + 1 }))
    await store.passkeys.create(passkey('b1', { userId: 'u_bob', userHandle: 'handle-bob' }))
    expect((await store.passkeys.listByUser('u_alice')).map((p) => p.id)).toEqual(['p1', 'p2'])
    expect(await store.passkeys.remove('u_bob', 'p1', T0 + 5)).toBe(false)
    expect(await store.passkeys.remove('u_alice', 'p1', T0 + 5)).toBe(true)
    expect(await store.passkeys.remove('u_alice', 'p1', T0 + 6)).toBe(false)
    expect((await store.passkeys.listByUser('u_alice')).map((p) => p.id)).toEqual(['p2'])
    expect((await store.passkeys.get('p1'))?.removedAt).toBe(T0 + 5)
    await store.passkeys.remove('u_alice', 'p2', T0 + 7)
    expect(await store.passkeys.userHandleOf('u_alice')).toBe('handle-alice')
    expect(await store.passkeys.userHandleOf('u_carol')).toBeNull()
  })

  it('records a use only from the expected counter, and never on a removed passkey', async () => {
    await store.passkeys.create(passkey('p1', { counter: 3 }))
    const use = { counter: 4, backedUp: false, at: T0 + 10 }
    expect(await store.passkeys.recordUse('p1', 2, use)).toBe(false)
    expect(await store.passkeys.recordUse('p1', 3, use)).toBe(true)
    expect(await store.passkeys.recordUse('p1', 3, { ...use, counter: 5 })).toBe(false)
    expect(await store.passkeys.get('p1')).toMatchObject({ counter: 4, backedUp: false, lastUsedAt: T0 + 10 })
    await store.passkeys.remove('u_alice', 'p1', T0 + 11)
    expect(await store.passkeys.recordUse('p1', 4, { ...use, counter: 6 })).toBe(false)
  })

  it('uses a challenge once: the first use sees it unused, every later one sees it used', async () => {
    await store.passkeys.createChallenge(challenge('h1', { purpose: 'registration', userHandle: 'x' }))
    const [first, second] = await Promise.all([
      store.passkeys.useChallenge('h1', T0 + 1),
      store.passkeys.useChallenge('h1', T0 + 2),
    ])
    expect(first).toEqual(challenge('h1', { purpose: 'registration', userHandle: 'x' }))
    expect(second?.usedAt).toBe(T0 + 1)
    expect(await store.passkeys.useChallenge('unknown', T0)).toBeNull()
  })

  it('the purge deletes challenges a day past expiry, and nothing of the passkeys', async () => {
    await store.passkeys.create(passkey('p1'))
    await store.passkeys.createChallenge(challenge('old'))
    await store.passkeys.createChallenge(challenge('new', { expiresAt: T0 + 86_400_000 }))
    await store.maintenance.purge(T0 + 300_000 + 86_400_001)
    expect(await store.passkeys.useChallenge('old', T0)).toBeNull()
    expect(await store.passkeys.useChallenge('new', T0)).not.toBeNull()
    expect(await store.passkeys.get('p1')).not.toBeNull()
  })
})

describe('sqlite passkeys', () => {
  it('a store from before passkeys gains both tables on open', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-passkeys-store-'))
    try {
      const file = path.join(dir, 'passport.sqlite')
      const old = openSqliteStore(file)
      await old.close()
      const db = new DatabaseSync(file)
      db.exec('DROP TABLE passkeys; DROP TABLE passkey_challenges;')
      db.close()
      const reopened = openSqliteStore(file)
      expect(await reopened.passkeys.create(passkey('p1'))).toBe(true)
      await reopened.close()
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
