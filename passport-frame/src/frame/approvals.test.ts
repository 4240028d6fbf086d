import { describe, expect, it, vi } from 'vitest'
import type { ApprovalNews, ApprovalRequest, OpenRequest } from './approval-messages.ts'
import { type ApprovalsDeps, createApprovals, type PromptHooks } from './approvals.ts'

const news: ApprovalNews = { type: 'approval_closed', id: 'appr1', outcome: 'cancelled' }

function setup(over: Partial<ApprovalsDeps> = {}) {
  let hooks: PromptHooks | undefined
  const prompt = { handle: vi.fn(), clear: vi.fn() }
  const deps: ApprovalsDeps = {
    token: async () => 'live-token',
    authkey: () => 'ak',
    post: vi.fn<ApprovalsDeps['post']>(async () => ({ outcome: 'approved' })),
    setVisible: vi.fn(),
    serverNow: () => 42,
    load: vi.fn(async (given: PromptHooks) => {
      hooks = given
      return prompt
    }),
    details: vi.fn<ApprovalsDeps['details']>(async () => null),
    ...over,
  }
  const approvals = createApprovals(deps)
  const opened = async () => {
    approvals.handle(news)
    await vi.waitFor(() => expect(hooks).toBeDefined())
    return hooks as PromptHooks
  }
  return { deps, prompt, approvals, opened }
}

describe('approval requests on this device', () => {
  it('loads the prompt on the first request only, and hands it every request', async () => {
    const t = setup()
    await t.opened()
    t.approvals.handle(news)
    await vi.waitFor(() => expect(t.prompt.handle).toHaveBeenCalledTimes(2))
    expect(t.deps.load).toHaveBeenCalledTimes(1)
  })

  it('takes nothing down when no prompt was ever loaded, and takes a loaded one down', async () => {
    const t = setup()
    t.approvals.clear()
    expect(t.deps.load).not.toHaveBeenCalled()
    await t.opened()
    t.approvals.clear()
    await vi.waitFor(() => expect(t.prompt.clear).toHaveBeenCalledTimes(1))
  })

  it("answers with this device's live token for the site", async () => {
    const t = setup()
    const hooks = await t.opened()
    expect(await hooks.decide('appr1', { code: '42' })).toEqual({ outcome: 'approved' })
    expect(t.deps.post).toHaveBeenCalledExactlyOnceWith(
      '/api/frame/approval',
      { authkey: 'ak', approval_id: 'appr1', code: '42' },
      { token: 'live-token', expected: [410] },
    )
  })

  it.each([
    [{ outcome: 'denied' }, 'denied'],
    [{ outcome: 'mismatch' }, 'mismatch'],
    [{ error: 'gone' }, 'gone'], // 410: decided elsewhere, expired or used
    [{ outcome: 'something else' }, 'gone'],
  ])('maps the answer %j to %s', async (json, outcome) => {
    const t = setup({ post: vi.fn<ApprovalsDeps['post']>(async () => json) })
    const hooks = await t.opened()
    expect(await hooks.decide('appr1', { deny: true })).toEqual({ outcome })
  })

  it.each([
    ['no live token', { token: async () => null }],
    ['the token could not be had', { token: async () => Promise.reject(new Error('offline')) }],
    ['no bound page', { authkey: () => null }],
  ] as Array<[string, Partial<ApprovalsDeps>]>)(
    'with %s the answer is "gone" and the server is not asked',
    async (_n, over) => {
      const t = setup(over)
      const hooks = await t.opened()
      expect(await hooks.decide('appr1', { deny: true })).toEqual({ outcome: 'gone' })
      expect(t.deps.post).not.toHaveBeenCalled()
    },
  )

  it('passes the page display and the server clock through', async () => {
    const t = setup()
    const hooks = await t.opened()
    hooks.setVisible(true)
    expect(t.deps.setVisible).toHaveBeenCalledWith(true)
    expect(hooks.serverNow()).toBe(42)
  })
})

describe('what a request says of itself, fetched sealed', () => {
  const open: OpenRequest = { id: 'appr2', expiresAt: 99, sameNetwork: true }
  const full: ApprovalRequest = {
    ...open,
    siteName: 'News',
    device: 'Chrome on Linux',
    address: '192.0.2.7',
    bindingMessage: null,
  }
  /** `details` as sealed-ask.ts does it: asks with a wrapped key, answers what the passport sealed. */
  const detailsAnswering = (answer: ApprovalRequest | null) =>
    vi.fn<ApprovalsDeps['details']>(async (_open, ask) =>
      (await ask('wrapped-key')) === null ? null : answer,
    )

  it("asks with this device's live token and draws the request with its details", async () => {
    const post = vi.fn<ApprovalsDeps['post']>(async () => ({ sealed: 'jwe' }))
    const details = detailsAnswering(full)
    const t = setup({ post, details })
    t.approvals.handle({ type: 'approval_request', request: open })
    await vi.waitFor(() => expect(t.prompt.handle).toHaveBeenCalledOnce())
    expect(t.prompt.handle).toHaveBeenCalledWith({ type: 'approval_request', request: full })
    expect(details).toHaveBeenCalledWith(open, expect.any(Function))
    expect(post).toHaveBeenCalledExactlyOnceWith(
      '/api/frame/approval/details',
      { authkey: 'ak', approval_id: 'appr2', seal: 'wrapped-key' },
      { token: 'live-token', expected: [410] },
    )
  })

  it('shows nothing when the request is no longer open (410), or without a live token', async () => {
    const gone = setup({
      post: vi.fn<ApprovalsDeps['post']>(async () => ({ error: 'gone' })),
      details: detailsAnswering(full),
    })
    gone.approvals.handle({ type: 'approval_request', request: open })
    await vi.waitFor(() => expect(gone.deps.details).toHaveBeenCalledOnce())
    await new Promise((r) => setTimeout(r, 10))
    expect(gone.deps.load).not.toHaveBeenCalled()

    const tokenless = setup({ token: async () => null, details: detailsAnswering(full) })
    tokenless.approvals.handle({ type: 'approval_request', request: open })
    await new Promise((r) => setTimeout(r, 10))
    expect(tokenless.deps.details).not.toHaveBeenCalled()
    expect(tokenless.deps.load).not.toHaveBeenCalled()
  })

  it('does not draw a request that closed while its details were on the way', async () => {
    let release: (value: ApprovalRequest) => void = () => {}
    const details = vi.fn<ApprovalsDeps['details']>(() => new Promise((resolve) => (release = resolve)))
    const t = setup({ details })
    t.approvals.handle({ type: 'approval_request', request: open })
    await vi.waitFor(() => expect(details).toHaveBeenCalledOnce())
    t.approvals.handle({ type: 'approval_closed', id: 'appr2', outcome: 'cancelled' })
    release(full)
    await vi.waitFor(() => expect(t.prompt.handle).toHaveBeenCalledOnce())
    await new Promise((r) => setTimeout(r, 10))
    expect(t.prompt.handle).toHaveBeenCalledExactlyOnceWith({
      type: 'approval_closed',
      id: 'appr2',
      outcome: 'cancelled',
    })
  })
})
