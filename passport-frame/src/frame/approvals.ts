import type { ApprovalNews, ApprovalRequest, OpenRequest, PromptNews } from './approval-messages.ts'
import type { ApprovalPromptDeps } from './approval-prompt.ts'
import type { ServerApi } from './server-api.ts'

export type PromptHooks = Omit<ApprovalPromptDeps, 'doc' | 'armDelayMs'>

export interface ApprovalsDeps {
  /** This device's live token for the site (refreshed if need be); null without one. */
  token: () => Promise<string | null>
  authkey: () => string | null
  /** The frame's proof-bound POST to its own origin (server-api.ts). */
  post: ServerApi['post']
  /** Asks the bound page (only it) to show or hide the frame; it never learns the numbers. */
  setVisible: (visible: boolean) => void
  serverNow: () => number
  /** Draws the prompt: `approval-prompt.ts`, fetched (`/frame-approval.js`) on the first request. */
  load: (hooks: PromptHooks) => Promise<{ handle(news: PromptNews): void; clear(): void }>
  /**
   * What an open request says of itself, fetched sealed (`sealed-ask.ts`, `/frame-sealed.js`:
   * jose is fetched only when another device asks): wraps a one-time key to the passport's `enc`
   * key, hands it to `ask` and opens the answer. Null when the request is no longer open.
   */
  details: (
    open: OpenRequest,
    ask: (seal: string) => Promise<string | null>,
  ) => Promise<ApprovalRequest | null>
}

/**
 * "Sign in with another device" on this device: the requests the live channel brings (part of
 * the session chunk, as they only ever come through it), answered with this device's live token.
 * The socket says only that a request is open; what it says of itself (site, browser, address)
 * is fetched sealed with this device's live token, and shown unless it closed meanwhile.
 */
export function createApprovals(deps: ApprovalsDeps) {
  let prompt: ReturnType<ApprovalsDeps['load']> | null = null
  const closed = new Set<string>()
  const hooks: PromptHooks = {
    decide: async (approvalId, answer) => {
      const token = await deps.token().catch(() => null)
      const authkey = deps.authkey()
      if (!token || !authkey) return { outcome: 'gone' }
      // 410: no longer open (decided elsewhere, expired, used): nothing to do.
      const { outcome } = await deps.post(
        '/api/frame/approval',
        { authkey, approval_id: approvalId, ...answer },
        { token, expected: [410] },
      )
      return outcome === 'approved' || outcome === 'denied' || outcome === 'mismatch'
        ? { outcome }
        : { outcome: 'gone' }
    },
    setVisible: deps.setVisible,
    serverNow: deps.serverNow,
  }
  const show = (news: PromptNews) => {
    prompt ??= deps.load(hooks)
    void prompt.then((p) => p.handle(news))
  }
  /** The request's details, sealed under `seal`; null once it is no longer open (410). */
  const ask = (authkey: string, token: string, approvalId: string) => async (seal: string) => {
    const { sealed } = await deps.post(
      '/api/frame/approval/details',
      { authkey, approval_id: approvalId, seal },
      { token, expected: [410] },
    )
    return typeof sealed === 'string' ? sealed : null
  }
  const showRequest = async (open: OpenRequest) => {
    const token = await deps.token().catch(() => null)
    const authkey = deps.authkey()
    if (!token || !authkey) return
    const request = await deps.details(open, ask(authkey, token, open.id)).catch(() => null)
    if (request && !closed.has(request.id)) show({ type: 'approval_request', request })
  }
  return {
    handle: (news: ApprovalNews) => {
      if (news.type === 'approval_closed') {
        closed.add(news.id)
        show(news)
      } else {
        void showRequest(news.request)
      }
    },
    clear: () => void prompt?.then((p) => p.clear()),
  }
}
