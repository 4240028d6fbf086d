import { execFile, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { freePort } from '../../test-support.ts'

/**
 * Test-only: a PostgreSQL server of the test's own (initdb + pg_ctl in a temporary directory, on
 * a free loopback port) for fault tests that stop, freeze or restart it; the shared server on
 * 5432 is never touched. Trust authentication for the superuser `root`, no fsync (a test's data
 * need not survive a power loss). Every command is bounded in time, and the server is stopped
 * when the test process exits, whatever happened.
 */

const BIN = '/usr/lib/postgresql/15/bin'
const run = promisify(execFile)
/** PostgreSQL refuses to run as root: then it runs as the `postgres` user. */
const asServerUser = (command: string, args: string[]): [string, string[]] =>
  process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args]

export interface OwnPostgres {
  port: number
  /** A URL of a database on it (created by `createDatabase`). */
  url(database: string): string
  createDatabase(name: string): Promise<void>
  /** `pg_ctl stop -m fast`: every connection is ended, new ones are refused. */
  stop(): Promise<void>
  start(): Promise<void>
  /** Freezes (SIGSTOP) or thaws (SIGCONT) every process of the server: it answers nothing, refuses nothing. */
  freeze(): void
  thaw(): void
  /** Stops it (if running) and removes its directory. */
  dispose(): Promise<void>
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'passport-own-pg-'))
  const data = path.join(dir, 'data')
  const port = await freePort()
  if (process.getuid?.() === 0) execFileSync('chown', ['postgres:postgres', dir])
  const pgCommand = async (command: string, args: string[], timeout = 30_000) => {
    const [file, argv] = asServerUser(path.join(BIN, command), args)
    await run(file, argv, { timeout })
  }
  await pgCommand('initdb', ['-D', data, '-U', 'root', '--auth=trust', '-E', 'UTF8', '--no-sync'], 60_000)
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=30`
  const start = () =>
    pgCommand('pg_ctl', ['-D', data, '-o', options, '-l', path.join(dir, 'log'), '-w', '-t', '30', 'start'])
  const stop = () => pgCommand('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop'])
  // Whatever becomes of the test, the server does not outlive its process.
  const stopOnExit = () => {
    try {
      const [file, argv] = asServerUser(path.join(BIN, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop'])
      execFileSync(file, argv, { timeout: 10_000, stdio: 'ignore' })
    } catch {
      // not running
    }
  }
  process.once('exit', stopOnExit)
  await start()

  const pids = (): number[] => {
    const main = Number(fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
    let children = ''
    try {
      children = execFileSync('pgrep', ['-P', String(main)], { encoding: 'utf8' })
    } catch {
      // none (pgrep exits 1)
    }
    return [main, ...children.split('\n').filter(Boolean).map(Number)]
  }
  const signal = (name: NodeJS.Signals) => {
    for (const pid of pids()) {
      try {
        process.kill(pid, name)
      } catch {
        // gone meanwhile
      }
    }
  }
  const url = (database: string) => `postgres://root@127.0.0.1:${port}/${database}`
  return {
    port,
    url,
    createDatabase: async (name) => {
      await run('psql', ['-X', '-q', '-d', url('postgres'), '-c', `CREATE DATABASE ${name}`], {
        timeout: 30_000,
      })
    },
    stop,
    start,
    freeze: () => signal('SIGSTOP'),
    thaw: () => signal('SIGCONT'),
    dispose: async () => {
      try {
        signal('SIGCONT')
      } catch {
        // not running
      }
      stopOnExit()
      process.removeListener('exit', stopOnExit)
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}
