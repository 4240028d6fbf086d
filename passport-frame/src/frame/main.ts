import { createFrameAgent, type FrameSite } from './agent.ts'
import { createServerApi } from './server-api.ts'
import { createTokenCache } from './token-cache.ts'

// Entry point of /frame/:site. The server wrote the site's registered origins into the page.
const site = JSON.parse(document.getElementById('passport-site')?.textContent ?? 'null') as FrameSite

function localStorageOrNull(): Storage | null {
  try {
    return window.localStorage
  } catch {
    return null
  }
}

if (site && window.parent !== window) {
  createFrameAgent({
    site,
    win: window,
    api: createServerApi(location.origin),
    cache: createTokenCache(site.id, localStorageOrNull()),
    // Web Locks are partitioned like storage: one lock per site, shared by its tabs' frames.
    locks: 'locks' in navigator ? navigator.locks : null,
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
