import { createFrameAgent, type FrameSite } from './agent.ts'
import { createDpopSigner, loadOrCreateFrameKey } from './dpop.ts'
import { createServerApi } from './server-api.ts'
import { createTokenCache } from './token-cache.ts'

// Entry point of /frame/:site. The server wrote the site's registered origins into the page,
// with its clock and a DPoP nonce for the first proofs.
const site = JSON.parse(document.getElementById('passport-site')?.textContent ?? 'null') as
  | (FrameSite & { serverTime: number; dpopNonce: string; fedcm?: boolean })
  | null

function localStorageOrNull(): Storage | null {
  try {
    return window.localStorage
  } catch {
    return null
  }
}

if (site && window.parent !== window) {
  // Proofs are dated by the server's clock: a device whose clock is off is not refused.
  const clockOffsetMs = site.serverTime - Date.now()
  const subtle = crypto.subtle
  // The frame's key is loaded (or made) at once, while the page's first messages are on their
  // way: the code exchange after a sign-in, the first proof, does not wait for IndexedDB.
  const keyPair = loadOrCreateFrameKey(site.id, subtle, 'indexedDB' in window ? indexedDB : null)
  keyPair.catch(() => {}) // a failure is the first proof's to report
  const signer = createDpopSigner({
    subtle,
    keyPair: () => keyPair,
    serverNow: () => Date.now() + clockOffsetMs,
    randomId: () => crypto.randomUUID(),
  })
  const api = createServerApi(location.origin, signer, site.dpopNonce)
  createFrameAgent({
    site,
    win: window,
    api,
    cache: createTokenCache(site.id, localStorageOrNull()),
    // Web Locks are partitioned like storage: one lock per site, shared by its tabs' frames.
    locks: 'locks' in navigator ? navigator.locks : null,
    // The scheduled refresh, the live channel, check and proofs (/frame-session.js), on first need.
    loadSession: () => import('./session.ts'),
    live: (deps) =>
      import('./session.ts').then((m) =>
        m.openBrowserLive({
          ...deps,
          storage: localStorageOrNull(),
          post: api.post,
          prove: ({ url, token, challenge }) =>
            signer.proof({ method: 'GET', url, accessToken: token, nonce: challenge }),
        }),
      ),
    proveForSite: ({ method, url, accessToken }) => signer.proof({ method, url, accessToken }),
    // FedCM-connected sites: the shared passport state, fetched (/frame-shared.js) only for them.
    ...(site.fedcm
      ? {
          connectShared: (hooks) =>
            import('./shared-state.ts').then((m) =>
              m.connectSharedState({
                doc: document as unknown as Parameters<typeof m.connectSharedState>[0]['doc'],
                onNews: (news) => m.actOnNews(hooks, news),
              }),
            ),
        }
      : {}),
    // "Continue with Passport" (browsers without FedCM), fetched (/frame-continue.js) when a site shows it.
    showContinue: (hooks) => void import('./continue-button.ts').then((m) => m.default(hooks)),
    canSeeCookies: async () => {
      try {
        return await document.hasStorageAccess()
      } catch {
        return false
      }
    },
    log: (event, detail) => console.debug(`[passport frame] ${event}`, detail ?? ''),
  })
}
