import type { SecretRepo } from '../types.ts'
import { type Db, one } from './db.ts'

export function createSecretRepo(db: Db): SecretRepo {
  return {
    get: async (name) => {
      const r = await one(db, 'SELECT value FROM secrets WHERE name = $1', [name])
      return r ? (r.value as string) : null
    },
    // Racing instances at first start: one inserts, every one reads back the value that won.
    putIfAbsent: async (name, value) => {
      const inserted = await one(
        db,
        'INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value',
        [name, value],
      )
      if (inserted) return inserted.value as string
      return (await one(db, 'SELECT value FROM secrets WHERE name = $1', [name]))?.value as string
    },
    put: async (name, value) => {
      await db.query(
        'INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
        [name, value],
      )
    },
  }
}
