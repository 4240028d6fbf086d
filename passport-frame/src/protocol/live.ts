/**
 * The live channel's wire: a WebSocket from the frame to the passport's `/live`, one per site
 * per browser. Both ends import this file, so the names, close codes and message shapes are
 * written once.
 *
 * Opening it: `GET /live?site=<id>[&last_event_id=<n>]` with the sub-protocol
 * `LIVE_PROTOCOL` and the passport's own `Origin` (403 otherwise). The server's first message
 * is a `challenge`; the frame answers with `auth` within `LIVE_AUTH_TIMEOUT_MS`: its site
 * token and a DPoP proof (RFC 9449 shape) by its key over the challenge (`nonce`), the token
 * (`ath`), `htm: 'GET'` and `htu` = the socket's URL without its query. Anything else closes
 * the socket with `CLOSE_UNAUTHENTICATED`; no request is made to open it.
 */
export const LIVE_PROTOCOL = 'passport.v2'
export const LIVE_PATH = '/live'
/** How long the server waits for `auth` after its challenge. */
export const LIVE_AUTH_TIMEOUT_MS = 5_000
/** The `auth` message carries a token and a proof: larger than any later message may be. */
export const LIVE_AUTH_MAX_BYTES = 4096

/** The session (or this site's access on it) ended: the socket is closed after saying so. */
export const CLOSE_SESSION_ENDED = 4000
/** No valid `auth` in time: the frame re-checks its token (it may have ended) before retrying. */
export const CLOSE_UNAUTHENTICATED = 4401
/** Too many messages, or too many connections of this user. */
export const CLOSE_RATE_LIMITED = 1008

/** Server -> frame, first on every socket. */
export type LiveChallenge = { type: 'challenge'; nonce: string }
/** Frame -> server, the answer to the challenge. */
export type LiveAuth = { type: 'auth'; token: string; proof: string }
/** Server -> frame once authenticated: where the event log stands now. */
export type LiveWelcome = { type: 'welcome'; last_event_id: number }
/**
 * Server -> frame: refresh the site's token now (the monitoring terminal's "Refresh now", or the
 * site backend's `POST /token/refresh-request`). The frame refreshes through its usual
 * proof-bound path, at most once per forced-refresh interval: the message grants nothing.
 */
export type LiveRefreshNow = { type: 'refresh_now'; request_id: string }
