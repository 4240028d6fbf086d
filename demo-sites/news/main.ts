import type {} from '../../passport-frame/src/embed/script-tag.ts'
import { mountDemo } from '../shared/demo-app.ts'

// News loads the SDK with the one-line script tag; it is already on window.
const root = document.getElementById('app') as HTMLElement
if (window.passport) mountDemo(window.passport, root)
else root.textContent = 'The passport script did not load.'
