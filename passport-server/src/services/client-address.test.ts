import { Hono } from 'hono'
import { describe, expect, test } from 'vitest'
import { resolveConfig } from '../config.ts'
import { clientAddress } from '../routes/client-address.ts'
import { parseTrustedProxies, resolveClientAddress } from './client-address.ts'

const proxies = parseTrustedProxies(['10.0.0.1', '10.1.0.0/16', 'fd00::/8'])
const none = parseTrustedProxies([])

describe('client address behind trusted proxies', () => {
  test.each([
    [
      'no proxies configured: the TCP peer, whatever the header says',
      none,
      '10.0.0.1',
      '1.2.3.4',
      '10.0.0.1',
    ],
    [
      'a peer that is not a trusted proxy: its own address',
      proxies,
      '198.51.100.9',
      '1.2.3.4',
      '198.51.100.9',
    ],
    ['a trusted proxy: the address it saw', proxies, '10.0.0.1', '203.0.113.5', '203.0.113.5'],
    // The client wrote "1.2.3.4" itself; our proxy appended the address it really came from.
    [
      'the right-most untrusted entry, never the left-most',
      proxies,
      '10.0.0.1',
      '1.2.3.4, 203.0.113.5',
      '203.0.113.5',
    ],
    ['through two trusted proxies', proxies, '10.0.0.1', '1.2.3.4, 203.0.113.5, 10.1.4.4', '203.0.113.5'],
    ['IPv4 on a dual-stack socket', proxies, '::ffff:10.0.0.1', '203.0.113.5', '203.0.113.5'],
    ['an IPv6 proxy', proxies, 'fd00::1', '2001:db8::7', '2001:db8::7'],
    [
      'a garbled entry: the last address a trusted proxy vouched for',
      proxies,
      '10.0.0.1',
      'evil, 10.1.0.2',
      '10.1.0.2',
    ],
    ['a trusted proxy with no header: the proxy', proxies, '10.0.0.1', undefined, '10.0.0.1'],
    ['only trusted hops: the left-most of them', proxies, '10.0.0.1', '10.1.0.3, 10.1.0.2', '10.1.0.3'],
  ])('%s', (_, trusted, peer, header, expected) => {
    expect(resolveClientAddress(peer, header, trusted)).toBe(expected)
  })

  test.each(['10.0.0.0/33', 'proxy.example.com', '10.0.0.1/8/1', '*', '10.0.0.0/x'])(
    'refuses %s at start-up',
    (entry) => {
      expect(() =>
        resolveConfig({ issuer: 'https://passport.example.com', trustedProxies: [entry] }),
      ).toThrow('trusted proxy')
    },
  )

  test('clientAddress(c) reads the socket and the header of a Hono request', async () => {
    const route = (trustedProxies: string[]) => {
      const config = resolveConfig({ issuer: 'https://passport.example.com', trustedProxies })
      return new Hono().get('/', (c) => c.text(clientAddress(c, config)))
    }
    const env = { incoming: { socket: { remoteAddress: '10.0.0.1', remotePort: 1, remoteFamily: 'IPv4' } } }
    const init = { headers: { 'X-Forwarded-For': '1.2.3.4, 203.0.113.5' } }
    expect(await (await route(['10.0.0.1']).request('/', init, env)).text()).toBe('203.0.113.5')
    expect(await (await route([]).request('/', init, env)).text()).toBe('10.0.0.1')
    expect(await (await route([]).request('/', init)).text()).toBe('unknown')
  })
})
