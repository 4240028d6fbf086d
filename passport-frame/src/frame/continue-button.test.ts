import { describe, expect, it, vi } from 'vitest'
import showContinueButton, { type ContinueButtonDeps } from './continue-button.ts'

/** Just the DOM the button uses: elements with children, text, style, attributes and click listeners. */
class FakeElement {
  id = ''
  type = ''
  textContent = ''
  disabled = false
  style: Record<string, string> = {}
  children: FakeElement[] = []
  parent: FakeElement | null = null
  attrs: Record<string, string> = {}
  listeners: Array<() => unknown> = []
  readonly tag: string
  constructor(tag: string) {
    this.tag = tag
  }
  append(...kids: FakeElement[]) {
    for (const kid of kids) {
      kid.parent = this
      this.children.push(kid)
    }
  }
  remove() {
    if (this.parent) this.parent.children = this.parent.children.filter((c) => c !== this)
    this.parent = null
  }
  setAttribute(name: string, value: string) {
    this.attrs[name] = value
  }
  addEventListener(_type: 'click', listener: () => unknown) {
    this.listeners.push(listener)
  }
  async click() {
    for (const listener of this.listeners) await listener()
  }
  all(): FakeElement[] {
    return [this, ...this.children.flatMap((c) => c.all())]
  }
}

function harness(overrides: Partial<ContinueButtonDeps> = {}) {
  const body = new FakeElement('body')
  const clock = { now: 0 }
  const setVisible = vi.fn<(visible: boolean) => void>()
  const requestAccess = vi.fn(async () => {})
  const signIn = vi.fn(async () => {})
  const doc = {
    body,
    createElement: (tag: string) => new FakeElement(tag),
    getElementById: (id: string) => body.all().find((e) => e.id === id) ?? null,
  } as unknown as ContinueButtonDeps['doc']
  showContinueButton({ doc, setVisible, requestAccess, signIn, now: () => clock.now, ...overrides })
  const byText = (text: string) =>
    body.all().find((e) => e.tag === 'button' && e.textContent === text) as FakeElement
  const status = () => body.all().find((e) => e.attrs.role === 'status')?.textContent
  return { body, clock, setVisible, requestAccess, signIn, byText, status }
}

describe('the frame\'s "Continue with Passport" button', () => {
  it('names no one before access and asks the page to show the frame', () => {
    const h = harness()
    expect(h.byText('Continue with Passport')).toBeDefined()
    expect(h.body.all().some((e) => /Alice|alice/.test(e.textContent))).toBe(false)
    expect(h.setVisible).toHaveBeenCalledWith(true)
  })

  it('on a click asks for storage access, then signs in and goes away', async () => {
    const h = harness()
    h.clock.now = 1_000
    await h.byText('Continue with Passport').click()
    expect(h.requestAccess).toHaveBeenCalledOnce()
    expect(h.signIn).toHaveBeenCalledOnce()
    expect(h.body.children).toEqual([])
    expect(h.setVisible).toHaveBeenLastCalledWith(false)
  })

  it('ignores a click in its first moments on screen (clickjacking brake)', async () => {
    const h = harness()
    h.clock.now = 100
    await h.byText('Continue with Passport').click()
    expect(h.requestAccess).not.toHaveBeenCalled()
  })

  it('does not sign in when the browser refuses access, and says so', async () => {
    const h = harness({ requestAccess: vi.fn(async () => Promise.reject(new Error('NotAllowedError'))) })
    h.clock.now = 1_000
    await h.byText('Continue with Passport').click()
    expect(h.signIn).not.toHaveBeenCalled()
    expect(h.status()).toMatch(/did not allow/)
    expect(h.byText('Continue with Passport').disabled).toBe(false)
  })

  it('stays, with a hint, when there is no passport session behind the grant', async () => {
    const h = harness({ signIn: vi.fn(async () => Promise.reject(new Error('login_required'))) })
    h.clock.now = 1_000
    await h.byText('Continue with Passport').click()
    expect(h.status()).toMatch(/not signed in to the Passport/)
    expect(h.body.children.length).toBe(1)
  })

  it('"Not now" hides it', () => {
    const h = harness()
    void h.byText('Not now').click()
    expect(h.body.children).toEqual([])
    expect(h.setVisible).toHaveBeenLastCalledWith(false)
  })

  it('asked again, draws one button, not two', () => {
    const h = harness()
    showContinueButton({
      doc: {
        body: h.body,
        createElement: (tag: string) => new FakeElement(tag),
        getElementById: (id: string) => h.body.all().find((e) => e.id === id) ?? null,
      } as unknown as ContinueButtonDeps['doc'],
      setVisible: h.setVisible,
      requestAccess: h.requestAccess,
      signIn: h.signIn,
    })
    expect(h.body.children.length).toBe(1)
  })
})
