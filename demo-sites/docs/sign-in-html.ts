/** The Docs page's sign-in section, the same on the server (first render) and in the page. */

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}

export function renderSignedIn(user: { username: string; name: string }): string {
  return `<p id="status" role="status">Signed in as ${escapeHtml(user.username)}</p>
<p id="message" class="message">Welcome back, ${escapeHtml(user.name)}.</p>
<form method="post" action="/passport/logout"><button type="submit">Sign out</button></form>`
}

export function renderSignedOut(message: string): string {
  return `<p id="status" role="status">You are not signed in.</p>
<p id="message" class="message"${message ? '' : ' hidden'}>${escapeHtml(message)}</p>
<form method="get" action="/passport/login"><input type="hidden" name="return_to" value="/"><button type="submit">Sign in</button></form>`
}
