import { type EndReason, isEndReason } from '../protocol/codes.ts'
import {
  CLOSE_SESSION_ENDED,
  CLOSE_UNAUTHENTICATED,
  LIVE_PATH,
  LIVE_PROTOCOL,
  type LiveAuth,
} from '../protocol/live.ts'
import { retryDelayMs } from '../protocol/retry.ts'
import { type ApprovalNews, parseApprovalNews } from './approval-messages.ts'
import type { LockManagerLike } from './refresher.ts'
import { FrameApiError } from './server-api.ts'

/** The slices of browser APIs the live channel uses (fakes in unit tests). */
export interface SocketLike {
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number }) => void) | null
  send(data: string): void
  close(): void
}
export interface ChannelLike {
  onmessage: ((event: { data: unknown }) => void) | null
  postMessage(message: unknown): void
  close(): void
}

export interface LiveDeps {
  siteId: string
  /** ws:// or wss:// origin of the passport. */
  wsOrigin: string
  /** A live token for this site, refreshing if needed; null when there is none. */
  token: () => Promise<string | null>
  authkey: () => string | null
  /** A DPoP proof by the frame's key over the socket's challenge and the token. */
  prove: (input: { url: string; token: string; challenge: string }) => Promise<string>
  /** Asks whether the token still works, and why not (after a closed channel). */
  check: (authkey: string, token: string) => Promise<{ valid: boolean; reason: EndReason | null }>
  openSocket: (url: string, protocols: string[]) => SocketLike
  openChannel: ((name: string) => ChannelLike) | null
  locks: LockManagerLike | null
  /** Partitioned storage for the last event id seen (shared by the site's tabs). */
  storage: Storage | null
  /** The sign-in ended: called once per sign-in in every tab of the site. */
  onEnded: (reason: EndReason) => void
  /**
   * The passport asked for a refresh now (`refresh_now`): resolves true when the token changed,
   * and the site's other tabs are then told (`onRefreshed`).
   */
  onRefreshNow?: () => Promise<boolean>
  /** Another tab's frame refreshed on the passport's request: the shared cache has the new token. */
  onRefreshed?: () => void
  /** A "sign in with another device" request opened or closed: called in every tab of the site. */
  onApproval?: (news: ApprovalNews) => void
  setTimer?: (fn: () => void, ms: number) => unknown
  log?: (event: string, detail?: Record<string, unknown>) => void
}

/** Reconnects: 1 s, 2 s, 4 s … 30 s, each jittered, so a restarted passport is not hit by every tab at once. */
const RETRY = { startMs: 1_000, maxMs: 30_000 }

/**
 * The frame's end of the live channel. One socket per site per browser: the frame that holds
 * the site's Web Lock (partitioned like storage, so "per site") keeps the WebSocket; the
 * others wait for the lock and hear the news over a BroadcastChannel. When the leader's tab
 * closes, its lock is released and the next frame takes over. The socket opens with no request
 * before it: the server's first message is a challenge, answered with the token and a proof by
 * the frame's key over it. Every reconnect resumes from the last event id seen, so an ending
 * that happened while disconnected arrives once; if there is no way to resume (the token died
 * meanwhile), or the server refused the answer, the frame re-checks validity instead.
 */
export function createLiveChannel(deps: LiveDeps) {
  const log = deps.log ?? (() => {})
  const setTimer = deps.setTimer ?? ((fn, ms) => setTimeout(fn, ms))
  const lastIdKey = `passport:live:${deps.siteId}`
  const channel = deps.openChannel?.(`passport-live:${deps.siteId}`) ?? null
  let started = false
  let hasEnded = false
  let stopLeading: (() => void) | null = null

  const readLastId = (): number => {
    try {
      return Number(deps.storage?.getItem(lastIdKey) ?? 0) || 0
    } catch {
      return 0
    }
  }
  const writeLastId = (id: number) => {
    try {
      if (id > readLastId()) deps.storage?.setItem(lastIdKey, String(id))
    } catch {}
  }

  /** Once per sign-in per tab, however many paths report it (socket, broadcast, re-check). */
  const ended = (reason: EndReason, fromBroadcast = false) => {
    if (hasEnded) return
    hasEnded = true
    if (!fromBroadcast) channel?.postMessage({ type: 'ended', reason })
    stopLeading?.()
    deps.onEnded(reason)
  }

  if (channel) {
    channel.onmessage = (event) => {
      const data = event.data as { type?: unknown; reason?: unknown; news?: unknown }
      if (data?.type === 'ended' && isEndReason(data.reason)) ended(data.reason, true)
      if (data?.type === 'refreshed') deps.onRefreshed?.()
      if (data?.type === 'approval' && typeof data.news === 'object' && data.news !== null) {
        const news = parseApprovalNews(data.news as Record<string, unknown>)
        if (news) deps.onApproval?.(news)
      }
    }
  }

  /** Approval news from the socket: shown here and passed to the site's other tabs. */
  const approvalNews = (raw: Record<string, unknown>) => {
    const news = parseApprovalNews(raw)
    if (!news) return
    channel?.postMessage({ type: 'approval', news: raw })
    deps.onApproval?.(news)
  }

  /** Holds one socket until the sign-in ends or the tab goes; reconnects with backoff. */
  const lead = () =>
    new Promise<void>((release) => {
      let socket: SocketLike | null = null
      let attempt = 0
      let done = false
      stopLeading = () => {
        done = true
        socket?.close()
        release()
      }
      const retry = () => {
        if (done) return
        setTimer(() => void connect(), retryDelayMs(attempt++, RETRY))
      }
      /**
       * The live token (null: none). Only the server's verdict ends the sign-in; an unreachable
       * passport is asked again later. Undefined when either was done here.
       */
      const tokenOrRetry = async (): Promise<string | null | undefined> => {
        try {
          return await deps.token()
        } catch (err) {
          if (err instanceof FrameApiError && err.code === 'invalid_grant') ended(err.reason ?? 'unknown')
          else retry()
          return undefined
        }
      }
      const recheck = async () => {
        const authkey = deps.authkey()
        const token = await tokenOrRetry()
        if (token === undefined) return
        if (!authkey || !token) return ended('unknown')
        let answer: { valid: boolean; reason: EndReason | null } | null = null
        try {
          answer = await deps.check(authkey, token)
        } catch (err) {
          // This frame's key no longer opens its own sign-in (its storage was cleared): done here.
          if (err instanceof FrameApiError && err.code === 'invalid_dpop_proof') return ended('unknown')
        }
        if (answer && !answer.valid) return ended(answer.reason ?? 'unknown')
        retry()
      }
      const connect = async () => {
        if (done) return
        const authkey = deps.authkey()
        const token = await tokenOrRetry()
        if (token === undefined) return
        if (!authkey || !token) return stopLeading?.()
        const resumeFrom = readLastId()
        const query = new URLSearchParams({
          site: deps.siteId,
          ...(resumeFrom > 0 ? { last_event_id: String(resumeFrom) } : {}),
        })
        const url = `${deps.wsOrigin}${LIVE_PATH}`
        socket = deps.openSocket(`${url}?${query}`, [LIVE_PROTOCOL])
        const opened = socket
        let gotEnding = false
        socket.onmessage = (event) => {
          let msg: { type?: unknown; id?: unknown; reason?: unknown; last_event_id?: unknown }
          try {
            msg = JSON.parse(String(event.data))
          } catch {
            return
          }
          if (msg === null || typeof msg !== 'object') return
          if (msg.type === 'challenge' && typeof (msg as { nonce?: unknown }).nonce === 'string') {
            const challenge = (msg as { nonce: string }).nonce
            deps.prove({ url, token, challenge }).then(
              (proof) => opened.send(JSON.stringify({ type: 'auth', token, proof } satisfies LiveAuth)),
              () => opened.close(),
            )
            return
          }
          if (msg.type === 'approval_request' || msg.type === 'approval_closed') {
            approvalNews(msg as Record<string, unknown>)
            return
          }
          if (msg.type === 'refresh_now') {
            deps.onRefreshNow?.().then(
              (changed) => changed && channel?.postMessage({ type: 'refreshed' }),
              () => {},
            )
            return
          }
          if (msg.type === 'welcome') {
            attempt = 0
            // A frame with no history starts from where the log stands now.
            if (typeof msg.last_event_id === 'number' && readLastId() === 0) writeLastId(msg.last_event_id)
            return
          }
          if (msg.type === 'session_event' && typeof msg.id === 'number' && isEndReason(msg.reason)) {
            writeLastId(msg.id)
            gotEnding = true
            ended(msg.reason)
          }
        }
        socket.onclose = (event) => {
          socket = null
          if (done || gotEnding) return
          log('live_closed', { code: event.code })
          // Ended, or our answer refused (the token may have died): ask before trying again.
          if (event.code === CLOSE_SESSION_ENDED || event.code === CLOSE_UNAUTHENTICATED) void recheck()
          else retry()
        }
      }
      void connect()
    })

  return {
    /** Starts taking part (idempotent): lead when the lock is ours, listen meanwhile. */
    start: () => {
      hasEnded = false
      if (started) return
      started = true
      const run = async () => {
        try {
          await lead()
        } finally {
          stopLeading = null
          started = false
        }
      }
      if (deps.locks) void deps.locks.request(`passport-live:${deps.siteId}`, run)
      else void run()
    },
    stop: () => stopLeading?.(),
    /** This tab ended the sign-in itself (logout): tell the site's other tabs, stop the socket. */
    announceEnded: (reason: EndReason) => {
      if (hasEnded) return
      hasEnded = true
      channel?.postMessage({ type: 'ended', reason })
      stopLeading?.()
    },
  }
}

export type LiveChannel = ReturnType<typeof createLiveChannel>
