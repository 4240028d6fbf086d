import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, describe, expect, test } from 'vitest'
import { resolveConfig } from '../config.ts'
import { silentLogger } from '../deps.ts'
import { createDeps } from '../server.ts'
import { registerSite, resolveAuthkey } from '../services/registry.ts'
import { NEWS_ORIGIN, TEST_ISSUER, testMasterKey } from '../test-support.ts'
import { loadOrCreateKeys, rotateSigningKey } from '../tokens/keys.ts'
import { openSqliteStore } from './sqlite.ts'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})
const storeFile = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-sealed-'))
  dirs.push(dir)
  return path.join(dir, 'passport.sqlite')
}
const config = resolveConfig({ issuer: TEST_ISSUER, scryptCost: 1024 })

/** The secrets table as a thief with a copy of the file sees it. */
function rawSecrets(file: string): Record<string, string> {
  const db = new DatabaseSync(file, { readOnly: true })
  const rows = db.prepare('SELECT name, value FROM secrets').all() as { name: string; value: string }[]
  db.close()
  return Object.fromEntries(rows.map((r) => [r.name, r.value]))
}

describe('stored secrets sealed under the master key', () => {
  test('a copy of the database alone holds no private signing key and no authkey key', async () => {
    const file = storeFile()
    const deps = await createDeps({ config, storeFile: file, masterKey: testMasterKey(), log: silentLogger })
    await rotateSigningKey(deps.store, deps.clock.now()) // written inside a transaction, sealed too
    await deps.store.close()
    const raw = rawSecrets(file)
    expect(Object.keys(raw).sort()).toEqual([
      'authkey_key',
      'encryption_keys',
      'scram_secret',
      'signing_keys',
    ])
    for (const value of Object.values(raw)) {
      expect(value).toMatch(/^sealed:v1:/)
      expect(value).not.toContain('"d"') // no private JWK member
      expect(value).not.toContain('kid')
    }
  })

  test('the same database under another master key does not start (and writes no new keys over it)', async () => {
    const file = storeFile()
    const deps = await createDeps({ config, storeFile: file, masterKey: testMasterKey(), log: silentLogger })
    await deps.store.close()
    const before = rawSecrets(file)
    await expect(
      createDeps({ config, storeFile: file, masterKey: testMasterKey(), log: silentLogger }),
    ).rejects.toThrow('sealed under another master key')
    expect(rawSecrets(file)).toEqual(before)
  })

  test('the right master key opens them again: same signing key, old authkeys still open', async () => {
    const file = storeFile()
    const masterKey = testMasterKey()
    const first = await createDeps({ config, storeFile: file, masterKey, log: silentLogger })
    const { authkey } = await registerSite(first, { id: 'news', origins: [NEWS_ORIGIN] })
    const kid = first.keys.current.kid
    await first.store.close()
    const again = await createDeps({ config, storeFile: file, masterKey, log: silentLogger })
    expect(again.keys.current.kid).toBe(kid)
    expect((await resolveAuthkey(again, authkey)).id).toBe('news')
    await again.store.close()
  })

  test('migration: plaintext keys of an older database are sealed on the first start with a key', async () => {
    const file = storeFile()
    const old = openSqliteStore(file)
    const oldKeys = await loadOrCreateKeys(old.secrets) // as a server before sealing stored them
    await old.close()
    expect(rawSecrets(file).signing_keys).toContain('"d"')

    const deps = await createDeps({ config, storeFile: file, masterKey: testMasterKey(), log: silentLogger })
    expect(deps.keys.current.kid).toBe(oldKeys.current.kid) // the same keys, not new ones
    await deps.store.close()
    for (const value of Object.values(rawSecrets(file))) expect(value).toMatch(/^sealed:v1:/)
  })
})
