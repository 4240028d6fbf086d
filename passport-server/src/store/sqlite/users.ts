import { toUser, userRow } from '../rows.ts'
import type { UserRepo } from '../types.ts'
import type { Sql } from './connection.ts'

export function sqliteUsers({ one, run, all, insert }: Sql): UserRepo {
  return {
    setPasswordHash: async (id, passwordHash) => {
      run('UPDATE users SET password_hash = ? WHERE id = ?', [passwordHash, id])
    },
    create: async (u) => {
      insert(userRow(u))
    },
    list: async () => all('SELECT * FROM users ORDER BY username').map(toUser),
    setAdmin: async (id, isAdmin) => {
      run('UPDATE users SET is_admin = ? WHERE id = ?', [isAdmin ? 1 : 0, id])
    },
    setDisabled: async (id, disabled) => {
      run('UPDATE users SET disabled = ? WHERE id = ?', [disabled ? 1 : 0, id])
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
