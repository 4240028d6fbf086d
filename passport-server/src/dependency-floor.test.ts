import fs from 'node:fs'
import { describe, expect, test } from 'vitest'

/**
 * J7: the runtime libraries that stand between the internet and our checks are at or above the
 * versions fixing the advisories the attack catalogue names. Both what is installed (the lock
 * file's pick) and what package.json allows (so a fresh install cannot go below it).
 */
const FLOORS = [
  // CVE-2025-59139 (4.9.7), CVE-2026-22817/22818 (4.11.4), CVE-2026-44456 (4.12.16),
  // CVE-2026-47673 (4.12.21): the highest fix is the floor.
  { name: 'hono', floor: '4.12.21' },
  // CVE-2022-36083 (PBES2 p2c, 4.9.2) and CVE-2024-28176 (JWE decompression, 4.15.5).
  { name: 'jose', floor: '4.15.5' },
] as const

const readJson = (path: string) =>
  JSON.parse(fs.readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8'))
const packageJson = readJson('package.json') as { dependencies: Record<string, string> }

function parts(version: string): number[] {
  const match = /(\d+)\.(\d+)\.(\d+)/.exec(version)
  if (!match) throw new Error(`not a version: ${version}`)
  return match.slice(1).map(Number)
}
function atLeast(version: string, floor: string): boolean {
  const [a, b] = [parts(version), parts(floor)]
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0)
  return true
}

describe('dependency floors (J7)', () => {
  test.each(FLOORS)('J7: installed $name is at least $floor', ({ name, floor }) => {
    const installed = (readJson(`node_modules/${name}/package.json`) as { version: string }).version
    expect(atLeast(installed, floor), `${name} ${installed} < ${floor}`).toBe(true)
  })

  test.each(FLOORS)('J7: package.json lets no install of $name go below $floor', ({ name, floor }) => {
    const range = packageJson.dependencies[name] ?? ''
    // A caret or tilde range, or an exact version: its lowest version is the one written.
    expect(range, `${name} is not a plain ^x.y.z range`).toMatch(/^[\^~]?\d+\.\d+\.\d+$/)
    expect(atLeast(range, floor), `${name} ${range} allows versions below ${floor}`).toBe(true)
  })

  test('J7: the comparison itself refuses a lower version', () => {
    expect(atLeast('4.12.20', '4.12.21')).toBe(false)
    expect(atLeast('4.9.99', '4.12.21')).toBe(false)
    expect(atLeast('5.0.0', '4.12.21')).toBe(true)
  })
})
