import { codeRow, toCode } from '../rows.ts'
import type { CodeRepo } from '../types.ts'
import type { Sql } from './connection.ts'

export function sqliteCodes({ one, insert }: Sql): CodeRepo {
  return {
    create: async (c) => {
      insert(codeRow(c))
    },
    consume: async (hash, at) => {
      const r = one('UPDATE codes SET used_at = ? WHERE hash = ? AND used_at IS NULL RETURNING *', at, hash)
      return r && toCode(r)
    },
  }
}
