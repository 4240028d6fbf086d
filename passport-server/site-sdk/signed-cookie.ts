import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Small values kept in the browser by the site's backend (the sign-in in flight, a remembered
 * silent failure), signed so the browser can hold them but not forge or alter them. The purpose
 * is signed too: a value sealed for one cookie never opens as another. Not encrypted: put no
 * secret in them that the user may not read (the PKCE verifier is theirs anyway, and useless
 * without the code and the site's client secret).
 */
export interface SignedCookies {
  seal(purpose: string, value: Record<string, unknown>, maxAgeSeconds: number): string
  open(purpose: string, sealed: string | undefined): Record<string, unknown> | null
}

export function createSignedCookies(secret: string, now: () => number): SignedCookies {
  if (secret.length < 32) throw new Error('cookieSecret must be at least 32 characters')
  const sign = (purpose: string, payload: string) =>
    createHmac('sha256', secret).update(`${purpose}\n${payload}`).digest('base64url')
  return {
    seal(purpose, value, maxAgeSeconds) {
      const payload = Buffer.from(JSON.stringify({ ...value, exp: now() + maxAgeSeconds * 1000 })).toString(
        'base64url',
      )
      return `${payload}.${sign(purpose, payload)}`
    },
    open(purpose, sealed) {
      if (!sealed || sealed.length > 4096) return null
      const dot = sealed.indexOf('.')
      const payload = sealed.slice(0, dot)
      const mac = Buffer.from(sealed.slice(dot + 1))
      const expected = Buffer.from(sign(purpose, payload))
      if (dot < 1 || mac.length !== expected.length || !timingSafeEqual(mac, expected)) return null
      try {
        const value = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown
        if (typeof value !== 'object' || value === null) return null
        const record = value as Record<string, unknown>
        return typeof record.exp === 'number' && record.exp > now() ? record : null
      } catch {
        return null
      }
    },
  }
}
