import { randomSecret } from '../crypto/random.ts'
import type { AppDeps } from '../deps.ts'

/**
 * Asks the device holding `sessionId`'s live socket on `siteId` to refresh its token now (the
 * console's "Refresh now", a site backend's refresh request). The frame refreshes through its
 * normal, proof-bound path, so this grants nothing by itself: it only moves a refresh earlier.
 */
export async function requestRefresh(
  deps: Pick<AppDeps, 'events'>,
  target: { sessionId: string; siteId: string },
): Promise<{ requestId: string }> {
  const requestId = randomSecret()
  await deps.events.publishCommand({ type: 'refresh_now', ...target, requestId })
  return { requestId }
}
