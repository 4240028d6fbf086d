import { BlockList, isIP } from 'node:net'

/**
 * Who the client is, for per-address limits and for the address shown on an approval prompt.
 *
 * Without trusted proxies it is the TCP peer, never a header a client sets. With them
 * (`trustedProxies`: addresses and CIDRs of the operator's own reverse proxies) a request whose
 * peer is one of them is attributed by `X-Forwarded-For`, read from the right: each trusted
 * proxy appends the address it saw, so the right-most address that is not a trusted proxy is the
 * first one no proxy of ours vouches for. The left-most entry is whatever the client wrote and
 * is never believed.
 */
export interface TrustedProxies {
  contains(address: string): boolean
}

/** `::ffff:10.0.0.1` (IPv4 on a dual-stack socket) is 10.0.0.1. */
function plain(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  return mapped?.[1] ?? address
}

/** Parses `10.0.0.1`, `10.0.0.0/8`, `fd00::/8`; throws on anything else (checked at start-up). */
export function parseTrustedProxies(entries: readonly string[]): TrustedProxies {
  const list = new BlockList()
  for (const entry of entries) {
    const [address = '', bits, extra] = entry.trim().split('/')
    const family = isIP(address)
    const prefix = bits === undefined ? null : Number(bits)
    const maxBits = family === 6 ? 128 : 32
    if (
      family === 0 ||
      extra !== undefined ||
      (prefix !== null && (!/^\d{1,3}$/.test(bits ?? '') || prefix > maxBits))
    ) {
      throw new Error(`trusted proxy must be an IP address or CIDR, got ${entry}`)
    }
    const type = family === 6 ? 'ipv6' : 'ipv4'
    if (prefix === null) list.addAddress(address, type)
    else list.addSubnet(address, prefix, type)
  }
  return {
    contains: (address) => {
      const ip = plain(address)
      const family = isIP(ip)
      return family !== 0 && list.check(ip, family === 6 ? 'ipv6' : 'ipv4')
    },
  }
}

/**
 * The client's address given the TCP peer and the `X-Forwarded-For` header(s) of the request.
 * An entry that is not an address ends the walk: the proxy that wrote the entry after it is
 * the last one we can vouch for, so the address it received the request from stands.
 */
export function resolveClientAddress(
  peer: string | undefined,
  forwardedFor: string | undefined,
  trusted: TrustedProxies,
): string {
  let client = plain(peer ?? 'unknown')
  if (!trusted.contains(client) || !forwardedFor) return client
  const hops = forwardedFor.split(',').map((hop) => plain(hop.trim()))
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i] ?? ''
    if (isIP(hop) === 0) return client
    client = hop
    if (!trusted.contains(hop)) return client
  }
  return client
}

const parsed = new WeakMap<readonly string[], TrustedProxies>()

/** The parsed list for a resolved config's `trustedProxies` (parsed once per config). */
export function trustedProxiesOf(entries: readonly string[]): TrustedProxies {
  let list = parsed.get(entries)
  if (!list) {
    list = parseTrustedProxies(entries)
    parsed.set(entries, list)
  }
  return list
}
