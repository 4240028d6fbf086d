import { beforeEach, describe, expect, it } from 'vitest'
import { T0 } from '../test-support.ts'
import { ENGINES, useEngine } from './test-engines.ts'
import type { Store } from './types.ts'

describe.each(ENGINES)('one-time ids: %s', (engineName) => {
  const engine = useEngine(engineName)
  let store: Store
  let other: Store
  beforeEach(async () => {
    store = engine.store()
    other = await engine.open()
  })

  it('claims an id once; a second claim, from this instance or another, is a replay', async () => {
    expect(await store.oneTimeIds.claim('k1', T0 + 60_000)).toBe(true)
    expect(await store.oneTimeIds.claim('k1', T0 + 60_000)).toBe(false)
    expect(await other.oneTimeIds.claim('k1', T0 + 60_000)).toBe(false)
  })

  it('of 20 racing claims of one id across two instances, exactly one wins', async () => {
    const claims = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? store : other).oneTimeIds.claim('race', T0 + 60_000)),
    )
    expect(claims.filter(Boolean)).toHaveLength(1)
  })

  it('purges only expired ids', async () => {
    await store.oneTimeIds.claim('old', T0)
    await store.oneTimeIds.claim('new', T0 + 120_000)
    expect(await store.oneTimeIds.purgeExpired(T0 + 60_000)).toBe(1)
    expect(await store.oneTimeIds.claim('old', T0 + 180_000)).toBe(true)
    expect(await store.oneTimeIds.claim('new', T0 + 180_000)).toBe(false)
  })
})
