import type { DatabaseSync } from 'node:sqlite'

/**
 * A count that moves whenever another connection to the same file has committed: SQLite's
 * `PRAGMA data_version` moves for other connections' commits only, never for this one's. Asking
 * costs a read of the WAL index (~2.5 µs), so it is asked at most once a millisecond: a change
 * committed by the CLI or another server is seen by work that starts a millisecond later.
 */
export function watchOtherConnections(db: DatabaseSync): () => number {
  const version = db.prepare('PRAGMA data_version')
  let seen: unknown
  let generation = 0
  let askedAt = Number.NEGATIVE_INFINITY
  return () => {
    const at = performance.now()
    // A closed connection is asked at once, so that it fails (closed) instead of answering from memory.
    if (at - askedAt >= 1 || !db.isOpen) {
      askedAt = at
      const now = (version.get() as { data_version: unknown }).data_version
      if (now !== seen) {
        seen = now
        generation++
      }
    }
    return generation
  }
}

/**
 * Rows read often and changed rarely, kept decoded. The owner calls `forget` on every write
 * through this connection that could change a kept row, and on every rollback; the rows are
 * also dropped whenever another connection has committed. Misses are not kept (an unknown key
 * is read again), and values must be frozen by `read`: they are shared between requests.
 */
export function createRowCache<V>(otherConnections: () => number, limit: number) {
  const rows = new Map<string, V>()
  let filledAt = -1
  return {
    get(key: string, read: () => V | null): V | null {
      const generation = otherConnections()
      if (generation !== filledAt) {
        rows.clear()
        filledAt = generation
      }
      const kept = rows.get(key)
      if (kept !== undefined) return kept
      const row = read()
      if (row === null) return null
      if (rows.size >= limit) rows.clear()
      rows.set(key, row)
      return row
    },
    forget(): void {
      rows.clear()
    },
  }
}

export type RowCache<V> = ReturnType<typeof createRowCache<V>>
