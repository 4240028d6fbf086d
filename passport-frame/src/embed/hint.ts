import type { EndReason } from '../protocol/codes.ts'

/**
 * What the SDK remembers in the site's own (first-party) storage, so a page can decide at once
 * whether to leave for the passport, without waiting for a cold frame. It holds no credential:
 * the token itself stays in the frame.
 */
export type Hint =
  | { status: 'signed_in'; expiresAt: number }
  | { status: 'signed_out'; reason: EndReason | null; at: number }

/** The state of a sign-in round trip in flight, kept in this tab only. */
export interface PendingSignIn {
  state: string
  codeVerifier: string
  redirectUri: string
  returnTo: string
}

function read<T>(storage: Storage | null, key: string): T | null {
  try {
    const raw = storage?.getItem(key)
    return raw ? (JSON.parse(raw) as T) : null
  } catch {
    return null
  }
}
function write(storage: Storage | null, key: string, value: unknown): void {
  try {
    if (value === null) storage?.removeItem(key)
    else storage?.setItem(key, JSON.stringify(value))
  } catch {
    // Storage blocked or full: the SDK still works, it only loses the shortcut.
  }
}

function safeStorage(kind: 'localStorage' | 'sessionStorage'): Storage | null {
  try {
    return window[kind]
  } catch {
    return null
  }
}

export function createHintStore(siteId: string) {
  const local = safeStorage('localStorage')
  const session = safeStorage('sessionStorage')
  const prefix = `passport:${siteId}:`
  return {
    /** The storage key of the hint (other tabs see it change through `storage` events). */
    hintKey: `${prefix}hint`,
    readHint: () => read<Hint>(local, `${prefix}hint`),
    writeHint: (hint: Hint) => write(local, `${prefix}hint`, hint),
    /** When this browser last left silently for the passport (any tab). */
    lastSilentAttempt: () => read<number>(local, `${prefix}silent_at`) ?? 0,
    markSilentAttempt: (at: number) => write(local, `${prefix}silent_at`, at),
    /** Takes the pending sign-in (one use). */
    takePending: (): PendingSignIn | null => {
      const value = read<PendingSignIn>(session, `${prefix}pending`)
      write(session, `${prefix}pending`, null)
      return value
    },
    putPending: (pending: PendingSignIn) => write(session, `${prefix}pending`, pending),
  }
}
