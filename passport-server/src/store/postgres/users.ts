import { toUser, userRow } from '../rows.ts'
import type { UserRepo } from '../types.ts'
import { type Db, insert, one, rows } from './db.ts'

export function createUserRepo(db: Db): UserRepo {
  return {
    create: async (u) => {
      await insert(db, userRow(u))
    },
    list: async () => (await rows(db, 'SELECT * FROM users ORDER BY username')).map(toUser),
    setAdmin: async (id, isAdmin) => {
      await db.query('UPDATE users SET is_admin = $1 WHERE id = $2', [isAdmin ? 1 : 0, id])
    },
    setDisabled: async (id, disabled) => {
      await db.query('UPDATE users SET disabled = $1 WHERE id = $2', [disabled ? 1 : 0, id])
    },
    setPasswordHash: async (id, passwordHash) => {
      await db.query('UPDATE users SET password_hash = $1 WHERE id = $2', [passwordHash, id])
    },
    findById: async (id) => {
      const r = await one(db, 'SELECT * FROM users WHERE id = $1', [id])
      return r && toUser(r)
    },
    findByUsername: async (username) => {
      const r = await one(db, 'SELECT * FROM users WHERE username = $1', [username])
      return r && toUser(r)
    },
  }
}
