import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { getRequestListener } from '@hono/node-server'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { attachLiveServer } from './live/live-server.ts'
import { FUZZ_CASES, type FuzzTarget, runFuzz, stillAnswers } from './raw-fuzz.ts'
import type { PassportServer } from './server.ts'
import { allLogText, type LogLine, startTestServer, type TestDeps } from './test-support.ts'

/** @see issue 14: one upgrade to `//[` ended the process and every site with it. */

let server: PassportServer
let deps: TestDeps
let logs: LogLine[]
let target: FuzzTarget

beforeAll(async () => {
  const started = await startTestServer()
  ;({ server, deps, logs } = started)
  target = { host: '127.0.0.1', port: started.port, origin: started.issuer }
})
afterAll(() => server.close())

describe('a real passport over TCP', () => {
  test('the upgrade to //[ gets a 400 and the passport keeps answering', async () => {
    const [result] = await runFuzz(target, undefined, [
      FUZZ_CASES.find((c) => c.name === 'upgrade to //[') as (typeof FUZZ_CASES)[number],
    ])
    expect(result).toEqual({ name: 'upgrade to //[', reply: 'HTTP/1.1 400 Bad Request', answered: true })
    expect(logs).toContainEqual({
      event: 'ws_upgrade_rejected',
      fields: { reason: 'bad_request_target', status: 400 },
    })
  })

  test('answers after every malformed case; refuses bad input as such, logs no error or secret', async () => {
    const results = await runFuzz(target)
    expect(results.filter((r) => !r.answered)).toEqual([])
    expect(results).toHaveLength(FUZZ_CASES.length)
    const reply = new Map(results.map((r) => [r.name, r.reply]))
    expect(reply.get('upgrade to http://[')).toBe('HTTP/1.1 400 Bad Request')
    expect(reply.get('target //[')).toMatch(/^HTTP\/1\.1 404 /)
    expect(reply.get('Content-Length with Transfer-Encoding')).toBe('HTTP/1.1 400 Bad Request')
    expect(reply.get('20 KB header')).toBe('HTTP/1.1 431 Request Header Fields Too Large')
    expect(reply.get('bad chunk size')).toMatch(/^HTTP\/1\.1 400 /)
    expect(reply.get('slowloris: 50 sockets holding half a request while a normal one is made')).toBe(
      'a normal request was answered meanwhile',
    )
    // Client faults are not server errors, and nothing token-like reached the log.
    expect(logs.filter((l) => l.event === 'server_error')).toEqual([])
    expect(allLogText(logs)).not.toMatch(/eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\./)
  }, 120_000)
})

describe('a route that throws', () => {
  test('answers 500 server_error without detail, logs it without secrets, and the passport keeps answering', async () => {
    const get = deps.store.sites.get
    deps.store.sites.get = () => {
      throw new TypeError('a bug quoting "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"')
    }
    try {
      const res = await fetch(`http://127.0.0.1:${target.port}/frame/news`)
      expect(res.status).toBe(500)
      expect(await res.json()).toEqual({ error: 'server_error' })
    } finally {
      deps.store.sites.get = get
    }
    expect(await stillAnswers(target)).toBe(true)
    // Each request also writes its http_request line; every line carries its request id.
    expect(logs.filter((l) => l.event === 'server_error').at(-1)).toEqual({
      event: 'server_error',
      fields: {
        listener: 'http',
        error: 'TypeError',
        message: 'a bug quoting "…"',
        path: '/frame/news',
        request_id: expect.any(String),
      },
    })
  })
})

describe('a live socket that was accepted', () => {
  // The live channel's authentication is not what this is about: an authenticator that takes
  // any answer lets the invalid frames reach an open WebSocket and its listeners.
  test('invalid frames close that socket only; the passport keeps answering', async () => {
    const http = createServer(getRequestListener(server.app.fetch))
    const live = attachLiveServer({
      server: http,
      deps,
      authenticator: {
        authenticate: async () => ({ userId: 'u_fuzz', sessionId: 's_fuzz', siteId: 'fuzz', jti: 'fuzz' }),
      },
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    try {
      const apart = { ...target, port: (http.address() as AddressInfo).port }
      const frames = FUZZ_CASES.filter((c) => c.name.startsWith('WebSocket: '))
      const results = await runFuzz(apart, undefined, frames)
      // Accepted, then dropped by the server (no "still open"), except the one valid frame.
      expect(results.map((r) => [r.name, r.reply, r.answered])).toEqual(
        frames.map((c) => [
          c.name,
          c.name.includes('JSON that is no message')
            ? 'HTTP/1.1 101 Switching Protocols (still open)'
            : 'HTTP/1.1 101 Switching Protocols',
          true,
        ]),
      )
      expect(live.connectionCount()).toBe(0)
    } finally {
      live.close()
      http.close()
    }
  }, 60_000)
})
