import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'vite'
import { afterAll, expect, test } from 'vitest'

/**
 * The weight every site pays on every page: the page SDK (`passport.js`) plus the frame's
 * script (`frame.js`), gzipped (level 9). Built here from the sources with the real vite config,
 * so a change that grows them fails this test instead of going unnoticed.
 *
 * History (issue 18): 10.2 KiB before (3.5 + 6.9; the frame's ES output was not
 * whitespace-minified); 9.1 KiB after full minification and plain lists for the protocol codes;
 * 7.9 KiB once the approval prompt (1.5 KiB, `frame-approval.js`) is fetched only when another
 * device asks. The target is under 8 KiB (7 KiB would leave room for DPoP): the budget
 * below holds today's size; lower it as the files shrink, never raise it without saying why.
 *
 * Raised to 9.6 KiB (9,649 B measured) when the frame-bound credentials (issue 13: the frame's
 * own key, DPoP proofs, the socket's challenge), the outage handling and the page-flood limit
 * (issue 14) landed together: issue 18's 8 KiB target is not met with them, and stays open.
 *
 * Raised to 10.0 KiB (9,972 B measured, +416 B) by FedCM (issue 17): the SDK's sign-in through
 * the browser's own dialog (+234 B; it has to be in the SDK: FedCM is called by the site's
 * document, never the frame) and the frame's hooks for the passport-wide shared state (+182 B);
 * the shared state itself is fetched only by FedCM sites' frames (`frame-shared.js`, 0.4 KiB).
 */
/*
 * Raised to 10.2 KiB (10,133 B measured) when FedCM, the passport's refresh request
 * (`refresh_now`, issue 19: the frame refreshes when asked and tells its page) and the graceful
 * restart (close code 4503, issue 15: reconnect at once, elsewhere) landed together. Issue 18's
 * 8 KiB target is further away, not closer: the next step is to move what only a first visit
 * needs (PKCE, FedCM) out of the page SDK into on-demand chunks, as the approval prompt was.
 */
/*
 * Raised to 10,230 B (10,226 B measured, +93 B) by "Continue with Passport" for browsers without
 * FedCM (issue 17 §4): the SDK's `showContinueButton()` (+27 B) and the frame's `continue`
 * message, its hooks and the loader of the button (+66 B). The button itself is fetched only when
 * a site shows it (`frame-continue.js`, 0.75 KiB).
 */
/*
 * Raised to 10,300 B (10,295 B measured, +69 B) by sealed approval details (issue 16 item 3):
 * the live channel no longer says who asks (site, browser, address), so the frame fetches that
 * sealed to a one-time key of its own; frame.js carries the call and the loader only, jose and
 * the sealing are in `frame-sealed.js` (10.4 KiB gzipped), fetched only when another device asks.
 * Then 10,320 B (10,319 B measured, +24 B) by FedCM's dialog-free `mediation: 'silent'` (issue 17 §3): a revisit whose frame
 * lost its sign-in, and a signed-out page within its silent limit, let Chromium's
 * auto-reauthentication sign a returning site in before (or instead of) the hop.
 */
const BUDGET_BYTES = 10_320
/** The on-demand approval prompt, on its own (1,747 B once the code is typed rather than picked). */
const APPROVAL_BUDGET_BYTES = 1_800

const root = path.resolve(import.meta.dirname, '../..')
const outDir = mkdtempSync(path.join(tmpdir(), 'passport-size-'))
afterAll(() => rmSync(outDir, { recursive: true, force: true }))

async function gzippedSize(mode: 'sdk' | 'frame', file: string): Promise<number> {
  await build({
    configFile: path.join(root, 'vite.config.ts'),
    mode,
    logLevel: 'silent',
    build: { outDir, emptyOutDir: false },
  })
  return gzipSync(readFileSync(path.join(outDir, file)), { level: 9 }).length
}

test('the page SDK and the frame script stay within their gzip budget together', async () => {
  const sdk = await gzippedSize('sdk', 'passport.js')
  const frame = await gzippedSize('frame', 'frame.js')
  const approval = gzipSync(readFileSync(path.join(outDir, 'frame-approval.js')), { level: 9 }).length
  console.info(
    `passport.js ${sdk} B + frame.js ${frame} B = ${sdk + frame} B gzip (budget ${BUDGET_BYTES}); on demand: frame-approval.js ${approval} B`,
  )
  expect(sdk).toBeGreaterThan(1000) // really built
  expect(frame).toBeGreaterThan(1000)
  expect(sdk + frame).toBeLessThanOrEqual(BUDGET_BYTES)
  expect(approval).toBeLessThanOrEqual(APPROVAL_BUDGET_BYTES)
}, 60_000)
