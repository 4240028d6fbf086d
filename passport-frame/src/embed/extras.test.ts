import { describe, expect, it } from 'vitest'
import { display } from './extras.ts'

describe('display (making room for what the frame shows)', () => {
  const fakeIframe = () => {
    const attributes = new Set<string>(['aria-hidden'])
    return {
      style: { cssText: 'hidden-style' },
      tabIndex: -1,
      toggleAttribute: (name: string, on: boolean) =>
        void (on ? attributes.add(name) : attributes.delete(name)),
      attributes,
    }
  }

  it('shows the frame fixed in a corner, on top, reachable by keyboard; hides it again', () => {
    const iframe = fakeIframe()
    display(iframe as unknown as HTMLIFrameElement, true, 'hidden-style')
    expect(iframe.style.cssText).toContain('position:fixed')
    expect(iframe.style.cssText).toContain('z-index:2147483647')
    expect(iframe.tabIndex).toBe(0)
    expect(iframe.attributes.has('aria-hidden')).toBe(false)
    display(iframe as unknown as HTMLIFrameElement, false, 'hidden-style')
    expect(iframe.style.cssText).toBe('hidden-style')
    expect(iframe.tabIndex).toBe(-1)
    expect(iframe.attributes.has('aria-hidden')).toBe(true)
  })
})
