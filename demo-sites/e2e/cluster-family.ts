import type { Hono } from 'hono'
import type { RegisteredSite } from '../../passport-server/src/services/registry.ts'
import {
  authorizeRequest,
  type CookieJar,
  fragmentOf,
  postLogin,
} from '../../passport-server/src/test-flows.ts'

/**
 * A site backend's refresh family, made and used over real HTTP through the load balancer: the
 * user signs in (the passport's form, as a browser would post it), the backend exchanges the
 * code at `POST /token` with its client secret and then rotates the refresh token there.
 */

/** `app.request` for the flow helpers, sent to a real address instead of an in-process app. */
function overHttp(base: string): Hono {
  return {
    request: (pathname: string, init: RequestInit = {}) =>
      fetch(`${base}${pathname}`, { ...init, redirect: 'manual' }),
  } as unknown as Hono
}

export interface TokenAnswer {
  status: number
  body: string
  /** Which instance answered (the harness's HAProxy names it), '' if none did. */
  instance: string
  refreshToken: string | null
}

export function siteBackend(input: { internalUrl: string; issuer: string; site: RegisteredSite }) {
  const basic = `Basic ${Buffer.from(`${input.site.site.id}:${input.site.clientSecret}`).toString('base64')}`
  const token = async (form: Record<string, string>): Promise<TokenAnswer> => {
    try {
      const res = await fetch(`${input.internalUrl}/token`, {
        method: 'POST',
        headers: { Authorization: basic, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form),
      })
      const body = await res.text()
      let refreshToken: string | null = null
      try {
        refreshToken = (JSON.parse(body) as { refresh_token?: string }).refresh_token ?? null
      } catch {}
      return {
        status: res.status,
        body,
        instance: res.headers.get('x-passport-instance') ?? '',
        refreshToken,
      }
    } catch (err) {
      return { status: 0, body: String(err), instance: '', refreshToken: null }
    }
  }
  return {
    /** Signs `username` in and exchanges the code: the family's first refresh token. */
    async signIn(username: string, password: string): Promise<string> {
      const app = overHttp(input.internalUrl)
      const jar: CookieJar = new Map()
      const req = authorizeRequest(input.site.site.id, input.site.site.redirectUris[0])
      const login = await postLogin(app, jar, req, { username, password }, { Origin: input.issuer })
      if (login.status !== 303) throw new Error(`sign-in failed: ${login.status}`)
      const code = fragmentOf(login).get('code') ?? ''
      const answer = await token({
        grant_type: 'authorization_code',
        code,
        redirect_uri: req.redirectUri,
        code_verifier: req.verifier,
      })
      if (answer.status !== 200 || !answer.refreshToken)
        throw new Error(`code exchange: ${answer.status} ${answer.body}`)
      return answer.refreshToken
    },
    refresh: (refreshToken: string) => token({ grant_type: 'refresh_token', refresh_token: refreshToken }),
  }
}
