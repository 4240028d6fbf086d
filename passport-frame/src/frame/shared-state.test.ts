import { afterEach, describe, expect, it, vi } from 'vitest'
import { MemoryStorage } from '../test-support/fake-window.ts'
import { connectSharedState, type SharedNews } from './shared-state.ts'

/** A document whose storage access FedCM did (or did not) grant; `shared` is the passport's own storage. */
function fakeDoc(granted: boolean, shared: Storage) {
  return {
    hasStorageAccess: vi.fn(async () => false),
    requestStorageAccess: vi.fn(async (types: { cookies?: boolean; localStorage?: boolean }) => {
      if (!granted) throw new DOMException('requestStorageAccess not allowed', 'NotAllowedError')
      return types.localStorage ? { localStorage: shared } : undefined
    }),
  }
}

afterEach(() => vi.useRealTimers())

describe('connectSharedState', () => {
  it('takes nothing where the browser gives no access (no FedCM sign-in on this site)', async () => {
    const doc = fakeDoc(false, new MemoryStorage())
    expect(await connectSharedState({ doc, onNews: () => {} })).toBeNull()
  })

  it("asks the browser once, for the passport's cookie and its storage together", async () => {
    // Each call is a round trip to the browser, and the frame's token request waits for them (issue 17).
    const doc = fakeDoc(true, new MemoryStorage())
    expect(await connectSharedState({ doc, onNews: () => {} })).not.toBeNull()
    expect(doc.requestStorageAccess.mock.calls).toEqual([[{ cookies: true, localStorage: true }]])
    expect(doc.hasStorageAccess).not.toHaveBeenCalled()
  })

  it('carries news between two connected sites within a poll, and never echoes its own', async () => {
    vi.useFakeTimers()
    const shared = new MemoryStorage()
    const heardOnNews: SharedNews[] = []
    const heardOnShop: SharedNews[] = []
    const news = await connectSharedState({
      doc: fakeDoc(true, shared),
      onNews: (n) => heardOnNews.push(n),
      pollMs: 250,
    })
    const shop = await connectSharedState({
      doc: fakeDoc(true, shared),
      onNews: (n) => heardOnShop.push(n),
      pollMs: 250,
    })
    news?.announce('signed_in')
    await vi.advanceTimersByTimeAsync(300)
    expect(heardOnShop).toEqual(['signed_in'])
    expect(heardOnNews).toEqual([])
    shop?.announce('signed_out')
    await vi.advanceTimersByTimeAsync(300)
    expect(heardOnNews).toEqual(['signed_out'])
    // Nothing secret is written: what happened and when.
    expect(Object.keys(JSON.parse(shared.getItem('passport:shared') ?? '{}')).sort()).toEqual([
      'at',
      'n',
      'news',
    ])
  })

  it('ignores anything else found in the shared storage', async () => {
    vi.useFakeTimers()
    const shared = new MemoryStorage()
    const heard: SharedNews[] = []
    await connectSharedState({ doc: fakeDoc(true, shared), onNews: (n) => heard.push(n), pollMs: 250 })
    for (const value of ['{', '{"news":"token"}', 'null']) {
      shared.setItem('passport:shared', value)
      await vi.advanceTimersByTimeAsync(300)
    }
    expect(heard).toEqual([])
  })
})
