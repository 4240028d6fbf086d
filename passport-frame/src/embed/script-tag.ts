import { createPassport, type Passport } from './passport.ts'

declare global {
  interface Window {
    passport?: Passport
  }
}

// `<script src="https://passport.example.com/passport.js" data-authkey="…">`: a classic script,
// so it runs while the page is still parsing and can leave for the passport before anything
// else loads. The passport origin is where this file came from.
const script = document.currentScript as HTMLScriptElement | null
const authkey = script?.dataset.authkey
if (script && authkey) {
  window.passport = createPassport({
    authkey,
    passportOrigin: new URL(script.src).origin,
    ...(script.dataset.redirectUri ? { redirectUri: script.dataset.redirectUri } : {}),
    ...(script.dataset.silent === 'false' ? { silent: false } : {}),
    ...(script.dataset.fedcm === 'true' ? { fedcm: true } : {}),
  })
} else {
  console.error('[passport] passport.js needs a data-authkey attribute on its <script> tag')
}
