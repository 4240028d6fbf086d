import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Hono } from 'hono'
import { afterAll, expect, test } from 'vitest'
import { HASHED_ASSET_CACHE, hashedAssets } from './hashed-assets.ts'
import { createHostileSiteApp } from './hostile-site.ts'

const dist = mkdtempSync(path.join(tmpdir(), 'demo-assets-'))
mkdirSync(path.join(dist, 'assets'))
mkdirSync(path.join(dist, 'hostile'))
writeFileSync(path.join(dist, 'assets', 'shop-AbC123.js'), 'export {}\n')
writeFileSync(path.join(dist, 'hostile', 'index.html'), '<!doctype html><!-- passport-sdk -->')
afterAll(() => rmSync(dist, { recursive: true, force: true }))

test('a built file is kept for a year without revalidation: its name changes with its content', async () => {
  const app = new Hono().use('/assets/*', hashedAssets(dist))
  const res = await app.request('/assets/shop-AbC123.js')
  expect(res.status).toBe(200)
  expect(res.headers.get('Cache-Control')).toBe(HASHED_ASSET_CACHE)
  expect(await res.text()).toBe('export {}\n')
})

test('a missing file is not found, and nothing says to keep that answer', async () => {
  const app = new Hono().use('/assets/*', hashedAssets(dist))
  const res = await app.request('/assets/shop-Gone99.js')
  expect(res.status).toBe(404)
  expect(res.headers.get('Cache-Control')).toBeNull()
})

test('a demo site serves its built files that way', async () => {
  const app = createHostileSiteApp({
    passportOrigin: 'http://passport.localhost:1',
    newsAuthkey: 'k',
    distDir: dist,
  })
  const res = await app.request('/assets/shop-AbC123.js')
  expect(res.headers.get('Cache-Control')).toBe(HASHED_ASSET_CACHE)
})
