/**
 * The passport's own, unpartitioned state, shared by the frames of every FedCM-connected site
 * (docs/fedcm.md). Loaded only by the frames of sites registered with `--fedcm true`
 * (`/frame-shared.js`), so other sites do not pay for it.
 *
 * After a FedCM sign-in on a site the browser grants the passport frame embedded there storage
 * access with no gesture and no prompt (Chromium; ../shared/platform.md §8): the frame then sends
 * the passport's `SameSite=None` session cookie, and a `StorageAccessHandle` opens the localStorage
 * every other connected site's frame sees too. A frame announces there what the user did here
 * (signed in, signed out); the others notice within a poll and act on it. Nothing secret is
 * written: only what happened and when. Where access is not granted this does nothing.
 */
import type { EndReason } from '../protocol/codes.ts'

export type SharedNews = 'signed_in' | 'signed_out'

/** What a frame lends the shared state, to act on news from another connected site's frame. */
export interface SharedHooks {
  /** Runs a task after the frame's pending page requests, in order. */
  run: (task: () => Promise<void>) => void
  /** The bound page's authkey; null before its hello. */
  authkey: () => string | null
  /** This frame's sign-in, if it holds one (its token, or a live refresh credential). */
  held: () => { token: string } | null
  /** Takes a token from the passport session and tells the page. */
  signIn: (authkey: string) => Promise<void>
  check: (authkey: string, token: string) => Promise<{ valid: boolean; reason: EndReason | null }>
  signedOut: (reason: EndReason) => void
}

/**
 * News from another connected site's frame. A sign-in there: take it up from the passport
 * session (this frame sends its cookie now) and tell the page. A sign-out there: confirm it with
 * the passport, or, if the passport cannot be asked, believe the passport's own frame.
 */
export function actOnNews(hooks: SharedHooks, news: SharedNews): void {
  hooks.run(async () => {
    const authkey = hooks.authkey()
    if (!authkey) return
    const held = hooks.held()
    if (news === 'signed_in' && !held) {
      try {
        await hooks.signIn(authkey)
      } catch {}
    }
    if (news === 'signed_out' && held) {
      try {
        const answer = await hooks.check(authkey, held.token)
        if (!answer.valid) hooks.signedOut(answer.reason ?? 'signed_out')
      } catch {
        hooks.signedOut('signed_out')
      }
    }
  })
}

export interface SharedState {
  announce(news: SharedNews): void
}

interface StorageAccessDocument {
  requestStorageAccess(types: {
    cookies?: boolean
    localStorage?: boolean
  }): Promise<{ localStorage?: Storage } | undefined>
}

const KEY = 'passport:shared'
/** How often the shared storage is looked at: well within the one second the issue asks for. */
const POLL_MS = 250

export async function connectSharedState(input: {
  doc: StorageAccessDocument
  onNews: (news: SharedNews) => void
  pollMs?: number
}): Promise<SharedState | null> {
  const { doc } = input
  let storage: Storage | null = null
  try {
    // Without a click in this hidden frame, the browser grants only what a FedCM sign-in on this
    // site allows (the `storage-access` permission still reads "prompt" then); else it refuses,
    // silently: no prompt can appear. One call for the passport's cookie and its storage: each
    // call is a round trip to the browser, and the frame's token request waits for this (issue 17).
    storage = (await doc.requestStorageAccess({ cookies: true, localStorage: true }))?.localStorage ?? null
  } catch {
    return null
  }
  if (!storage) return null
  const shared = storage
  const read = () => {
    try {
      return shared.getItem(KEY)
    } catch {
      return null
    }
  }
  let seen = read()
  setInterval(() => {
    const now = read()
    if (now === seen) return
    seen = now
    try {
      const news = (JSON.parse(now ?? 'null') as { news?: unknown } | null)?.news
      if (news === 'signed_in' || news === 'signed_out') input.onNews(news)
    } catch {}
  }, input.pollMs ?? POLL_MS)
  return {
    announce: (news) => {
      seen = JSON.stringify({ news, at: Date.now(), n: Math.random() })
      try {
        shared.setItem(KEY, seen)
      } catch {}
    },
  }
}
