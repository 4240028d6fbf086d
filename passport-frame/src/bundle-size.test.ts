import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'vite'
import { afterAll, expect, test } from 'vitest'

/**
 * The weight every site pays on every page: the page SDK (`passport.js`) plus the frame's
 * script (`frame.js`), gzipped (level 9); and the on-demand chunks, each bounded on its own. Built here from the sources with the real vite config,
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
 * Lowered to 8,190 B (8,184 B measured: passport.js 3,817 + frame.js 4,367), issue 18's target
 * met, by fetching on demand what a page does not need to get its token:
 * - the frame's session keeping (`frame-session.js`): the scheduled refresh, the live channel with
 *   the approval requests it brings, `check` and `proof_request`. A frame loads it once it holds or
 *   hands out a sign-in, after answering its page, or when one of those is asked. A frame with no
 *   sign-in never loads it; a signed-in page does, every time: its own weight is bounded below,
 *   and a signed-in page's whole weight is this budget plus that one: 10,934 B (2,750 B of
 *   session), more than the 10,226 B of one file before, as two files compress less well than
 *   one. Issue 18's target is met for every page; a signed-in page gets its token sooner (less
 *   script before the answer) but loads 0.7 KiB more in all.
 * - the SDK's `check()`, `refresh()`, `authHeaders()`, FedCM sign-in and showing the frame
 *   (`passport-extras.mjs`, fetched on first use of one of them, and by the page coming back from
 *   the passport while the frame exchanges the code, for a DPoP site's first request).
 * - the FedCM shared news (`frame-shared.js`) and the approval decision (`frame-session.js`).
 * Also: no comments (pure annotations) left in what is served.
 * Merged with FedCM's `mediation: 'silent'` (+13 B in passport.js) and sealed approval details
 * (in the session chunk, with jose in `frame-sealed.js`): 8,190 B (3,830 + 4,360) after the SDK
 * asks FedCM through one function that answers null where it is unusable and the frame hands
 * the live channel `api.check` itself.
 * FedCM's `fedcmOnLoad` option (`data-fedcm-on-load`): 8,188 B (3,827 + 4,361), paid for by the
 * script tag reading its attributes as plain values rather than optional spreads.
 */
const BUDGET_BYTES = 8_190
/** The on-demand approval prompt, on its own (1,747 B once the code is typed rather than picked). */
const APPROVAL_BUDGET_BYTES = 1_800
/** The frame's session keeping, loaded by every signed-in frame (2,750 B measured; see above). */
const SESSION_BUDGET_BYTES = 2_900
/** The SDK's occasional parts (`passport-extras.mjs`, 759 B measured). */
const EXTRAS_BUDGET_BYTES = 800

const root = path.resolve(import.meta.dirname, '../..')
const outDir = mkdtempSync(path.join(tmpdir(), 'passport-size-'))
afterAll(() => rmSync(outDir, { recursive: true, force: true }))

async function gzippedSize(mode: 'sdk' | 'frame' | 'esm', file: string): Promise<number> {
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
  await gzippedSize('esm', 'passport.mjs')
  const onDemand = (file: string) => gzipSync(readFileSync(path.join(outDir, file)), { level: 9 }).length
  const approval = onDemand('frame-approval.js')
  const session = onDemand('frame-session.js')
  const extras = onDemand('passport-extras.mjs')
  console.info(
    `passport.js ${sdk} B + frame.js ${frame} B = ${sdk + frame} B gzip (budget ${BUDGET_BYTES}); ` +
      `on demand: frame-session.js ${session} B (a signed-in page: ${sdk + frame + session} B), ` +
      `frame-approval.js ${approval} B, passport-extras.mjs ${extras} B`,
  )
  expect(sdk).toBeGreaterThan(1000) // really built
  expect(frame).toBeGreaterThan(1000)
  expect(sdk + frame).toBeLessThanOrEqual(BUDGET_BYTES)
  expect(approval).toBeLessThanOrEqual(APPROVAL_BUDGET_BYTES)
  expect(session).toBeLessThanOrEqual(SESSION_BUDGET_BYTES)
  expect(extras).toBeLessThanOrEqual(EXTRAS_BUDGET_BYTES)
}, 60_000)
