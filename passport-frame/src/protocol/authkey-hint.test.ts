import { describe, expect, it } from 'vitest'
import { fakeAuthkey } from '../test-support/fake-window.ts'
import { readAuthkeySite } from './authkey-hint.ts'

function b64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url')
}

describe('readAuthkeySite', () => {
  it('reads the site from a compact JWE protected header', () => {
    expect(readAuthkeySite(fakeAuthkey('news'))).toBe('news')
    expect(readAuthkeySite(fakeAuthkey('shop-2'))).toBe('shop-2')
  })

  it('reads a header that needed base64url padding and the URL-safe alphabet', () => {
    // '?' and '>' make '/' and '+' in standard base64: the reader must undo the URL-safe mapping.
    const header = b64url(JSON.stringify({ alg: 'dir', enc: 'A256GCM', note: '??>>~~', site: 'qsc' }))
    expect(header).toMatch(/[-_]/)
    expect(readAuthkeySite(`${header}..iv.ct.tag`)).toBe('qsc')
  })

  it('accepts a site id of exactly 63 characters and refuses 64', () => {
    expect(readAuthkeySite(fakeAuthkey(`a${'b'.repeat(62)}`))).toBe(`a${'b'.repeat(62)}`)
    expect(readAuthkeySite(fakeAuthkey(`a${'b'.repeat(63)}`))).toBeNull()
  })

  it.each([
    ['empty', ''],
    ['no dots, not base64 JSON', 'garbage'],
    ['dots only', '....'],
    ['header is not base64', '%%%..a.b.c'],
    ['header is not JSON', `${b64url('not json')}..a.b.c`],
    ['header is JSON null', `${b64url('null')}..a.b.c`],
    ['header is a JSON string', `${b64url('"news"')}..a.b.c`],
    ['header without site', `${b64url('{"alg":"dir"}')}..a.b.c`],
    ['header longer than 512 characters', fakeAuthkey('news', { pad: 'x'.repeat(400) })],
  ])('returns null for %s', (_name, authkey) => {
    expect(readAuthkeySite(authkey)).toBeNull()
  })

  it.each([
    ['a number', 7],
    ['an object', { id: 'news' }],
    ['uppercase', 'News'],
    ['leading hyphen', '-news'],
    ['a dot', 'news.example'],
    ['a slash (path traversal in the frame URL)', '../admin'],
    ['a space', 'news site'],
    ['an empty string', ''],
    ['HTML', '<img src=x>'],
  ])('returns null when the site is %s', (_name, site) => {
    expect(readAuthkeySite(fakeAuthkey(site))).toBeNull()
  })
})
