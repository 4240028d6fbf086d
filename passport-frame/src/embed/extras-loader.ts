import type * as Extras from './extras.ts'

/**
 * The SDK's occasional parts (`extras.ts`), fetched on first use: as a chunk next to the module
 * SDK, or bundled with a site's own code. The script-tag SDK is built with `extras-loader.script.ts`
 * instead (vite.config.ts), which fetches them from the passport.
 */
export const loadExtras = (_passportOrigin: string): Promise<typeof Extras> => import('./extras.ts')
