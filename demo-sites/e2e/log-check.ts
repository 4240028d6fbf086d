import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { DEMO_USERS } from '../server/seed.ts'

/** Where the e2e run's passport writes its JSON log lines (playwright.config.ts sets it). */
export const E2E_LOG_FILE = path.resolve(import.meta.dirname, '../../.e2e-logs/passport.jsonl')

/** A JWT or JWE: dot-joined base64url runs. */
const COMPACT_TOKEN = /[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./
/**
 * 256-bit random values (refresh credentials, codes, cookie values, client secrets) are 43
 * base64url characters; so are the ids made by hashing one (a session id is the SHA-256 of its
 * cookie), which may be logged, but only under these names.
 */
const SECRET_SHAPED = /[A-Za-z0-9_-]{32,}/
/** UUIDs (user ids `u_…`, request ids, token ids) are ids, not secrets. */
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g
const ID_FIELDS = new Set(['session', 'session_id', 'sessionId', 'request_id'])

/** What is wrong with one log line, if anything. */
export function problemsOf(line: string, passwords: readonly string[]): string[] {
  const problems: string[] = []
  for (const password of passwords) if (line.includes(password)) problems.push('a demo password')
  if (COMPACT_TOKEN.test(line)) problems.push('a token-shaped string')
  let parsed: Record<string, unknown>
  try {
    parsed = JSON.parse(line) as Record<string, unknown>
  } catch {
    return [...problems, 'not JSON']
  }
  const walk = (value: unknown, key: string) => {
    if (typeof value === 'string' && SECRET_SHAPED.test(value.replace(UUID, '')) && !ID_FIELDS.has(key)) {
      problems.push(`a secret-shaped value in "${key}"`)
    } else if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) walk(v, k)
    }
  }
  walk(parsed, '')
  return problems
}

/**
 * Playwright's global teardown: after the whole e2e run, the passport's log (every line it
 * wrote while the browser tests signed in, refreshed, approved and signed out) must hold no
 * demo password, no token and no credential. Fails the run otherwise, naming the lines.
 */
export default function checkE2eLog(): void {
  if (!existsSync(E2E_LOG_FILE)) throw new Error(`no passport log at ${E2E_LOG_FILE}`)
  const lines = readFileSync(E2E_LOG_FILE, 'utf8').split('\n').filter(Boolean)
  const passwords = DEMO_USERS.map((u) => u.password)
  const bad = lines
    .map((line, i) => ({ i, problems: problemsOf(line, passwords) }))
    .filter((l) => l.problems.length > 0)
  if (bad.length > 0) {
    const sample = bad
      .slice(0, 10)
      .map((l) => `line ${l.i + 1}: ${l.problems.join(', ')}`)
      .join('\n')
    throw new Error(`the passport's e2e log holds secrets (${bad.length} lines):\n${sample}`)
  }
  console.info(`log check: ${lines.length} passport log lines, no password, token or credential`)
}
