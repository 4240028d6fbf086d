import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { createApp } from '../app.ts'
import { runCli } from '../cli.ts'
import { resolveConfig } from '../config.ts'
import { basicAuth, frameApi, signIn, sitePost } from '../test-flows.ts'
import { addSite, addUser, createTestDeps, NEWS_ORIGIN, testMasterKey } from '../test-support.ts'
import { importSqliteIntoPostgres } from './import-sqlite.ts'
import { openPostgresStore } from './postgres/index.ts'
import { createTestDatabase } from './test-engines.ts'

/**
 * The move from the embedded store to PostgreSQL: a passport with users, a site and a signed-in
 * device on a SQLite file, imported into a fresh PostgreSQL database, goes on there as if
 * nothing happened: the same password, authkey, client secret, token and refresh credential.
 */
describe('importing a SQLite store into PostgreSQL', () => {
  let dir: string
  let database: Awaited<ReturnType<typeof createTestDatabase>>
  const masterKey = testMasterKey()

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-import-'))
    database = await createTestDatabase()
  })
  afterEach(async () => {
    await database.drop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  /** A passport on a SQLite file: alice signed in on News (session, token, refresh family, events). */
  async function sqlitePassport() {
    const file = path.join(dir, 'passport.sqlite')
    const deps = await createTestDeps({ file, masterKey })
    const app = createApp(deps)
    const alice = await addUser(deps, 'alice')
    const news = await addSite(deps, { id: 'news', origins: [NEWS_ORIGIN] })
    const signedIn = await signIn(app, news, alice)
    // An earlier device's sign-out, in the event log frames resume from.
    const ended = {
      type: 'session_ended',
      userId: alice.id,
      sessionId: 's_earlier',
      siteId: null,
      reason: 'signed_out',
    } as const
    await deps.store.events.append({ ...ended, at: deps.clock.now() })
    const lastEventId = await deps.store.events.latestId()
    await deps.store.close()
    return { file, alice, news, signedIn, lastEventId }
  }

  async function countRows(table: string): Promise<number> {
    const client = new pg.Client({ connectionString: database.url })
    await client.connect()
    try {
      return Number((await client.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n)
    } finally {
      await client.end()
    }
  }

  test('everything moves: the device stays signed in, its refresh works, the password and client secret too', async () => {
    const before = await sqlitePassport()

    const report = await importSqliteIntoPostgres({
      sqliteFile: before.file,
      databaseUrl: database.url,
      masterKey,
    })
    expect(report.tables).toContainEqual({ table: 'users', rows: 1 })
    expect(report.tables).toContainEqual({ table: 'sites', rows: 1 })
    expect(report.tables).toContainEqual({ table: 'tokens', rows: 1 })
    expect(report.tables.find((t) => t.table === 'session_events')?.rows).toBeGreaterThan(0)

    const deps = await createTestDeps({
      store: await openPostgresStore(database.url, { poolSize: 2 }),
      masterKey,
    })
    try {
      const app = createApp(deps)
      // The site backend's client secret and the token minted on SQLite.
      const auth = basicAuth('news', before.news.clientSecret)
      expect(
        await (await sitePost(app, '/token/introspect', { token: before.signedIn.token }, auth)).json(),
      ).toMatchObject({
        active: true,
        sub: before.alice.id,
      })
      // The frame's refresh credential (same frame key), under the site's old authkey.
      const refreshed = await frameApi(app, 'token', {
        grant_type: 'refresh_token',
        authkey: before.news.authkey,
        refresh_token: before.signedIn.body.refresh_token,
      })
      expect(refreshed.status).toBe(200)
      // The same password signs in again (a newer device: newest wins, an event), and the
      // event log goes on after the copied ids.
      await signIn(app, before.news, before.alice)
      const next = await deps.store.events.append({
        type: 'session_ended',
        userId: before.alice.id,
        sessionId: 's_later',
        siteId: null,
        reason: 'signed_out',
        at: deps.clock.now(),
      })
      expect(next.id).toBeGreaterThan(before.lastEventId)
    } finally {
      await deps.store.close()
    }
  })

  test('a database that already holds a passport is refused, and keeps what it had', async () => {
    const before = await sqlitePassport()
    await importSqliteIntoPostgres({ sqliteFile: before.file, databaseUrl: database.url, masterKey })
    const tokens = await countRows('tokens')

    await expect(
      importSqliteIntoPostgres({ sqliteFile: before.file, databaseUrl: database.url, masterKey }),
    ).rejects.toMatchObject({
      code: 'invalid_request',
      message: expect.stringContaining('already holds users'),
    })
    expect(await countRows('users')).toBe(1)
    expect(await countRows('tokens')).toBe(tokens)
  })

  test('another master key is refused before anything is written', async () => {
    const before = await sqlitePassport()
    await expect(
      importSqliteIntoPostgres({
        sqliteFile: before.file,
        databaseUrl: database.url,
        masterKey: testMasterKey(),
      }),
    ).rejects.toMatchObject({ code: 'invalid_request', message: expect.stringContaining('master key') })
    expect(await countRows('users')).toBe(0)
    expect(await countRows('secrets')).toBe(0)
  })

  test('a missing file is refused and creates nothing', async () => {
    const file = path.join(dir, 'nothing-here.sqlite')
    await expect(
      importSqliteIntoPostgres({ sqliteFile: file, databaseUrl: database.url, masterKey }),
    ).rejects.toMatchObject({ code: 'invalid_request' })
    expect(fs.existsSync(file)).toBe(false)
  })

  test('from the CLI: `store import-sqlite FILE` fills the configured PostgreSQL, and needs one', async () => {
    const before = await sqlitePassport()
    const lines: string[] = []
    const io = { out: (line: string) => lines.push(line), readSecret: async () => '', masterKey }

    // Run on the embedded store (no PASSPORT_DATABASE_URL): nothing to fill, said so.
    const onSqlite = await createTestDeps({ masterKey })
    expect(await runCli(onSqlite, ['store', 'import-sqlite', before.file, '--json'], io)).toBe(1)
    expect(JSON.parse(lines.pop() ?? '')).toMatchObject({ error: 'invalid_request' })

    const store = await openPostgresStore(database.url, { poolSize: 2 })
    const deps = { ...(await createTestDeps({ store, masterKey })) }
    deps.config = resolveConfig({ ...deps.config, databaseUrl: database.url })
    try {
      expect(await runCli(deps, ['store', 'import-sqlite', before.file, '--json'], io)).toBe(0)
      expect(JSON.parse(lines.pop() ?? '').imported).toContainEqual({ table: 'users', rows: 1 })
      expect((await deps.store.users.findByUsername('alice'))?.id).toBe(before.alice.id)
      expect((await deps.store.audit.list({ limit: 10 })).map((a) => a.type)).toContain('cli_store_imported')
    } finally {
      await store.close()
    }
  })
})
