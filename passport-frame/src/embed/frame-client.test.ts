import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { SessionEvent, TokenRefreshed } from '../protocol/messages.ts'
import {
  type FakeBrowser,
  type FakeIframe,
  FakeWindow,
  installBrowser,
  settle,
} from '../test-support/fake-window.ts'
import { createFrameClient, type FrameClient, PassportClientError } from './frame-client.ts'

const PASSPORT = 'http://passport.localhost:8080'
const FRAME_URL = `${PASSPORT}/frame/news`

let browser: FakeBrowser
let client: FrameClient
let iframe: FakeIframe
let frameWindow: FakeWindow
let onEvent: ReturnType<typeof vi.fn<(event: SessionEvent | TokenRefreshed) => void>>
const display = vi.fn()

beforeEach(() => {
  browser = installBrowser({ url: 'http://news.localhost:8081/', autoLoad: false })
  onEvent = vi.fn()
  display.mockReset()
  client = createFrameClient({ passportOrigin: PASSPORT, frameUrl: FRAME_URL, onEvent, display })
  iframe = browser.document.iframes[0] as FakeIframe
  frameWindow = iframe.contentWindow as FakeWindow
})

afterEach(() => {
  vi.useRealTimers()
  client.destroy()
  browser.uninstall()
})

/** Starts a request, lets the iframe load, and returns the promise with the id it was sent under. */
async function start(body: Parameters<FrameClient['request']>[0] = { type: 'token_request' }) {
  const reply = client.request(body)
  reply.catch(() => {}) // observed by the test; keeps Node from reporting it early
  iframe.fireLoad()
  await settle(1)
  const sent = frameWindow.posted.at(-1)
  if (!sent) throw new Error('nothing was posted to the frame')
  return { reply, id: (sent.message as { id: string }).id, sent }
}

/** A reply from the iframe's own window and the passport origin, unless told otherwise. */
function answer(data: unknown, from: { origin?: string; source?: unknown } = {}) {
  browser.window.receive(data, {
    origin: from.origin ?? PASSPORT,
    source: 'source' in from ? from.source : frameWindow,
  })
}

async function isPending(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending')
  return (await Promise.race([promise.catch(() => 'settled'), settle(1).then(() => marker)])) === marker
}

describe('the iframe', () => {
  it('is created hidden, pointing at the frame URL, and appended to the page', () => {
    expect(browser.document.iframes).toHaveLength(1)
    expect(iframe.src).toBe(FRAME_URL)
    expect(iframe.attached).toBe(true)
    expect(iframe.attributes.get('aria-hidden')).toBe('true')
    expect(iframe.tabIndex).toBe(-1)
    expect(iframe.style.cssText).toContain('visibility:hidden')
  })
})

describe('request', () => {
  it('waits for the iframe to load, then posts { v: 1, id, ...body } to the passport origin only', async () => {
    const reply = client.request({ type: 'token_request' })
    await settle(1)
    expect(frameWindow.posted).toEqual([]) // not before load
    iframe.fireLoad()
    await settle(1)
    expect(frameWindow.posted).toHaveLength(1)
    const { message, targetOrigin } = frameWindow.posted[0] as {
      message: Record<string, unknown>
      targetOrigin: string
    }
    expect(targetOrigin).toBe(PASSPORT)
    expect(message).toMatchObject({ v: 1, type: 'token_request' })
    expect(message.id).toMatch(/^p1-[a-z0-9]+$/)
    answer({ v: 1, type: 'token_response', id: message.id, token: 't', expiresAt: 1, expiresIn: 60_000 })
    await expect(reply).resolves.toMatchObject({ token: 't' })
  })

  it('gives every request its own id', async () => {
    const first = await start()
    const second = await start()
    expect(first.id).not.toBe(second.id)
  })

  it('resolves with a reply from the iframe window, the passport origin, and a pending id', async () => {
    const { reply, id } = await start()
    answer({ v: 1, type: 'token_response', id, token: 'real-token', expiresAt: 123, expiresIn: 60_000 })
    await expect(reply).resolves.toEqual({
      v: 1,
      type: 'token_response',
      id,
      token: 'real-token',
      expiresAt: 123,
      expiresIn: 60_000,
    })
  })

  it('routes replies to the request they answer, in any order', async () => {
    const a = await start({ type: 'token_request' })
    const b = await start({ type: 'check' })
    answer({ v: 1, type: 'check_response', id: b.id, valid: true, reason: null, expiresAt: 5, serverTime: 4 })
    answer({ v: 1, type: 'token_response', id: a.id, token: 'ta', expiresAt: 1, expiresIn: 60_000 })
    await expect(a.reply).resolves.toMatchObject({ type: 'token_response', token: 'ta' })
    await expect(b.reply).resolves.toMatchObject({ type: 'check_response', valid: true })
  })

  it('rejects with a PassportClientError carrying the code and reason of an error reply', async () => {
    const { reply, id } = await start()
    answer({ v: 1, type: 'error', id, code: 'login_required', reason: 'replaced' })
    const error = await reply.then(
      () => null,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(PassportClientError)
    expect(error).toMatchObject({ code: 'login_required', reason: 'replaced', name: 'PassportClientError' })
  })
})

describe('forged replies are ignored (A8)', () => {
  it.each([
    ['another window of the passport origin', () => ({ source: new FakeWindow(PASSPORT) })],
    ['the page itself', () => ({ source: browser.window })],
    ['a message without a source', () => ({ source: null })],
    ['the iframe window from another origin', () => ({ origin: 'http://evil.localhost:8083' })],
    ['the iframe window with a look-alike origin', () => ({ origin: `${PASSPORT}.evil.localhost` })],
    ['the iframe window with a trailing slash origin', () => ({ origin: `${PASSPORT}/` })],
    ['the iframe window with the null origin', () => ({ origin: 'null' })],
    ['the site origin', () => ({ origin: 'http://news.localhost:8081' })],
  ])('from %s', async (_name, from) => {
    const { reply, id } = await start()
    answer(
      { v: 1, type: 'token_response', id, token: 'attacker-token', expiresAt: 1, expiresIn: 60_000 },
      from(),
    )
    answer({ v: 1, type: 'error', id, code: 'login_required' }, from())
    answer({ v: 1, type: 'session_event', event: 'signed_out', reason: 'revoked' }, from())
    expect(await isPending(reply)).toBe(true)
    expect(onEvent).not.toHaveBeenCalled()
    // The genuine reply still gets through afterwards: the forged one consumed nothing.
    answer({ v: 1, type: 'token_response', id, token: 'real-token', expiresAt: 1, expiresIn: 60_000 })
    await expect(reply).resolves.toMatchObject({ token: 'real-token' })
  })

  it('for an id that is not pending (guessed, or already answered)', async () => {
    const { reply, id } = await start()
    answer({
      v: 1,
      type: 'token_response',
      id: 'p1-guessed',
      token: 'attacker-token',
      expiresAt: 1,
      expiresIn: 60_000,
    })
    answer({
      v: 1,
      type: 'token_response',
      id: `${id}x`,
      token: 'attacker-token',
      expiresAt: 1,
      expiresIn: 60_000,
    })
    expect(await isPending(reply)).toBe(true)
    answer({ v: 1, type: 'token_response', id, token: 'real-token', expiresAt: 1, expiresIn: 60_000 })
    answer({ v: 1, type: 'token_response', id, token: 'second-answer', expiresAt: 1, expiresIn: 60_000 })
    await expect(reply).resolves.toMatchObject({ token: 'real-token' })
  })

  it.each([
    ['an unknown type', (id: string) => ({ v: 1, type: 'token', id, token: 'x' })],
    [
      'an extra key',
      (id: string) => ({
        v: 1,
        type: 'token_response',
        id,
        token: 'x',
        expiresAt: 1,
        expiresIn: 60_000,
        admin: true,
      }),
    ],
    [
      'a missing token',
      (id: string) => ({ v: 1, type: 'token_response', id, expiresAt: 1, expiresIn: 60_000 }),
    ],
    ['an unknown error code', (id: string) => ({ v: 1, type: 'error', id, code: 'nope' })],
    [
      'an array',
      (id: string) => [{ v: 1, type: 'token_response', id, token: 'x', expiresAt: 1, expiresIn: 60_000 }],
    ],
  ])('with %s, even from the frame', async (_name, make) => {
    const { reply, id } = await start()
    answer(make(id))
    expect(await isPending(reply)).toBe(true)
  })
})

describe('session events', () => {
  it('are passed on from the frame', async () => {
    const event = { v: 1, type: 'session_event', event: 'signed_out', reason: 'replaced' }
    answer(event)
    expect(onEvent).toHaveBeenCalledExactlyOnceWith(event)
  })

  it('are ignored when malformed', () => {
    answer({ v: 1, type: 'session_event', event: 'signed_out', reason: 'whatever' })
    expect(onEvent).not.toHaveBeenCalled()
  })
})

describe('frame display', () => {
  it("asks the page's display code to show the frame, then hide it with its hidden style", () => {
    answer({ v: 1, type: 'frame_display', visible: true })
    answer({ v: 1, type: 'frame_display', visible: false })
    expect(display.mock.calls).toEqual([
      [iframe, true, 'position:absolute;width:0;height:0;border:0;visibility:hidden'],
      [iframe, false, 'position:absolute;width:0;height:0;border:0;visibility:hidden'],
    ])
  })

  it('is not asked by another window or origin', () => {
    answer({ v: 1, type: 'frame_display', visible: true }, { origin: 'http://evil.localhost:8083' })
    answer({ v: 1, type: 'frame_display', visible: true }, { source: browser.window })
    expect(display).not.toHaveBeenCalled()
  })
})

describe('timeout', () => {
  it("rejects with code 'timeout' after 15 s without a reply, and ignores a late one", async () => {
    vi.useFakeTimers()
    const { reply, id } = await start()
    await vi.advanceTimersByTimeAsync(14_999)
    expect(await isPending(reply)).toBe(true)
    await vi.advanceTimersByTimeAsync(1)
    await expect(reply).rejects.toMatchObject({ name: 'PassportClientError', code: 'timeout' })
    expect(() =>
      answer({ v: 1, type: 'token_response', id, token: 'late', expiresAt: 1, expiresIn: 60_000 }),
    ).not.toThrow()
  })

  it('does not fire once the request was answered', async () => {
    vi.useFakeTimers()
    const { reply, id } = await start()
    answer({ v: 1, type: 'logged_out', id })
    await expect(reply).resolves.toEqual({ v: 1, type: 'logged_out', id })
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe('destroy', () => {
  it("stops listening, rejects pending requests with 'timeout', and removes the iframe", async () => {
    const { reply, id } = await start()
    expect(browser.window.listenerCount).toBe(1)
    client.destroy()
    expect(browser.window.listenerCount).toBe(0)
    expect(iframe.removed).toBe(true)
    await expect(reply).rejects.toMatchObject({ code: 'timeout' })
    answer({ v: 1, type: 'session_event', event: 'signed_out', reason: 'revoked' }, { source: null })
    answer(
      { v: 1, type: 'token_response', id, token: 'late', expiresAt: 1, expiresIn: 60_000 },
      { source: null },
    )
    expect(onEvent).not.toHaveBeenCalled()
  })
})
