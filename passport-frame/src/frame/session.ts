import { type ApprovalsDeps, createApprovals } from './approvals.ts'
import { createLiveChannel, type LiveDeps, type SocketLike } from './live.ts'

/**
 * What keeps a sign-in going, in its own chunk (`/frame-session.js`): the scheduled refresh, the
 * live channel with the approval requests it brings, and the page's occasional requests (`check`,
 * `proof_request`). A frame loads it
 * once it holds or hands out a sign-in (after answering its page) or needs one of them, so a
 * frame with no sign-in never pays for it.
 */
export { createRefresher } from './refresher.ts'
export { answerRequest } from './session-requests.ts'

/**
 * The live channel over the browser's own WebSocket and BroadcastChannel, with the approval
 * prompt its requests open (`clearPrompt` takes it down).
 */
export function openBrowserLive(
  deps: Omit<LiveDeps, 'wsOrigin' | 'openSocket' | 'openChannel' | 'onApproval'> &
    Omit<ApprovalsDeps, 'load' | 'details'>,
) {
  const approvals = createApprovals({
    ...deps,
    load: (hooks) =>
      import('./approval-prompt.ts').then((m) => m.createApprovalPrompt({ ...hooks, doc: document })),
    details: (open, ask) => import('./sealed-ask.ts').then((m) => m.approvalDetails(open, ask)),
  })
  const channel = createLiveChannel({
    ...deps,
    onApproval: approvals.handle,
    wsOrigin: location.origin.replace(/^http/, 'ws'),
    openSocket: (url, protocols) => {
      const ws = new WebSocket(url, protocols)
      const socket: SocketLike = {
        onmessage: null,
        onclose: null,
        send: (data) => ws.send(data),
        close: () => ws.close(),
      }
      ws.onmessage = (event) => socket.onmessage?.(event)
      ws.onclose = (event) => socket.onclose?.(event)
      return socket
    },
    openChannel:
      typeof BroadcastChannel === 'function'
        ? (name) => {
            const bc = new BroadcastChannel(name)
            const channel: ReturnType<NonNullable<LiveDeps['openChannel']>> = {
              onmessage: null,
              postMessage: (message) => bc.postMessage(message),
              close: () => bc.close(),
            }
            bc.onmessage = (event) => channel.onmessage?.(event)
            return channel
          }
        : null,
  })
  return { ...channel, clearPrompt: approvals.clear }
}
