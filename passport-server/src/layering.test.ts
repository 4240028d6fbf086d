import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { expect, test } from 'vitest'

/**
 * The house's layering, checked on the source (STYLE §9: routes → services → tokens → store;
 * the brief: only `tokens/` imports jose). Test files may reach anywhere.
 */
const root = import.meta.dirname
const sources = (readdirSync(root, { recursive: true }) as string[])
  .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
  .map((file) => ({ file, text: readFileSync(path.join(root, file), 'utf8') }))
const importsOf = (text: string) => [...text.matchAll(/^import[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1])

test('only tokens/ imports jose: one room holds every JOSE decision (algorithms, audiences, formats)', () => {
  const outside = sources.filter(
    ({ file, text }) => !file.startsWith(`tokens${path.sep}`) && importsOf(text).includes('jose'),
  )
  expect(sources.length).toBeGreaterThan(100) // really scanned
  expect(outside.map((s) => s.file)).toEqual([])
})

test('routes reach tokens through services, never directly', () => {
  const direct = sources.filter(
    ({ file, text }) =>
      file.startsWith(`routes${path.sep}`) && importsOf(text).some((from) => from?.includes('/tokens/')),
  )
  expect(direct.map((s) => s.file)).toEqual([])
})
