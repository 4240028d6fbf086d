import { codeRow, toCode } from '../rows.ts'
import type { CodeRepo } from '../types.ts'
import { type Db, insert, one } from './db.ts'

export function createCodeRepo(db: Db): CodeRepo {
  return {
    create: async (c) => {
      await insert(db, codeRow(c))
    },
    // Compare-and-swap on used_at: of racing consumers one updates the row; the others wait for
    // its lock and then fail to serialise (retried: they find it used) or find it used.
    consume: async (hash, at) => {
      const r = await one(
        db,
        'UPDATE codes SET used_at = $1 WHERE hash = $2 AND used_at IS NULL RETURNING *',
        [at, hash],
      )
      return r && toCode(r)
    },
  }
}
