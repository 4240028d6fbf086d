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
const data = script?.dataset
if (script && data?.authkey) {
  window.passport = createPassport({
    authkey: data.authkey,
    passportOrigin: new URL(script.src).origin,
    ...(data.redirectUri ? { redirectUri: data.redirectUri } : {}),
    silent: data.silent !== 'false',
    fedcm: data.fedcm === 'true',
    fedcmOnLoad: data.fedcmOnLoad === 'silent' ? 'silent' : 'optional',
  })
} else {
  console.error('[passport] passport.js needs data-authkey on its <script> tag')
}
