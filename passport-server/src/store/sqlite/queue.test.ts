import { DatabaseSync } from 'node:sqlite'
import { beforeEach, describe, expect, it } from 'vitest'
import { createSqliteQueue, MAX_GROUP } from './queue.ts'

/** A connection whose transaction statements are written down, in order, with the test's own notes. */
function recordedDatabase() {
  const db = new DatabaseSync(':memory:')
  db.exec('CREATE TABLE rows (id INTEGER PRIMARY KEY, label TEXT NOT NULL)')
  const trail: string[] = []
  const exec = db.exec.bind(db)
  db.exec = (sql: string) => {
    const statement = /^(BEGIN|COMMIT|ROLLBACK TO|ROLLBACK)/.exec(sql)?.[0]
    if (statement) trail.push(statement)
    exec(sql)
  }
  return { db, trail }
}

describe('store queue: one connection, transactions committed in groups', () => {
  let db: DatabaseSync
  let trail: string[]
  let rollbacks: number
  let queue: ReturnType<typeof createSqliteQueue>

  beforeEach(() => {
    ;({ db, trail } = recordedDatabase())
    rollbacks = 0
    queue = createSqliteQueue(db, { translateError: (e) => e, onRollback: () => rollbacks++ })
  })

  const insert = (label: string) => db.prepare('INSERT INTO rows (label) VALUES (?)').run(label)
  const labels = () =>
    (db.prepare('SELECT label FROM rows ORDER BY id').all() as { label: string }[]).map((r) => r.label)

  it('commits concurrent transactions once, in order, and answers none of them before the commit', async () => {
    const answers = Array.from({ length: 10 }, (_, i) =>
      queue
        .transaction(async () => {
          insert(`t${i}`)
          // Each piece sees what the pieces before it wrote: they run one after another.
          return labels().length
        })
        .then((seen) => {
          trail.push(`answer ${i}`)
          return seen
        }),
    )
    expect(await Promise.all(answers)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    expect(trail).toEqual(['BEGIN', 'COMMIT', ...Array.from({ length: 10 }, (_, i) => `answer ${i}`)])
    expect(labels()).toHaveLength(10)
  })

  it('rolls back a piece that throws, alone: the others of its group commit', async () => {
    const boom = new Error('boom')
    const results = await Promise.allSettled([
      queue.transaction(async () => insert('first')),
      queue.transaction(async () => {
        insert('doomed')
        throw boom
      }),
      queue.transaction(async () => insert('third')),
    ])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect((results[1] as PromiseRejectedResult).reason).toBe(boom)
    expect(labels()).toEqual(['first', 'third'])
    expect(trail).toEqual(['BEGIN', 'ROLLBACK TO', 'COMMIT'])
    expect(rollbacks).toBe(1)
  })

  it('fails every piece of a group whose commit fails, and keeps none of their writes', async () => {
    // A deferred foreign key is checked at COMMIT: a dangling reference makes the commit fail.
    db.exec(`PRAGMA foreign_keys = ON;
      CREATE TABLE parents (id INTEGER PRIMARY KEY);
      CREATE TABLE children (parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)`)
    const results = await Promise.allSettled([
      queue.transaction(async () => insert('innocent')),
      queue.transaction(async () => db.prepare('INSERT INTO children (parent) VALUES (42)').run()),
      queue.transaction(async () => 'read only'),
    ])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected'])
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/FOREIGN KEY/)
    expect(labels()).toEqual([])
    expect(trail).toEqual(['BEGIN', 'COMMIT', 'ROLLBACK'])
    expect(db.isTransaction).toBe(false)
    // And the queue goes on.
    await queue.transaction(async () => insert('later'))
    expect(labels()).toEqual(['later'])
  })

  it(`carries at most ${MAX_GROUP} transactions in one commit`, async () => {
    await Promise.all(
      Array.from({ length: MAX_GROUP + 1 }, (_, i) => queue.transaction(async () => insert(`t${i}`))),
    )
    expect(trail).toEqual(['BEGIN', 'COMMIT', 'BEGIN', 'COMMIT'])
    expect(labels()).toHaveLength(MAX_GROUP + 1)
  })

  it('runs a call at once when idle, and queues one made while a group is open until its commit', async () => {
    const idle = queue.call(async () => {
      insert('alone')
      return db.isTransaction
    })
    expect(labels()).toEqual(['alone']) // ran before anything was awaited
    expect(await idle).toBe(false) // autocommit: no transaction around it

    let release = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const tx = queue.transaction(async () => {
      insert('in group')
      await gate
    })
    await new Promise((resolve) => setImmediate(resolve))
    let called = false
    const during = queue.call(async () => {
      called = true
      return labels()
    })
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(called).toBe(false)
    release()
    await tx
    expect(await during).toEqual(['alone', 'in group'])
    expect(trail).toEqual(['BEGIN', 'COMMIT'])
  })

  it('fails what is waiting when the connection is gone, and says when it is idle', async () => {
    const pending = queue.transaction(async () => insert('never'))
    db.close()
    await expect(pending).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' })
    await queue.idle()
  })
})
