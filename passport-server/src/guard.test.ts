import { createServer } from 'node:http'
import { describe, expect, it } from 'vitest'
import { errorFields } from './errors.ts'
import { guardServer, installLastResortHandlers } from './guard.ts'
import type { LogLine } from './test-support.ts'

const capture = () => {
  const logs: LogLine[] = []
  return {
    logs,
    log: (event: string, fields: Record<string, unknown> = {}) => void logs.push({ event, fields }),
  }
}

describe('errorFields', () => {
  it('keeps the class and the gist, never a quoted input or a token-like run', () => {
    const jwt = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1X2FsaWNlIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ'
    let parseError: unknown
    try {
      JSON.parse(`${jwt} trailing`)
    } catch (err) {
      parseError = err
    }
    const fields = errorFields(parseError)
    expect(fields.error).toBe('SyntaxError')
    expect(JSON.stringify(fields)).not.toContain('eyJ')
    expect(errorFields(new Error(`bad token ${jwt}`))).toEqual({
      error: 'Error',
      message: 'bad token [redacted]',
    })
    expect(errorFields('plain')).toEqual({ error: 'string', message: 'plain' })
  })
})

describe('guardServer', () => {
  it('an accept failure on the listening server is logged, not thrown (@see issue 14)', async () => {
    const { logs, log } = capture()
    const server = createServer((_req, res) => res.end('ok'))
    guardServer(log, server, 'http')
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      // What Node does when accept() fails (EMFILE): with no listener, `emit` throws and the process ends.
      expect(() =>
        server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' })),
      ).not.toThrow()
      const { port } = server.address() as { port: number }
      expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('ok')
      expect(logs).toEqual([
        { event: 'server_error', fields: { listener: 'http', error: 'Error', message: 'accept EMFILE' } },
      ])
    } finally {
      server.close()
    }
  })
})

describe('installLastResortHandlers', () => {
  it('logs a stray rejection and keeps going; logs an uncaught exception and exits 1', () => {
    const { logs, log } = capture()
    const exits: number[] = []
    const before = {
      rejection: process.listeners('unhandledRejection'),
      exception: process.listeners('uncaughtException'),
    }
    installLastResortHandlers(log, (code) => void exits.push(code))
    const added = {
      rejection: process.listeners('unhandledRejection').filter((l) => !before.rejection.includes(l)),
      exception: process.listeners('uncaughtException').filter((l) => !before.exception.includes(l)),
    }
    try {
      for (const l of added.rejection) l(new Error('stray'), Promise.resolve())
      expect(exits).toEqual([])
      for (const l of added.exception) l(new TypeError('unguarded'), 'uncaughtException')
      expect(exits).toEqual([1])
      expect(logs).toEqual([
        { event: 'sys_unhandled_rejection', fields: { error: 'Error', message: 'stray' } },
        { event: 'sys_crash', fields: { error: 'TypeError', message: 'unguarded' } },
      ])
    } finally {
      for (const l of added.rejection) process.off('unhandledRejection', l)
      for (const l of added.exception) process.off('uncaughtException', l)
    }
  })
})
