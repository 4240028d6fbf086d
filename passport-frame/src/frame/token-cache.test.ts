import { beforeEach, describe, expect, it } from 'vitest'
import { MemoryStorage, ThrowingStorage } from '../test-support/fake-window.ts'
import { type CachedToken, createTokenCache } from './token-cache.ts'

const T0 = 1_700_000_000_000
let clock = T0
const now = () => clock

const entry = (over: Partial<CachedToken> = {}): CachedToken => ({
  token: 'tok-news',
  expiresAt: T0 + 10 * 60_000,
  clockOffsetMs: 0,
  ...over,
})

beforeEach(() => {
  clock = T0
})

describe('createTokenCache', () => {
  it('is empty at first, returns what was written, and forgets it on clear', () => {
    const cache = createTokenCache('news', new MemoryStorage(), now)
    expect(cache.read()).toBeNull()
    cache.write(entry())
    expect(cache.read()).toEqual(entry())
    cache.clear()
    expect(cache.read()).toBeNull()
  })

  it('keeps the entry in storage under a per-site key, so a reloaded frame finds it', () => {
    const storage = new MemoryStorage()
    createTokenCache('news', storage, now).write(entry())
    expect(Object.keys(storage.entries())).toEqual(['passport:token:news'])
    expect(createTokenCache('news', storage, now).read()).toEqual(entry())
  })

  it("never returns one site's entry for another site", () => {
    const storage = new MemoryStorage()
    const news = createTokenCache('news', storage, now)
    const shop = createTokenCache('shop', storage, now)
    news.write(entry({ token: 'tok-news' }))
    expect(shop.read()).toBeNull()
    shop.write(entry({ token: 'tok-shop' }))
    expect(news.read()?.token).toBe('tok-news')
    expect(shop.read()?.token).toBe('tok-shop')
    shop.clear()
    expect(news.read()?.token).toBe('tok-news')
    expect(createTokenCache('news-2', storage, now).read()).toBeNull()
  })

  describe('expiry margin of 30 s', () => {
    it('serves a token until 30 s before it expires, then treats it as gone', () => {
      const cache = createTokenCache('news', new MemoryStorage(), now)
      cache.write(entry({ expiresAt: T0 + 60_000 }))
      clock = T0 + 29_999
      expect(cache.read()).not.toBeNull()
      clock = T0 + 30_000 // exactly 30 s left
      expect(cache.read()).toBeNull()
      clock = T0 + 61_000 // expired
      expect(cache.read()).toBeNull()
    })

    it('does not serve a token written with less than 30 s left', () => {
      const cache = createTokenCache('news', new MemoryStorage(), now)
      cache.write(entry({ expiresAt: T0 + 20_000 }))
      expect(cache.read()).toBeNull()
    })
  })

  describe('clock offset', () => {
    it('judges expiry on the server clock when the server is ahead', () => {
      const cache = createTokenCache('news', new MemoryStorage(), now)
      // Server is 5 minutes ahead: a token with 5.5 min left on the server clock has 30 s left here.
      cache.write(entry({ expiresAt: T0 + 330_000, clockOffsetMs: 300_000 }))
      clock = T0 - 1
      expect(cache.read()).not.toBeNull()
      clock = T0
      expect(cache.read()).toBeNull()
    })

    it('judges expiry on the server clock when the server is behind', () => {
      const cache = createTokenCache('news', new MemoryStorage(), now)
      // Server is 5 minutes behind: a token "expiring" 1 min ago by the local clock is still good.
      cache.write(entry({ expiresAt: T0 - 60_000, clockOffsetMs: -300_000 }))
      expect(cache.read()).not.toBeNull()
      clock = T0 + 210_000 // server time T0 - 90 s: exactly 30 s left
      expect(cache.read()).toBeNull()
    })
  })

  describe('corrupt storage value is treated as empty', () => {
    it.each([
      ['not JSON', '{not json'],
      ['JSON null', 'null'],
      ['a number', '42'],
      ['a string', '"tok"'],
      ['an array', '[1,2,3]'],
      ['an empty object', '{}'],
      ['a numeric token', JSON.stringify({ token: 1, expiresAt: T0 + 600_000, clockOffsetMs: 0 })],
      ['a missing expiresAt', JSON.stringify({ token: 't', clockOffsetMs: 0 })],
      [
        'a string expiresAt',
        JSON.stringify({ token: 't', expiresAt: String(T0 + 600_000), clockOffsetMs: 0 }),
      ],
      ['a missing clockOffsetMs', JSON.stringify({ token: 't', expiresAt: T0 + 600_000 })],
      ['a string clockOffsetMs', JSON.stringify({ token: 't', expiresAt: T0 + 600_000, clockOffsetMs: '0' })],
      ['a null expiresAt', JSON.stringify({ token: 't', expiresAt: null, clockOffsetMs: 0 })],
    ])('%s', (_name, raw) => {
      const storage = new MemoryStorage()
      storage.setItem('passport:token:news', raw)
      expect(createTokenCache('news', storage, now).read()).toBeNull()
    })

    it('recovers once a good entry is written over the corrupt one', () => {
      const storage = new MemoryStorage()
      storage.setItem('passport:token:news', '{not json')
      const cache = createTokenCache('news', storage, now)
      cache.write(entry())
      expect(cache.read()).toEqual(entry())
    })
  })

  describe('shared storage (tabs of the same site)', () => {
    it('sees the entry another tab wrote', () => {
      const storage = new MemoryStorage()
      const tab1 = createTokenCache('news', storage, now)
      const tab2 = createTokenCache('news', storage, now)
      tab1.write(entry({ token: 'from-tab-1' }))
      expect(tab2.read()?.token).toBe('from-tab-1')
    })

    it('stops serving its own token once another tab cleared the entry (logout there)', () => {
      const storage = new MemoryStorage()
      const tab1 = createTokenCache('news', storage, now)
      const tab2 = createTokenCache('news', storage, now)
      tab2.write(entry({ token: 'written-by-tab-2' }))
      tab1.clear()
      expect(tab2.read()).toBeNull()
    })

    it('stops serving its own token once the site data was cleared', () => {
      const storage = new MemoryStorage()
      const cache = createTokenCache('news', storage, now)
      cache.write(entry())
      storage.clear()
      expect(cache.read()).toBeNull()
    })
  })

  describe('without usable storage', () => {
    it('keeps the token in memory when there is no storage', () => {
      const cache = createTokenCache('news', null, now)
      expect(cache.read()).toBeNull()
      cache.write(entry())
      expect(cache.read()).toEqual(entry())
      clock = T0 + 10 * 60_000 - 30_000
      expect(cache.read()).toBeNull() // the margin applies in memory too
      clock = T0
      cache.clear()
      expect(cache.read()).toBeNull()
    })

    it('keeps the token in memory when storage throws, and never throws itself', () => {
      const cache = createTokenCache('news', new ThrowingStorage(), now)
      expect(() => cache.read()).not.toThrow()
      expect(cache.read()).toBeNull()
      expect(() => cache.write(entry())).not.toThrow()
      expect(cache.read()).toEqual(entry())
      expect(() => cache.clear()).not.toThrow()
      expect(cache.read()).toBeNull()
    })

    it('serves the newer in-memory token when storage refuses a write, not the older stored one', () => {
      const storage = new MemoryStorage()
      const cache = createTokenCache('news', storage, now)
      cache.write(entry({ token: 'old' }))
      const setItem = storage.setItem
      storage.setItem = () => {
        throw new Error('QuotaExceededError')
      }
      cache.write(entry({ token: 'new' }))
      expect(cache.read()?.token).toBe('new')
      storage.setItem = setItem
      cache.write(entry({ token: 'newest' }))
      expect(storage.getItem('passport:token:news')).toContain('newest')
      expect(cache.read()?.token).toBe('newest')
    })
  })
})
