import { createHash } from 'node:crypto'

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}

/** A hidden form field; the value is escaped (field names are the pages' own literals). */
export function hiddenField(name: string, value: string): string {
  return `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`
}

/** A CSP source for an inline script or style, by the SHA-256 of its exact text. */
export function inlineHash(content: string): string {
  return `'sha256-${createHash('sha256').update(content).digest('base64')}'`
}

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:22rem;margin:10vh auto;background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0002}
h1{font-size:1.3rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #b8bfcc;border-radius:6px;font:inherit}
button{margin-top:1.2rem;width:100%;padding:.6rem;border:0;border-radius:6px;background:#2557d6;color:#fff;font:inherit;font-weight:600;cursor:pointer}
.error{color:#a3161c;background:#fdecec;padding:.5rem .7rem;border-radius:6px}
.notice{color:#5a4300;background:#fff6d6;padding:.5rem .7rem;border-radius:6px}
.site{color:#5b6475;font-size:.9rem}
.code{font-size:3rem;font-weight:700;letter-spacing:.3rem;text-align:center;margin:.5rem 0}
.secondary{background:#e8ebf2;color:#1d2330}
hr{border:0;border-top:1px solid #dde1e8;margin:1.5rem 0}`
const STYLE_HASH = inlineHash(STYLE)

/**
 * A complete passport page. Its CSP allows only its own inline style and, where a page needs
 * one, its own inline script (by hash, fetching from the passport alone), and forbids framing:
 * sign-in pages must never be overlaid by another site.
 */
export function renderPage(input: {
  title: string
  body: string
  formAction?: string[]
  script?: string
  /** Absolute URLs of the passport's own page scripts; the CSP allows exactly these files. */
  scriptFiles?: string[]
  /** A built script of the passport's own (`/sign-in.js`), loaded as a module. */
  scriptFile?: string
}): {
  html: string
  csp: string
} {
  const formAction = ["'self'", ...(input.formAction ?? [])].join(' ')
  const files = input.scriptFiles ?? []
  const script =
    (input.script ? `<script>${input.script}</script>` : '') +
    files.map((url) => `<script src="${escapeHtml(url)}" defer></script>`).join('') +
    (input.scriptFile ? `<script type="module" src="${escapeHtml(input.scriptFile)}"></script>` : '')
  const sources = [
    ...(input.script ? [inlineHash(input.script)] : []),
    ...files,
    // An absolute URL allows that file alone; a path, the passport's own origin.
    ...(input.scriptFile ? [/^https?:/.test(input.scriptFile) ? input.scriptFile : "'self'"] : []),
  ]
  const scriptPolicy = sources.length ? `; script-src ${sources.join(' ')}; connect-src 'self'` : ''
  return {
    html: `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${escapeHtml(input.title)}</title><style>${STYLE}</style></head><body><main>${input.body}</main>${script}</body></html>`,
    csp: `default-src 'none'; style-src ${STYLE_HASH}; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'${scriptPolicy}`,
  }
}
