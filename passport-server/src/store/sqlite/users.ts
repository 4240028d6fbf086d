import type { UserRecord, UserRepo } from '../types.ts'
import type { Row, Sql } from './connection.ts'

export const toUser = (r: Row): UserRecord => ({
  id: r.id as string,
  username: r.username as string,
  name: r.name as string,
  passwordHash: r.password_hash as string,
  createdAt: Number(r.created_at),
})

export function sqliteUsers({ one, run }: Sql): UserRepo {
  return {
    setPasswordHash: async (id, passwordHash) => {
      run('UPDATE users SET password_hash = ? WHERE id = ?', [passwordHash, id])
    },
    create: async (u) => {
      run('INSERT INTO users (id, username, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)', [
        u.id,
        u.username,
        u.name,
        u.passwordHash,
        u.createdAt,
      ])
    },
    findById: async (id) => {
      const r = one('SELECT * FROM users WHERE id = ?', id)
      return r && toUser(r)
    },
    findByUsername: async (username) => {
      const r = one('SELECT * FROM users WHERE username = ?', username)
      return r && toUser(r)
    },
  }
}
