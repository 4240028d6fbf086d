import type { DatabaseSync } from 'node:sqlite'

/** Most transactions one commit may carry: bounds how long the first of them waits for its answer. */
export const MAX_GROUP = 64

interface Job {
  run: () => Promise<unknown>
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown }

/**
 * The order of work on the store's one connection, with group commit.
 *
 * A statement issued while a transaction is open would run inside it, so work is serialised:
 * while a transaction is open or waiting, every call queues behind it. A call made while the
 * store is idle runs at once, on its own (autocommit), as before.
 *
 * Transactions are committed in groups: a transaction is started on the next turn of the event
 * loop (`setImmediate`), so that every request read from the network in the same turn can join,
 * and all the work queued by then runs in one SQLite transaction, each piece inside its own
 * savepoint (a piece that throws is rolled back alone), then one COMMIT. The commit, with its
 * WAL write, was about a third of a refresh's CPU when every refresh paid for its own; a group
 * pays once, and the pages several refreshes touch are written once.
 *
 * Nothing is answered before the commit: every piece of a group settles after it, so no caller
 * acts on writes that could still be lost, and a piece's answer may rest on what earlier pieces
 * wrote. If the group's transaction fails (BEGIN or COMMIT refused, the disk full, the
 * connection closed, or SQLite ending the transaction on its own), every piece of the group
 * fails with that error and nothing of the group remains.
 */
export function createSqliteQueue(
  db: DatabaseSync,
  hooks: {
    /** Maps SQLite's errors to the store's (unavailable, or the error itself). */
    translateError: (error: unknown) => unknown
    /** Something written may have been undone: forget what was cached from it. */
    onRollback: () => void
  },
) {
  const queued: Job[] = []
  let draining: Promise<void> | null = null

  const enqueue = <T>(run: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      queued.push({ run, resolve: resolve as (value: unknown) => void, reject })
      draining ??= new Promise<void>((turn) => setImmediate(turn)).then(drain)
    })

  async function drain(): Promise<void> {
    try {
      while (queued.length > 0) await runGroup()
    } finally {
      draining = null
    }
  }

  async function runGroup(): Promise<void> {
    const group: Job[] = []
    const outcomes: Outcome[] = []
    try {
      db.exec('BEGIN IMMEDIATE')
    } catch (error) {
      // The write lock could not be had (another process held it past the busy timeout, or the
      // connection is closed): everything waiting fails closed; later work tries again.
      const failure = hooks.translateError(error)
      for (const job of queued.splice(0)) job.reject(failure)
      return
    }
    try {
      // Work queued while the group runs joins it, up to the limit.
      while (queued.length > 0 && group.length < MAX_GROUP) {
        const job = queued.shift() as Job
        group.push(job)
        db.exec('SAVEPOINT piece')
        try {
          const value = await job.run()
          db.exec('RELEASE piece')
          outcomes.push({ ok: true, value })
        } catch (error) {
          // Throws (and so fails the group) when SQLite has already ended the transaction.
          db.exec('ROLLBACK TO piece')
          db.exec('RELEASE piece')
          hooks.onRollback()
          outcomes.push({ ok: false, error: hooks.translateError(error) })
        }
      }
      db.exec('COMMIT')
    } catch (groupError) {
      try {
        if (db.isOpen && db.isTransaction) db.exec('ROLLBACK')
      } catch {
        // The connection is gone; nothing of the group was committed either way.
      }
      hooks.onRollback()
      const error = hooks.translateError(groupError)
      for (const job of group) job.reject(error)
      return
    }
    group.forEach((job, i) => {
      const outcome = outcomes[i] as Outcome
      if (outcome.ok) job.resolve(outcome.value)
      else job.reject(outcome.error)
    })
  }

  return {
    /** A transaction: queued, run with the rest of its group, answered after the group's commit. */
    transaction: <T>(run: () => Promise<T>): Promise<T> => enqueue(run),

    /** A single call outside any transaction: at once when the store is idle, else queued. */
    call: <T>(run: () => Promise<T>): Promise<T> => {
      if (draining !== null) return enqueue(run)
      return run().catch((error: unknown) => {
        throw hooks.translateError(error)
      })
    },

    /** Resolves once everything queued so far has been committed or failed. */
    idle: async (): Promise<void> => {
      while (draining !== null) await draining
    },
  }
}
