import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PassportServer } from './server.ts'
import { startTestServer } from './test-support.ts'

let server: PassportServer
let port: number
let issuer: string
beforeAll(async () => {
  ;({ server, port, issuer } = await startTestServer())
})
afterAll(() => server.close())

/** Sends raw bytes and returns the status line of the answer (or '' when the socket closes first). */
function raw(request: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request))
    let data = ''
    socket.on('data', (chunk) => {
      data += chunk
    })
    socket.on('error', () => resolve(data.split('\r\n')[0] ?? ''))
    socket.on('close', () => resolve(data.split('\r\n')[0] ?? ''))
  })
}

describe('slow and oversized requests (I3, I4)', () => {
  test('I3: slow headers and bodies are cut well before Node defaults, and others are served meanwhile', async () => {
    expect(server.http.headersTimeout).toBeLessThanOrEqual(15_000)
    expect(server.http.requestTimeout).toBeLessThanOrEqual(30_000)
    // 50 clients trickling a header each: a normal request still answers at once.
    const slow = Array.from({ length: 50 }, () => {
      const socket = net.connect(port, '127.0.0.1', () =>
        socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: '),
      )
      socket.on('error', () => {})
      return socket
    })
    try {
      const started = Date.now()
      expect((await fetch(`${issuer}/.well-known/jwks.json`)).status).toBe(200)
      expect(Date.now() - started).toBeLessThan(500)
    } finally {
      for (const socket of slow) socket.destroy()
    }
  })

  test('I4: a 64 KB header is refused with 431', async () => {
    const status = await raw(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`)
    expect(status).toBe('HTTP/1.1 431 Request Header Fields Too Large')
  })

  test('I4: 3,000 headers are refused with 431', async () => {
    const headers = Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n')
    const status = await raw(`GET / HTTP/1.1\r\nHost: x\r\n${headers}\r\n\r\n`)
    expect(status).toBe('HTTP/1.1 431 Request Header Fields Too Large')
  })
})
