import { renderPage } from './html.ts'

/**
 * Closes the pop-up at once when the browser opened it for FedCM. Chromium then rejects the
 * site's `navigator.credentials.get()`, and the SDK goes on to its redirect fallback: the
 * passport's own sign-in page, in the site's tab, which knows the site to come back to. (A
 * sign-in made inside the pop-up would have no site and no PKCE challenge to finish with.)
 */
const CLOSE_SCRIPT =
  "if (typeof IdentityProvider !== 'undefined' && typeof IdentityProvider.close === 'function') IdentityProvider.close()"

/**
 * The FedCM `login_url`: where the browser's "sign in to the passport" dialog sends a signed-out
 * user who pressed a site's FedCM button. The text is for a browser that did not close it
 * (no script, an older FedCM, or a visit by hand).
 */
export function renderFedcmLoginPage(): { html: string; csp: string } {
  return renderPage({
    title: 'Sign in · Passport',
    body: `<h1>Sign in from the site you were on</h1><p>Close this window and press the site's Sign-in button again: it brings you to the passport's sign-in page and back.</p>`,
    script: CLOSE_SCRIPT,
  })
}
