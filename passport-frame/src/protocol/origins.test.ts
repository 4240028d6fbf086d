import { describe, expect, it } from 'vitest'
import { isAllowedOrigin, parseExactOrigin } from './origins.ts'

describe('parseExactOrigin', () => {
  it.each([
    'http://news.localhost:8081',
    'http://shop.localhost:8082',
    'http://passport.localhost:8080',
    'https://news.example',
    'https://news.example:8443',
    'http://127.0.0.1:8081',
    'http://[::1]:8080',
    'https://xn--nda.example', // punycode is the browser's own serialisation
  ])('accepts the exact origin %s', (origin) => {
    expect(parseExactOrigin(origin)).toBe(origin)
  })

  it.each([
    ['uppercase host', 'http://NEWS.localhost:8081'],
    ['uppercase scheme', 'HTTP://news.localhost:8081'],
    ['trailing slash', 'http://news.localhost:8081/'],
    ['path', 'http://news.localhost:8081/app'],
    ['query', 'http://news.localhost:8081?x=1'],
    ['empty fragment', 'http://news.localhost:8081#'],
    ['userinfo', 'http://user:pw@news.localhost:8081'],
    ['user only', 'http://user@news.localhost:8081'],
    ['default http port spelled out', 'http://news.localhost:80'],
    ['default https port spelled out', 'https://news.example:443'],
    ['leading zero port', 'http://news.localhost:08081'],
    ['leading space', ' http://news.localhost:8081'],
    ['trailing space', 'http://news.localhost:8081 '],
    ['trailing newline', 'http://news.localhost:8081\n'],
    ['missing slashes', 'http:news.localhost:8081'],
    ['backslash', 'http://news.localhost:8081\\'],
    ['unicode host (browser sends punycode)', 'https://ñ.example'],
    ['hex IPv4 (browser sends dotted)', 'http://0x7f.0.0.1'],
    ['look-alike suffix (port is not numeric)', 'http://news.localhost:8081.evil.localhost'],
    ['bare wildcard', '*'],
    ['wildcard subdomain', 'http://*.localhost:8081'],
    ['wildcard host', 'https://*'],
    ['percent-encoded wildcard', 'http://%2a.localhost:8081'],
    ['the null origin', 'null'],
    ['empty string', ''],
    ['scheme only', 'https://'],
    ['ftp scheme', 'ftp://news.localhost'],
    ['javascript scheme', 'javascript:alert(1)'],
    ['data scheme', 'data:text/html,hi'],
    ['file scheme', 'file:///etc/passwd'],
    ['blob URL', 'blob:http://news.localhost:8081/0b9c'],
    ['ws scheme', 'ws://news.localhost:8081'],
    [
      'over 255 characters',
      `https://${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.example`,
    ],
  ])('A2: rejects %s: %j', (_name, value) => {
    expect(parseExactOrigin(value)).toBeNull()
  })

  it.each([
    null,
    undefined,
    42,
    true,
    {},
    ['http://news.localhost:8081'],
    new URL('http://news.localhost:8081'),
    { toString: () => 'http://news.localhost:8081' },
  ])('rejects the non-string %o', (value) => {
    expect(parseExactOrigin(value)).toBeNull()
  })
})

describe('isAllowedOrigin', () => {
  const allowed = ['http://news.localhost:8081', 'https://news.example']

  it.each(allowed)('accepts the registered origin %s', (origin) => {
    expect(isAllowedOrigin(origin, allowed)).toBe(true)
  })

  // A2: every near miss of a registered origin is refused; only the byte-exact string passes.
  it.each([
    ['subdomain of an attacker', 'http://news.localhost:8081.evil.localhost'],
    ['prefix look-alike', 'http://evil-news.localhost:8081'],
    ['suffix look-alike', 'http://news.localhost.evil:8081'],
    ['attacker subdomain of the site', 'http://evil.news.localhost:8081'],
    ['scheme upgrade', 'https://news.localhost:8081'],
    ['scheme downgrade', 'http://news.example'],
    ['other port', 'http://news.localhost:8082'],
    ['no port', 'http://news.localhost'],
    ['explicit default port', 'https://news.example:443'],
    ['uppercase host', 'http://NEWS.localhost:8081'],
    ['mixed-case host', 'https://News.Example'],
    ['trailing slash', 'http://news.localhost:8081/'],
    ['path', 'https://news.example/login'],
    ['userinfo', 'https://user@news.example'],
    ['trailing dot', 'https://news.example.'],
    ['leading space', ' https://news.example'],
    ['trailing space', 'https://news.example '],
    ['wildcard', '*'],
    ['wildcard host', 'https://*.example'],
    ['the null origin (sandboxed sender, A3)', 'null'],
    ['empty string', ''],
    ['bare host', 'news.example'],
    ['unregistered site', 'http://evil.localhost:8083'],
    ['another registered-looking site', 'http://shop.localhost:8082'],
  ])('A2: rejects %s: %j', (_name, origin) => {
    expect(isAllowedOrigin(origin, allowed)).toBe(false)
  })

  it('denies everything for an empty allowlist', () => {
    expect(isAllowedOrigin('http://news.localhost:8081', [])).toBe(false)
    expect(isAllowedOrigin('', [])).toBe(false)
  })

  it('does not match a non-string origin against the allowlist', () => {
    expect(isAllowedOrigin(undefined as unknown as string, allowed)).toBe(false)
    expect(isAllowedOrigin(null as unknown as string, allowed)).toBe(false)
  })
})
