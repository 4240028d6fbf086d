import { serve } from '@hono/node-server'
import { Hono } from 'hono'

/**
 * The yardsticks the hop is judged against (bench-baseline.md), served on their own hostnames:
 *
 * - floor: the product's hop with no passport logic. A static site page whose inline script
 *   navigates top-level to a passport-origin endpoint that 302s straight back with a code in
 *   the fragment; the returning page starts a passport-origin iframe, which exchanges the code
 *   with one same-origin fetch and posts the answer; then one fetch to the site's backend.
 * - bare: a page navigates to another origin that 302s back (nothing runs, nothing is framed).
 */
export interface SkeletonPorts {
  start: number
  floorSite: number
  floorPassport: number
  bareAlpha: number
  bareBeta: number
}

export function skeletonUrls(ports: SkeletonPorts) {
  return {
    start: `http://bench-start.localhost:${ports.start}/`,
    floorSite: `http://floor-site.localhost:${ports.floorSite}`,
    floorPassport: `http://floor-passport.localhost:${ports.floorPassport}`,
    bareAlpha: `http://bare-alpha.localhost:${ports.bareAlpha}`,
    bareBeta: `http://bare-beta.localhost:${ports.bareBeta}`,
  }
}

const html = (body: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bench</title></head><body>${body}</body></html>`

export async function startSkeletons(ports: SkeletonPorts): Promise<{ close(): void }> {
  const urls = skeletonUrls(ports)
  const noStore = { 'Cache-Control': 'no-store' }

  // The start page of the floor case embeds a frame from the skeleton passport, as News embeds
  // the real one: both then begin with the same warm connection to the passport origin.
  const start = new Hono().get('/', (c) => {
    const frame =
      c.req.query('frame') === 'floor' ? `<iframe src="${urls.floorPassport}/frame"></iframe>` : ''
    return c.html(html(`<p>start</p>${frame}`), 200, noStore)
  })

  const floorSite = new Hono()
    .get('/', (c) =>
      c.html(
        html(`<p id="status">Checking…</p><script>
const P = ${JSON.stringify(urls.floorPassport)}
if (!location.hash.startsWith('#code=')) {
  location.replace(P + '/authorize?redirect_uri=' + encodeURIComponent(location.origin + '/'))
} else {
  const code = location.hash.slice(6)
  history.replaceState(null, '', location.pathname)
  const frame = document.createElement('iframe')
  frame.style.display = 'none'
  frame.src = P + '/frame'
  addEventListener('message', async (e) => {
    if (e.origin !== P || e.source !== frame.contentWindow) return
    if (e.data.type === 'ready') return frame.contentWindow.postMessage({ code }, P)
    const me = await (await fetch('/api/me', { headers: { Authorization: 'Bearer ' + e.data.token } })).json()
    document.getElementById('status').textContent = 'Signed in as ' + me.user
  })
  document.body.append(frame)
}
</script>`),
        200,
        noStore,
      ),
    )
    .get('/api/me', (c) => c.json({ user: 'alice' }, 200, noStore))

  const floorPassport = new Hono()
    .get('/authorize', (c) => c.redirect(`${c.req.query('redirect_uri')}#code=bench-code`, 302))
    .get('/frame', (c) =>
      c.html(
        html(`<script>
addEventListener('message', async (e) => {
  const res = await fetch('/token', { method: 'POST', body: JSON.stringify({ code: e.data.code }) })
  parent.postMessage({ type: 'token', token: (await res.json()).token }, e.origin)
})
parent.postMessage({ type: 'ready' }, '*')
</script>`),
        200,
        noStore,
      ),
    )
    .post('/token', (c) => c.json({ token: 'bench-token' }, 200, noStore))

  const bareAlpha = new Hono().get('/done', (c) => c.html(html('<p>Done</p>'), 200, noStore))
  const bareBeta = new Hono().get('/bounce', (c) => c.redirect(`${urls.bareAlpha}/done`, 302))

  const servers = [
    serve({ fetch: start.fetch, port: ports.start, hostname: '127.0.0.1' }),
    serve({ fetch: floorSite.fetch, port: ports.floorSite, hostname: '127.0.0.1' }),
    serve({ fetch: floorPassport.fetch, port: ports.floorPassport, hostname: '127.0.0.1' }),
    serve({ fetch: bareAlpha.fetch, port: ports.bareAlpha, hostname: '127.0.0.1' }),
    serve({ fetch: bareBeta.fetch, port: ports.bareBeta, hostname: '127.0.0.1' }),
  ]
  return {
    close: () => {
      for (const s of servers) s.close()
    },
  }
}
