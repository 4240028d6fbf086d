import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { resolveConfig } from '../config.ts'
import { T0 } from '../test-support.ts'
import { openStore } from './open-store.ts'
import { createTestDatabase } from './test-engines.ts'

describe('choosing the store', () => {
  const user = { id: 'u_alice', username: 'alice', name: 'Alice', passwordHash: 'h', createdAt: T0 }
  const config = (databaseUrl?: string) =>
    resolveConfig({ issuer: 'http://passport.localhost:8080', ...(databaseUrl ? { databaseUrl } : {}) })

  it('opens the SQLite file when no database URL is set', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-open-'))
    try {
      const file = path.join(dir, 'passport.sqlite')
      const store = await openStore(config(), file, () => undefined)
      await store.users.create(user)
      await store.close()
      expect(fs.existsSync(file)).toBe(true)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('opens PostgreSQL when a database URL is set, and leaves the SQLite file alone', async () => {
    const database = await createTestDatabase()
    const file = path.join(os.tmpdir(), `passport-never-${process.pid}.sqlite`)
    try {
      const store = await openStore(config(database.url), file, () => undefined)
      await store.users.create(user)
      expect(await store.users.findByUsername('alice')).toEqual(user)
      await store.close()
      expect(fs.existsSync(file)).toBe(false)
    } finally {
      await database.drop()
    }
  })

  it('refuses a database URL that is not PostgreSQL, and a pool of no connections', () => {
    expect(() => config('mysql://root@localhost/passport')).toThrow(/postgres/)
    expect(() => config('/var/lib/passport.sqlite')).toThrow(/postgres/)
    expect(config('postgresql://root@127.0.0.1/passport').databaseUrl).toBe(
      'postgresql://root@127.0.0.1/passport',
    )
    expect(() => resolveConfig({ issuer: 'http://passport.localhost:8080', databasePoolSize: 0 })).toThrow()
  })
})
