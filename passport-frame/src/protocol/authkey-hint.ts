/**
 * Reads the site id from an authkey's protected header without any key. The value is a hint
 * for routing (which frame to load); the server authenticates the authkey on every use.
 */
export function readAuthkeySite(authkey: string): string | null {
  const header = authkey.split('.', 1)[0]
  if (!header || header.length > 512) return null
  try {
    const json = atob(header.replace(/-/g, '+').replace(/_/g, '/'))
    const site = (JSON.parse(json) as { site?: unknown }).site
    return typeof site === 'string' && /^[a-z0-9][a-z0-9-]{0,62}$/.test(site) ? site : null
  } catch {
    return null
  }
}
