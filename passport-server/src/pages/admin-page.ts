import { escapeHtml, hiddenField, inlineHash, renderPage } from './html.ts'

/**
 * The console's shell page: the console itself is a built script (`/admin/console.js`, vite
 * mode `admin`) from the passport's own origin; nothing else may load, nothing may frame it.
 * The CSRF value every state-changing request repeats (header `X-Passport-CSRF`) is in a meta tag.
 */
const CONSOLE_STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{display:flex;gap:1rem;align-items:center;background:#1d2330;color:#fff;padding:.6rem 1rem}
header h1{font-size:1rem;margin:0}nav button{background:none;border:0;color:#c9d1e3;font:inherit;cursor:pointer;padding:.3rem .6rem;border-radius:4px}
nav button[aria-current=page]{background:#2557d6;color:#fff}header .me{margin-left:auto}
main{padding:1rem}table{border-collapse:collapse;width:100%;background:#fff;table-layout:fixed}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e3e6ec;vertical-align:top}
th{background:#eef0f4;position:sticky;top:0}button{font:inherit;cursor:pointer}
.danger{color:#a3161c}.muted{color:#5b6475}.ok{color:#136f2d}.mono{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
form.inline{display:inline}fieldset{border:1px solid #dde1e8;background:#fff;margin:0 0 1rem;padding:.6rem 1rem}
label{display:inline-block;margin:.2rem .8rem .2rem 0}input,select{font:inherit}.notice{background:#fff6d6;padding:.4rem .6rem;margin:.5rem 0}
.error{background:#fdecec;color:#a3161c;padding:.4rem .6rem;margin:.5rem 0}.tag{display:inline-block;background:#eef0f4;border-radius:3px;padding:0 .3rem;margin:0 .2rem .2rem 0}`
const CONSOLE_STYLE_HASH = inlineHash(CONSOLE_STYLE)

export function renderConsolePage(input: { issuer: string; username: string; csrf: string }): {
  html: string
  csp: string
} {
  const ws = input.issuer.replace(/^http/, 'ws')
  return {
    html: `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Passport console</title><meta name="passport-csrf" content="${escapeHtml(input.csrf)}"><meta name="passport-admin" content="${escapeHtml(input.username)}"><style>${CONSOLE_STYLE}</style></head><body><noscript>The console needs JavaScript.</noscript><div id="console"></div><script type="module" src="/admin/console.js"></script></body></html>`,
    csp: `default-src 'none'; script-src 'self'; style-src ${CONSOLE_STYLE_HASH}; connect-src 'self' ${ws}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  }
}

/** Password sign-in to the console (an admin account). */
export function renderConsoleLogin(input: { csrf: string; error?: string; username?: string }) {
  const error = input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : ''
  return renderPage({
    title: 'Passport console: sign in',
    body: `<h1>Passport console</h1>${error}<form method="post" action="/admin/login">${hiddenField('csrf', input.csrf)}<label for="username">Username</label><input id="username" name="username" autocomplete="username" required value="${escapeHtml(input.username ?? '')}"><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required><button type="submit">Sign in</button></form>`,
  })
}
