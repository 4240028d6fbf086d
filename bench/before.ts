import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

/**
 * The code before DPoP (commit 1937c01, the parent of the change), checked out next to this
 * one so that a benchmark can run its server as one more child in the same shuffled rounds:
 * "before" and "after" then share the machine's noise, and only their ratio is reported.
 *
 * `BENCH_BEFORE_DIR` (default `/tmp/passport-before`, outside the repository's tree): used as it
 * is when it holds that commit's `bench/`; created otherwise with `git worktree add --detach`,
 * its `node_modules` a symlink to this checkout's (the commit's dependencies are the same).
 * `BENCH_BEFORE=0` leaves the "before" cases out.
 */
export const BEFORE_COMMIT = '1937c01'
const ROOT = path.join(import.meta.dirname, '..')

export function beforeCheckout(env = process.env): { dir: string } | { dir: null; why: string } {
  if (env.BENCH_BEFORE === '0') return { dir: null, why: 'BENCH_BEFORE=0' }
  const dir = path.resolve(env.BENCH_BEFORE_DIR ?? '/tmp/passport-before')
  const git = (...args: string[]) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
  if (!fs.existsSync(path.join(dir, 'bench', 'tokens-child.ts'))) {
    const added = git('worktree', 'add', '--detach', dir, BEFORE_COMMIT)
    if (added.status !== 0) return { dir: null, why: `git worktree add failed: ${added.stderr.trim()}` }
  }
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: dir, encoding: 'utf8' }).stdout.trim()
  const wanted = git('rev-parse', `${BEFORE_COMMIT}^{commit}`).stdout.trim()
  if (head !== wanted) return { dir: null, why: `${dir} is at ${head.slice(0, 7)}, not ${BEFORE_COMMIT}` }
  const modules = path.join(dir, 'node_modules')
  if (!fs.existsSync(modules)) fs.symlinkSync(path.join(ROOT, 'node_modules'), modules)
  return { dir }
}
