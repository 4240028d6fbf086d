import type { SecretRepo } from '../types.ts'
import type { Row, Sql } from './connection.ts'

export function sqliteSecrets({ one, run }: Sql): SecretRepo {
  return {
    get: async (name) => {
      const r = one('SELECT value FROM secrets WHERE name = ?', name)
      return r ? (r.value as string) : null
    },
    putIfAbsent: async (name, value) => {
      run('INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING', [name, value])
      return (one('SELECT value FROM secrets WHERE name = ?', name) as Row).value as string
    },
    put: async (name, value) => {
      run(
        'INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
        [name, value],
      )
    },
  }
}
