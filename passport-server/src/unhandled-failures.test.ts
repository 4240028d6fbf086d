import { describe, expect, test } from 'vitest'
import type { AppDeps } from './deps.ts'
import { frameApi, signIn } from './test-flows.ts'
import { createTestWorld, startTestServer } from './test-support.ts'

describe('unhandled failures (I5)', () => {
  test('I5: a throw inside a route is a generic 500 server_error, logged, and the next request is served', async () => {
    const { server, deps, issuer } = await startTestServer()
    try {
      const { store } = deps
      const broken = {
        ...store.sites,
        get: async () => Promise.reject(new TypeError('boom at /srv/x.ts:12')),
      }
      ;(deps as AppDeps).store = { ...store, sites: broken }
      const res = await fetch(`${issuer}/authorize?client_id=news`)
      expect(res.status).toBe(500)
      expect(await res.json()).toEqual({ error: 'server_error' })
      expect(deps.logs).toContainEqual(expect.objectContaining({ event: 'server_error' }))
      ;(deps as AppDeps).store = store
      expect((await fetch(`${issuer}/.well-known/jwks.json`)).status).toBe(200)
    } finally {
      await server.close()
    }
  })

  test('I5: a throw inside the frame API (a store method) hides its detail from the caller', async () => {
    const { app, deps, news, alice } = await createTestWorld()
    const { token } = await signIn(app, news, alice)
    deps.store.tokens.getWithHash = async () => {
      throw new Error('SQLITE_CORRUPT: database disk image is malformed')
    }
    const res = await frameApi(app, 'check', { authkey: news.authkey, token })
    expect(res.status).toBe(500)
    const text = await res.text()
    expect(text).toBe('{"error":"server_error"}')
  })
})
