import { createLiveChannel, type LiveDeps, type SocketLike } from './live.ts'

/**
 * The live channel over the browser's own WebSocket and BroadcastChannel. Its own chunk
 * (`/frame-live.js`): a frame loads it once it holds or hands out a sign-in, after answering its
 * page, so a signed-out page's frame never pays for it and a signed-in one gets its token first.
 */
export function openBrowserLive(deps: Omit<LiveDeps, 'wsOrigin' | 'openSocket' | 'openChannel'>) {
  return createLiveChannel({
    ...deps,
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
}
