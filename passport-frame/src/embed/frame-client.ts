import type { EndReason, ErrorCode } from '../protocol/codes.ts'
import { parseFrameMessage } from '../protocol/guards.ts'
import type { FrameReply, PageRequest, SessionEvent, TokenRefreshed } from '../protocol/messages.ts'

/** An error the frame answered with, rebuilt on the page side (code, not message, is the API). */
export class PassportClientError extends Error {
  readonly code: ErrorCode
  readonly reason: EndReason | undefined
  constructor(code: ErrorCode, reason?: EndReason) {
    super(reason ? `${code} (${reason})` : code)
    this.name = 'PassportClientError'
    this.code = code
    this.reason = reason
  }
}

type RequestBody<T extends PageRequest = PageRequest> = T extends PageRequest ? Omit<T, 'v' | 'id'> : never

export interface FrameClient {
  request(body: RequestBody): Promise<FrameReply>
  destroy(): void
}

const REQUEST_TIMEOUT_MS = 15_000

/**
 * Creates the hidden passport frame and talks to it. Accepts a message only when it comes from
 * that frame's window, from the passport origin, in a known shape, answering a request still
 * pending; anything else is dropped (a forged "token" from another window cannot get in).
 */
export function createFrameClient(input: {
  passportOrigin: string
  frameUrl: string
  onEvent: (event: SessionEvent | TokenRefreshed) => void
  /** Shows the frame, or hides it with `hidden` (the page's code for it is fetched on demand). */
  display: (iframe: HTMLIFrameElement, visible: boolean, hidden: string) => void
}): FrameClient {
  const iframe = document.createElement('iframe')
  iframe.src = input.frameUrl
  iframe.title = 'Passport'
  // The site lets the frame use its FedCM connection: Chromium then grants it storage access
  // (the passport's cookie and shared storage) with no prompt once the user chose the passport
  // in the browser's FedCM dialog on this site (docs/fedcm.md). Without that choice it means nothing.
  iframe.allow = 'identity-credentials-get'
  iframe.setAttribute('aria-hidden', 'true')
  iframe.tabIndex = -1
  const hidden = 'position:absolute;width:0;height:0;border:0;visibility:hidden'
  iframe.style.cssText = hidden
  const loaded = new Promise<void>((resolve) =>
    iframe.addEventListener('load', () => resolve(), { once: true }),
  )
  ;(document.body ?? document.documentElement).appendChild(iframe)

  const pending = new Map<
    string,
    { resolve: (r: FrameReply) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }
  >()
  let counter = 0

  const onMessage = (event: MessageEvent) => {
    if (event.source !== iframe.contentWindow || event.origin !== input.passportOrigin) return
    const msg = parseFrameMessage(event.data)
    if (!msg) return
    if (msg.type === 'session_event' || msg.type === 'token_refreshed') {
      input.onEvent(msg)
      return
    }
    if (msg.type === 'frame_display') {
      // A sign-in request from another device: the frame draws it, the page only makes room for it.
      input.display(iframe, msg.visible, hidden)
      return
    }
    const waiter = pending.get(msg.id)
    if (!waiter) return
    pending.delete(msg.id)
    clearTimeout(waiter.timer)
    if (msg.type === 'error') waiter.reject(new PassportClientError(msg.code, msg.reason))
    else waiter.resolve(msg)
  }
  window.addEventListener('message', onMessage)

  return {
    // The timeout counts from the call, loading included: a frame that never loads (the
    // passport was unreachable) times out like one that never answers.
    request: (body) => {
      const id = `p${++counter}-${Math.random().toString(36).slice(2, 10)}`
      return new Promise<FrameReply>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id)
          reject(new PassportClientError('timeout'))
        }, REQUEST_TIMEOUT_MS)
        pending.set(id, { resolve, reject, timer })
        void loaded.then(() => {
          if (pending.has(id)) iframe.contentWindow?.postMessage({ v: 1, id, ...body }, input.passportOrigin)
        })
      })
    },
    destroy: () => {
      window.removeEventListener('message', onMessage)
      for (const waiter of pending.values()) {
        clearTimeout(waiter.timer)
        waiter.reject(new PassportClientError('timeout'))
      }
      pending.clear()
      iframe.remove()
    },
  }
}
