import { generateKeyPairSync, sign } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * The physical floor of issue 17's benchmark (bench/fedcm.ts): the same two shapes, `connected`
 * and `hop`, with nothing of the passport in them, so that what the browser alone costs is
 * measured in the same rounds as the real cases.
 *
 * - floor `connected`: a page on the site's origin whose inline script adds a cross-site iframe
 *   from the "passport" origin; the frame's inline script, as it starts, makes one request to its
 *   own origin, which signs one token (ES256, node:crypto), and posts the token to the page (it
 *   waits for no message: less than any real frame, which must learn which page asks); the page
 *   makes one request to its own backend and writes "Signed in as alice". No SDK, no bundle, no
 *   DPoP key or proof, no storage access, no store, no cookie.
 * - floor `hop`: the site's page navigates to the passport origin at once (inline script), which
 *   answers 302 back to the site; the return page is the floor `connected` page.
 *
 * Two bare `node:http` servers on loopback: the site (on `base`, the same page for every
 * `*.localhost` host, so news.localhost and shop.localhost are two sites) and the passport (`base + 1`).
 */
export interface Floor {
  /** The floor page `path` ('/connected' or '/hop') on the site `host` (e.g. 'shop'). */
  url: (host: 'news' | 'shop', path: '/connected' | '/hop') => string
  close: () => Promise<void>
}

export async function startFloor(base: number): Promise<Floor> {
  const passport = `http://passport.localhost:${base + 1}`
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const b64url = (value: string | Buffer) => Buffer.from(value).toString('base64url')
  /** One signature, as a token mint's floor: an ES256 JWT over a fixed header and a small payload. */
  const mintToken = () => {
    const input = `${b64url('{"alg":"ES256","typ":"JWT"}')}.${b64url(JSON.stringify({ sub: 'alice', iat: Date.now() }))}`
    return `${input}.${b64url(sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }))}`
  }

  const page = `<!doctype html><meta charset="utf-8"><title>floor</title><p id="s">Checking…</p><script>
const P = ${JSON.stringify(passport)}
const frame = document.createElement('iframe')
frame.style.display = 'none'
frame.src = P + '/frame?for=' + encodeURIComponent(location.origin)
addEventListener('message', async (event) => {
  if (event.origin !== P) return
  const res = await fetch('/api/me', { headers: { Authorization: 'Bearer ' + event.data.token } })
  document.getElementById('s').textContent = 'Signed in as ' + (await res.json()).user
})
document.body.append(frame)
</script>`
  const hop = `<!doctype html><meta charset="utf-8"><title>floor</title><script>
location.replace(${JSON.stringify(`${passport}/authorize`)} + '?return=' + encodeURIComponent(location.origin + '/connected'))
</script>`
  const frame = `<!doctype html><meta charset="utf-8"><title>floor frame</title><script>
fetch('/token', { method: 'POST' })
  .then((res) => res.json())
  .then((token) => parent.postMessage(token, new URLSearchParams(location.search).get('for')))
</script>`

  const html = (res: http.ServerResponse, body: string) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' })
    res.end(body)
  }
  const json = (res: http.ServerResponse, body: unknown) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' })
    res.end(JSON.stringify(body))
  }
  const site = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/connected') return html(res, page)
    if (path === '/hop') return html(res, hop)
    if (path === '/api/me' && req.headers.authorization?.startsWith('Bearer '))
      return json(res, { user: 'alice' })
    res.writeHead(404).end()
  })
  const passportServer = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', passport)
    if (url.pathname === '/frame') return html(res, frame)
    if (url.pathname === '/token' && req.method === 'POST') {
      req.resume()
      req.on('end', () => json(res, { token: mintToken() }))
      return
    }
    const back = url.searchParams.get('return') ?? ''
    if (url.pathname === '/authorize' && /^http:\/\/shop\.localhost:\d+\/connected$/.test(back)) {
      res.writeHead(302, { Location: `${back}?code=floor`, 'Cache-Control': 'no-store' })
      return res.end()
    }
    res.writeHead(404).end()
  })
  const listen = (server: http.Server, port: number) =>
    new Promise<number>((resolve) =>
      server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
    )
  const sitePort = await listen(site, base)
  await listen(passportServer, base + 1)
  const close = (server: http.Server) =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  return {
    url: (host, path) => `http://${host}.localhost:${sitePort}${path}`,
    close: async () => {
      await Promise.all([close(site), close(passportServer)])
    },
  }
}
