import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { haproxyConfigFrom } from './cluster-harness.ts'

const sample = fs.readFileSync(path.resolve(import.meta.dirname, '../../deploy/haproxy.cfg'), 'utf8')
const HAPROXY = '/usr/sbin/haproxy'
/** Only what is not a comment. */
const directives = (text: string) =>
  text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean)

describe('deploy/haproxy.cfg, the sample the README shows and the cluster tests run', () => {
  it('checks /readyz, balances without stickiness, tunnels WebSockets, forwards the client address, retries elsewhere', () => {
    const lines = directives(sample)
    expect(lines).toContain('option httpchk GET /readyz')
    expect(lines).toContain('balance roundrobin')
    expect(lines.some((l) => /^timeout tunnel \d+/.test(l))).toBe(true)
    expect(lines).toContain('option forwardfor')
    expect(lines).toContain('option redispatch 1')
    expect(lines.some((l) => /^retries \d+/.test(l))).toBe(true)
    // No stickiness, and a draining instance's sockets are its own to close (with 4503).
    expect(lines.filter((l) => /^(cookie|stick|hash-type)\b|shutdown-sessions/.test(l))).toEqual([])
  })

  it('made runnable for the tests: only the bind, servers, socket, maxconn and timing change', () => {
    const text = haproxyConfigFrom(sample, {
      port: 19000,
      servers: [
        { name: 'passport1', port: 19010 },
        { name: 'passport2', port: 19011 },
      ],
      socket: '/tmp/x.sock',
      checkMs: 250,
    })
    const lines = directives(text)
    expect(lines.filter((l) => l.startsWith('bind '))).toEqual(['bind 127.0.0.1:19000'])
    expect(lines.filter((l) => l.startsWith('server '))).toEqual([
      'server passport1 127.0.0.1:19010',
      'server passport2 127.0.0.1:19011',
    ])
    expect(lines).toContain('stats socket /tmp/x.sock mode 600 level admin')
    expect(lines).toContain('option httpchk GET /readyz')
    expect(lines.some((l) => l.includes('redirect scheme https'))).toBe(false)
  })

  it('refuses a sample that lost a line it adapts (the tests never run another config)', () => {
    expect(() =>
      haproxyConfigFrom(sample.replace(/^\s*server .*\n/gm, ''), {
        port: 1,
        servers: [],
        socket: '/tmp/x.sock',
        checkMs: 250,
      }),
    ).toThrow(/server lines/)
  })

  it.skipIf(!fs.existsSync(HAPROXY))('HAProxy itself accepts the adapted config (haproxy -c)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haproxy-cfg-'))
    try {
      const file = path.join(dir, 'haproxy.cfg')
      fs.writeFileSync(
        file,
        haproxyConfigFrom(sample, {
          port: 19099,
          servers: [{ name: 'passport1', port: 19098 }],
          socket: path.join(dir, 'sock'),
          checkMs: 250,
        }),
      )
      const check = spawnSync(HAPROXY, ['-c', '-f', file], { encoding: 'utf8', timeout: 10_000 })
      expect(check.status, check.stderr).toBe(0)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
