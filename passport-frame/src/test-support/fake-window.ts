/**
 * Small fakes of the browser pieces the frame and the SDK touch (windows and postMessage,
 * storage, an iframe, location and history), so their logic runs in Node unit tests without
 * a DOM. Only test files import this module.
 */

type MessageListener = (event: MessageEvent) => void

export interface PostedMessage {
  message: unknown
  targetOrigin: string
}

// Captured before any test installs fake timers: message delivery stays a real task.
const realSetTimeout = globalThis.setTimeout.bind(globalThis)

/** Lets queued message deliveries and the promise chains they start run to completion. */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => realSetTimeout(resolve, 0))
}

/** Whether a message posted with `targetOrigin` may be delivered to a window of `origin`. */
function targetMatches(targetOrigin: string, origin: string): boolean {
  if (targetOrigin === '*') return true
  try {
    return new URL(targetOrigin).origin === origin
  } catch {
    return false
  }
}

/** A window: message listeners, and a record of every message posted to it. */
export class FakeWindow {
  readonly origin: string
  parent: FakeWindow
  readonly posted: PostedMessage[] = []
  /** Set by `linkFrame`: who is allowed to post here, and how the message reaches the listeners. */
  deliver: ((message: unknown, targetOrigin: string) => void) | null = null
  private readonly listeners = new Set<MessageListener>()

  constructor(origin: string, parent?: FakeWindow) {
    this.origin = origin
    this.parent = parent ?? this
  }

  addEventListener(type: string, listener: MessageListener): void {
    if (type === 'message') this.listeners.add(listener)
  }

  removeEventListener(type: string, listener: MessageListener): void {
    if (type === 'message') this.listeners.delete(listener)
  }

  get listenerCount(): number {
    return this.listeners.size
  }

  /** Dispatches a message event to this window's listeners, as the browser would. */
  receive(data: unknown, from: { origin: string; source: unknown }): void {
    const event = { data, origin: from.origin, source: from.source } as unknown as MessageEvent
    for (const listener of [...this.listeners]) listener(event)
  }

  postMessage(message: unknown, targetOrigin: string): void {
    const copy = structuredClone(message)
    this.posted.push({ message: copy, targetOrigin })
    this.deliver?.(copy, targetOrigin)
  }
}

/**
 * Makes `frame` an iframe of `page`: each `postMessage` is delivered in a later task, with the
 * sender's origin and window, and only when `targetOrigin` matches the receiver (as browsers do).
 */
export function linkFrame(page: FakeWindow, frame: FakeWindow): void {
  frame.parent = page
  frame.deliver = (message, targetOrigin) => {
    if (targetMatches(targetOrigin, frame.origin))
      realSetTimeout(() => frame.receive(message, { origin: page.origin, source: page }), 0)
  }
  page.deliver = (message, targetOrigin) => {
    if (targetMatches(targetOrigin, page.origin))
      realSetTimeout(() => page.receive(message, { origin: frame.origin, source: frame }), 0)
  }
}

/** An in-memory `Storage`. */
export class MemoryStorage implements Storage {
  [name: string]: unknown
  private readonly items = new Map<string, string>()

  get length(): number {
    return this.items.size
  }
  clear(): void {
    this.items.clear()
  }
  getItem(key: string): string | null {
    return this.items.get(key) ?? null
  }
  key(index: number): string | null {
    return [...this.items.keys()][index] ?? null
  }
  removeItem(key: string): void {
    this.items.delete(key)
  }
  setItem(key: string, value: string): void {
    this.items.set(key, String(value))
  }
  /** Every stored value, for assertions. */
  entries(): Record<string, string> {
    return Object.fromEntries(this.items)
  }
}

/** A `Storage` whose every call throws, like a blocked or full one. */
export class ThrowingStorage extends MemoryStorage {
  override getItem(): string | null {
    throw new Error('SecurityError: storage is blocked')
  }
  override setItem(): void {
    throw new Error('QuotaExceededError: storage is full')
  }
  override removeItem(): void {
    throw new Error('SecurityError: storage is blocked')
  }
}

/** The `<iframe>` element the SDK creates. */
export class FakeIframe {
  src = ''
  title = ''
  tabIndex = 0
  readonly style = { cssText: '' }
  readonly attributes = new Map<string, string>()
  contentWindow: FakeWindow | null = null
  attached = false
  removed = false
  private readonly loadListeners: Array<() => void> = []

  setAttribute(name: string, value: string): void {
    this.attributes.set(name, value)
  }
  addEventListener(type: string, listener: () => void): void {
    if (type === 'load') this.loadListeners.push(listener)
  }
  fireLoad(): void {
    for (const listener of this.loadListeners.splice(0)) listener()
  }
  remove(): void {
    this.removed = true
    this.contentWindow = null // as a detached iframe's
  }
}

export class FakeLocation {
  href: string
  readonly navigations: Array<{ kind: 'assign' | 'replace'; url: string }> = []

  constructor(href: string) {
    this.href = href
  }
  get origin(): string {
    return new URL(this.href).origin
  }
  get hash(): string {
    return new URL(this.href).hash
  }
  // The page is going away: the fake records the navigation and keeps its URL.
  assign(url: string | URL): void {
    this.navigations.push({ kind: 'assign', url: String(url) })
  }
  replace(url: string | URL): void {
    this.navigations.push({ kind: 'replace', url: String(url) })
  }
}

export class FakeHistory {
  state: unknown = null
  readonly replaced: string[] = []
  private readonly location: FakeLocation

  constructor(location: FakeLocation) {
    this.location = location
  }
  replaceState(state: unknown, _unused: string, url?: string | URL | null): void {
    this.state = state
    if (url === undefined || url === null) return
    this.location.href = new URL(String(url), this.location.href).href
    this.replaced.push(this.location.href)
  }
}

export interface FakeBrowser {
  window: FakeWindow & { localStorage: Storage; sessionStorage: Storage }
  document: { iframes: FakeIframe[] }
  location: FakeLocation
  history: FakeHistory
  localStorage: MemoryStorage
  sessionStorage: MemoryStorage
  /** Restores the globals this replaced. */
  uninstall(): void
}

/**
 * Installs `window`, `document`, `location` and `history` globals for a page at `url`. Each
 * iframe the page appends gets a linked `FakeWindow` of its `src` origin, handed to `onFrame`
 * (e.g. to run the real frame agent in it); `autoLoad` fires its load event in a later task.
 */
export function installBrowser(options: {
  url: string
  onFrame?: (frameWindow: FakeWindow, iframe: FakeIframe) => void
  autoLoad?: boolean
}): FakeBrowser {
  const location = new FakeLocation(options.url)
  const history = new FakeHistory(location)
  const localStorage = new MemoryStorage()
  const sessionStorage = new MemoryStorage()
  const page = Object.assign(new FakeWindow(location.origin), { localStorage, sessionStorage })
  const iframes: FakeIframe[] = []
  const append = (element: FakeIframe) => {
    element.attached = true
    const frameWindow = new FakeWindow(new URL(element.src).origin, page)
    element.contentWindow = frameWindow
    linkFrame(page, frameWindow)
    options.onFrame?.(frameWindow, element)
    if (options.autoLoad !== false) realSetTimeout(() => element.fireLoad(), 0)
    return element
  }
  const document = {
    iframes,
    body: { appendChild: append },
    documentElement: { appendChild: append },
    createElement(tag: string): FakeIframe {
      if (tag !== 'iframe') throw new Error(`fake document cannot create <${tag}>`)
      const iframe = new FakeIframe()
      iframes.push(iframe)
      return iframe
    },
  }

  const globals: Record<string, unknown> = { window: page, document, location, history }
  const saved = new Map<string, PropertyDescriptor | undefined>()
  for (const [name, value] of Object.entries(globals)) {
    saved.set(name, Object.getOwnPropertyDescriptor(globalThis, name))
    Object.defineProperty(globalThis, name, { value, configurable: true, writable: true })
  }
  return {
    window: page,
    document,
    location,
    history,
    localStorage,
    sessionStorage,
    uninstall: () => {
      for (const [name, descriptor] of saved) {
        if (descriptor) Object.defineProperty(globalThis, name, descriptor)
        else delete (globalThis as Record<string, unknown>)[name]
      }
    },
  }
}

function base64url(text: string): string {
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/**
 * A string shaped like an authkey (a compact JWE) whose protected header names `site`. Only
 * the header is meaningful: the frame reads it as a routing hint, the server is faked.
 */
export function fakeAuthkey(site: unknown, extraHeader: Record<string, unknown> = {}): string {
  const header = base64url(JSON.stringify({ alg: 'dir', enc: 'A256GCM', kid: 'k1', site, ...extraHeader }))
  return `${header}..${base64url('iv-twelve-by')}.${base64url('ciphertext')}.${base64url('tag-sixteen-byte')}`
}
