/**
 * Exact origins only: `scheme://host[:port]` in the browser's own serialisation. No wildcard,
 * no path, no `null`: the registry stores what `event.origin` and the `Origin` header will be,
 * byte for byte, so every later check is a plain string comparison.
 */
export function parseExactOrigin(value: unknown): string | null {
  if (typeof value !== 'string' || value.length > 255) return null
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return null
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null
  // The URL parser keeps `*` in a host (`http://*.example.com` round-trips), but a CSP
  // `frame-ancestors` source built from it would be a wildcard: never a registrable origin.
  if (url.hostname.includes('*')) return null
  // `new URL('http://A.example/').origin` is 'http://a.example': anything that does not
  // round-trip unchanged (case, trailing slash, default port, credentials) is refused.
  return url.origin === value ? value : null
}

/** Byte-exact membership: no prefix, suffix, case folding or pattern matching. */
export function isAllowedOrigin(origin: string, allowed: readonly string[]): boolean {
  return allowed.includes(origin)
}
