import type { ApprovalNews } from './approval-messages.ts'
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
  load: (hooks: PromptHooks) => Promise<{ handle(news: ApprovalNews): void; clear(): void }>
}

/**
 * "Sign in with another device" on this device: the requests the live channel brings (part of
 * the session chunk, as they only ever come through it), answered with this device's live token.
 */
export function createApprovals(deps: ApprovalsDeps) {
  let prompt: ReturnType<ApprovalsDeps['load']> | null = null
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
  return {
    handle: (news: ApprovalNews) => {
      prompt ??= deps.load(hooks)
      void prompt.then((p) => p.handle(news))
    },
    clear: () => void prompt?.then((p) => p.clear()),
  }
}
