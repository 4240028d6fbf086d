import { getConnInfo } from '@hono/node-server/conninfo'
import type { Context } from 'hono'
import type { ResolvedConfig } from '../config.ts'
import { resolveClientAddress, trustedProxiesOf } from '../services/client-address.ts'

/**
 * The client's address for this request: the TCP peer, or, when that peer is one of the
 * operator's `trustedProxies`, the right-most untrusted `X-Forwarded-For` entry.
 */
export function clientAddress(c: Context, config: Pick<ResolvedConfig, 'trustedProxies'>): string {
  let peer: string | undefined
  try {
    peer = getConnInfo(c).remote.address
  } catch {
    peer = undefined // app.request() in tests has no socket
  }
  return resolveClientAddress(peer, c.req.header('X-Forwarded-For'), trustedProxiesOf(config.trustedProxies))
}
