import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  type FakeBrowser,
  installBrowser,
  MemoryStorage,
  ThrowingStorage,
} from '../test-support/fake-window.ts'
import { createHintStore, type PendingSignIn } from './hint.ts'

let browser: FakeBrowser
beforeEach(() => {
  browser = installBrowser({ url: 'http://news.localhost:8081/' })
})
afterEach(() => browser.uninstall())

const pending: PendingSignIn = {
  state: 'st4te',
  codeVerifier: 'v3rifier',
  redirectUri: 'http://news.localhost:8081/',
  returnTo: 'http://news.localhost:8081/article/7',
}

describe('createHintStore', () => {
  it('round-trips the hint in localStorage under a per-site key', () => {
    const store = createHintStore('news')
    expect(store.readHint()).toBeNull()
    store.writeHint({ status: 'signed_in', expiresAt: 1234 })
    expect(store.readHint()).toEqual({ status: 'signed_in', expiresAt: 1234 })
    expect(JSON.parse(browser.localStorage.getItem('passport:news:hint') as string)).toEqual({
      status: 'signed_in',
      expiresAt: 1234,
    })
    store.writeHint({ status: 'signed_out', reason: 'replaced', at: 99 })
    expect(createHintStore('news').readHint()).toEqual({ status: 'signed_out', reason: 'replaced', at: 99 })
  })

  it("never shows one site's hint, silent attempt or pending sign-in to another", () => {
    const news = createHintStore('news')
    news.writeHint({ status: 'signed_in', expiresAt: 1 })
    news.markSilentAttempt(5000)
    news.putPending(pending)
    const shop = createHintStore('shop')
    expect(shop.readHint()).toBeNull()
    expect(shop.lastSilentAttempt()).toBe(0)
    expect(shop.takePending()).toBeNull()
    expect(news.takePending()).toEqual(pending)
  })

  it('remembers the last silent attempt (0 when never), shared through localStorage', () => {
    const store = createHintStore('news')
    expect(store.lastSilentAttempt()).toBe(0)
    store.markSilentAttempt(1_700_000_000_000)
    expect(createHintStore('news').lastSilentAttempt()).toBe(1_700_000_000_000)
    expect(browser.localStorage.getItem('passport:news:silent_at')).toBe('1700000000000')
  })

  it('keeps the pending sign-in in sessionStorage (this tab), for one use only', () => {
    const store = createHintStore('news')
    store.putPending(pending)
    expect(browser.sessionStorage.getItem('passport:news:pending')).not.toBeNull()
    expect(Object.keys(browser.localStorage.entries())).toEqual([])
    expect(store.takePending()).toEqual(pending)
    expect(store.takePending()).toBeNull()
    expect(browser.sessionStorage.getItem('passport:news:pending')).toBeNull()
  })

  it('treats corrupt stored values as absent, and a taken corrupt pending is removed', () => {
    browser.localStorage.setItem('passport:news:hint', '{oops')
    browser.localStorage.setItem('passport:news:silent_at', 'not-a-number')
    browser.sessionStorage.setItem('passport:news:pending', '[')
    const store = createHintStore('news')
    expect(store.readHint()).toBeNull()
    expect(store.lastSilentAttempt()).toBe(0)
    expect(store.takePending()).toBeNull()
    expect(browser.sessionStorage.getItem('passport:news:pending')).toBeNull()
  })

  it('works without storage when reading window.localStorage throws (blocked storage)', () => {
    for (const kind of ['localStorage', 'sessionStorage']) {
      Object.defineProperty(browser.window, kind, {
        configurable: true,
        get() {
          throw new Error('SecurityError')
        },
      })
    }
    const store = createHintStore('news')
    expect(() => {
      store.writeHint({ status: 'signed_in', expiresAt: 1 })
      store.markSilentAttempt(1)
      store.putPending(pending)
    }).not.toThrow()
    expect(store.readHint()).toBeNull()
    expect(store.lastSilentAttempt()).toBe(0)
    expect(store.takePending()).toBeNull()
  })

  it('never throws when storage calls throw (full or blocked)', () => {
    browser.window.localStorage = new ThrowingStorage()
    browser.window.sessionStorage = new ThrowingStorage()
    const store = createHintStore('news')
    expect(() => store.writeHint({ status: 'signed_in', expiresAt: 1 })).not.toThrow()
    expect(() => store.putPending(pending)).not.toThrow()
    expect(store.readHint()).toBeNull()
    expect(store.takePending()).toBeNull()
    expect(store.lastSilentAttempt()).toBe(0)
  })

  it('reads the storage present when the store was created', () => {
    const store = createHintStore('news')
    browser.window.localStorage = new MemoryStorage()
    store.writeHint({ status: 'signed_in', expiresAt: 1 })
    expect(browser.localStorage.getItem('passport:news:hint')).not.toBeNull()
  })
})
