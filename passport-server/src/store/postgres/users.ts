import type { UserRepo } from '../types.ts'
import { type Db, one } from './db.ts'
import { toUser } from './rows.ts'

export function createUserRepo(db: Db): UserRepo {
  return {
    create: async (u) => {
      await db.query(
        'INSERT INTO users (id, username, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)',
        [u.id, u.username, u.name, u.passwordHash, u.createdAt],
      )
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
