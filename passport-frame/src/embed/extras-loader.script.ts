import type * as Extras from './extras.ts'

/**
 * The script-tag SDK's `loadExtras`: a classic script cannot carry chunks, so it fetches the
 * module SDK's chunk from the passport (`/passport-extras.mjs`, public and CORS-enabled like the
 * SDK itself; the site's `script-src` already allows the passport for `passport.js`).
 */
export const loadExtras = (passportOrigin: string): Promise<typeof Extras> =>
  import(/* @vite-ignore */ `${passportOrigin}/passport-extras.mjs`)
