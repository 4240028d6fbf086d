import { createPassport, preloadExtras } from '../../passport-frame/src/embed/index.ts'
import { mountDemo } from '../shared/demo-app.ts'

// Shop uses the SDK as an ES module, bundled into its own page script.
const meta = (name: string) => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content ?? ''
const passport = createPassport({
  authkey: meta('passport-authkey'),
  passportOrigin: meta('passport-origin'),
  fedcm: meta('passport-fedcm') === 'true',
})
// The page asks for `authHeaders()` as soon as it is signed in: its code comes beside the frame.
preloadExtras()
mountDemo(passport, document.getElementById('app') as HTMLElement)
