import type { ApprovalOutcome, ApprovalRequest, PromptNews } from './approval-messages.ts'

/** `mismatch`: the typed code was wrong, and the request is cancelled. */
export type DecideAnswer = { outcome: 'approved' | 'denied' | 'mismatch' | 'gone' }
export type ApprovalAnswer = { code: string } | { deny: true }

export interface ApprovalPromptDeps {
  doc: Document
  /** Sends the answer with this device's live token for the site. */
  decide: (approvalId: string, answer: ApprovalAnswer) => Promise<DecideAnswer>
  /** Asks the page to show or hide the frame (it is an invisible iframe otherwise). */
  setVisible: (visible: boolean) => void
  /** Server time now (the frame's clock corrected by its offset). */
  serverNow: () => number
  /**
   * Clickjacking brake: the field and buttons work only once the prompt has been on screen this
   * long, so a click aimed at something the page showed before cannot land on them as it appears.
   */
  armDelayMs?: number
}

const STYLES = {
  body: { margin: '0', font: '15px/1.45 system-ui,sans-serif', color: '#1d2330', background: '#fff' },
  box: { padding: '14px 16px' },
  title: { font: '600 16px/1.3 system-ui,sans-serif', margin: '0 0 6px' },
  small: { color: '#5b6475', fontSize: '13px', margin: '0 0 8px' },
  warning: {
    color: '#7a4b00',
    background: '#fff6d6',
    fontSize: '13px',
    padding: '4px 6px',
    margin: '0 0 8px',
  },
  row: { display: 'flex', gap: '8px', margin: '8px 0' },
  code: {
    width: '4.5em',
    padding: '8px',
    font: '700 22px/1 system-ui,sans-serif',
    letterSpacing: '4px',
    textAlign: 'center',
    border: '1px solid #b8bfcc',
    borderRadius: '8px',
  },
  approve: {
    flex: '1',
    padding: '8px',
    border: '0',
    borderRadius: '8px',
    background: '#2557d6',
    color: '#fff',
    font: '600 15px/1.2 system-ui,sans-serif',
    cursor: 'pointer',
  },
  deny: {
    width: '100%',
    padding: '8px',
    border: '0',
    borderRadius: '8px',
    background: '#e8ebf2',
    font: 'inherit',
    cursor: 'pointer',
  },
} satisfies Record<string, Partial<CSSStyleDeclaration>>

/**
 * The approval prompt, drawn inside the passport frame (the passport's origin): the site's page
 * can show or hide the frame but can neither read nor type into it. The code is never shown
 * here: the user types the two digits the new device shows, so approving blindly passes 1 time
 * in 100, and a wrong entry ends the request (the server says so). One
 * request at a time, oldest first; each goes away when decided here or elsewhere, or expires.
 */
export function createApprovalPrompt(deps: ApprovalPromptDeps) {
  const { doc } = deps
  const armDelayMs = deps.armDelayMs ?? 600
  const open = new Map<string, ApprovalRequest>()
  let shownId: string | null = null
  /** A line that replaces the usual instruction for one request (a malformed entry). */
  let note: { id: string; text: string } | null = null
  let expiryTimer: ReturnType<typeof setTimeout> | null = null
  let busy = false

  const el = <K extends keyof HTMLElementTagNameMap>(
    tag: K,
    style: Partial<CSSStyleDeclaration>,
    textContent = '',
  ): HTMLElementTagNameMap[K] => {
    const node = doc.createElement(tag)
    Object.assign(node.style, style)
    node.textContent = textContent
    return node
  }

  const hide = () => {
    shownId = null
    doc.body.replaceChildren()
    deps.setVisible(false)
  }

  const render = () => {
    if (expiryTimer) clearTimeout(expiryTimer)
    for (const [id, r] of open) if (r.expiresAt <= deps.serverNow()) open.delete(id)
    const request = open.values().next().value as ApprovalRequest | undefined
    if (!request) return hide()
    shownId = request.id
    expiryTimer = setTimeout(render, Math.max(0, request.expiresAt - deps.serverNow()) + 50)

    Object.assign(doc.body.style, STYLES.body)
    const box = el('div', STYLES.box)
    box.setAttribute('role', 'dialog')
    box.setAttribute('aria-label', 'Sign-in request')
    box.append(
      el('p', STYLES.title, `Sign in to ${request.siteName} on another device?`),
      el(
        'p',
        STYLES.small,
        `From ${request.device || 'an unknown browser'} at ${request.address}` +
          (request.bindingMessage ? ` · “${request.bindingMessage}”` : ''),
      ),
      ...(request.sameNetwork
        ? []
        : [
            el(
              'p',
              STYLES.warning,
              'This request comes from another network than this device. If someone asked you to approve it, deny it.',
            ),
          ]),
    )
    const label = el(
      'label',
      { display: 'block', margin: '0' },
      note?.id === request.id ? note.text : 'If this is you, type the number shown on that device:',
    )
    label.htmlFor = 'approval-code-input'
    const input = el('input', STYLES.code)
    Object.assign(input, {
      id: 'approval-code-input',
      type: 'text',
      inputMode: 'numeric',
      autocomplete: 'off',
      maxLength: 2,
      pattern: '[0-9]{2}',
    })
    const approve = el('button', STYLES.approve, 'Approve')
    approve.type = 'submit'
    const form = el('form', { margin: '0' })
    form.onsubmit = (event) => {
      event.preventDefault()
      const code = input.value.trim()
      if (/^\d\d$/.test(code)) return void answer(request, { code })
      // Not an answer yet (one digit, letters): nothing is sent, nothing is used up.
      note = { id: request.id, text: 'Type both digits shown on that device:' }
      render()
    }
    form.append(label, el('div', STYLES.row))
    form.lastElementChild?.append(input, approve)
    const deny = el('button', STYLES.deny, 'Deny, I did not ask for this')
    deny.type = 'button'
    deny.onclick = () => void answer(request, { deny: true })
    box.append(form, deny)
    // No autofocus: keystrokes typed into the page must never land in this field.
    const controls = [input, approve, deny]
    for (const control of controls) control.disabled = true
    setTimeout(() => {
      for (const control of controls) control.disabled = false
    }, armDelayMs)
    doc.body.replaceChildren(box)
    deps.setVisible(true)
  }

  const closedElsewhere: Record<ApprovalOutcome, string> = {
    approved: 'Approved. The other device is signing in.',
    denied: 'The request was closed.',
    cancelled: 'The request was closed.',
    expired: 'The request expired.',
  }

  /** Drops a request; if it is the one on screen, says how it ended, then shows the next. */
  const closeWith = (id: string, message: string) => {
    open.delete(id)
    if (shownId !== id) return
    doc.body.replaceChildren(el('div', STYLES.box, message))
    setTimeout(render, 1500)
  }

  const answer = async (request: ApprovalRequest, choice: ApprovalAnswer) => {
    if (busy) return
    busy = true
    try {
      const result = await deps.decide(request.id, choice)
      closeWith(
        request.id,
        {
          approved: 'Approved. The other device is signing in.',
          denied: 'Denied. No new sign-in request for your account is shown for an hour.',
          mismatch: 'That is not the number shown on the other device: the request is cancelled.',
          gone: 'This request is no longer open.',
        }[result.outcome],
      )
    } catch {
      closeWith(request.id, 'This device could not answer the request. Try again from your account page.')
    } finally {
      busy = false
    }
  }

  return {
    handle: (news: PromptNews) => {
      if (news.type === 'approval_request') {
        if (news.request.expiresAt <= deps.serverNow()) return
        const known = open.has(news.request.id)
        open.set(news.request.id, news.request)
        // A repeat (a reconnect lists what is open) keeps what the user is typing; a new one
        // queues behind the one on screen.
        if (known || shownId !== null) return
        render()
        return
      }
      // Decided elsewhere (another tab or device), or expired: take it down (said, if on screen).
      if (open.has(news.id)) closeWith(news.id, closedElsewhere[news.outcome])
    },
    /** The sign-in ended here: nothing may be approved from this device any more. */
    clear: () => {
      open.clear()
      hide()
    },
  }
}
