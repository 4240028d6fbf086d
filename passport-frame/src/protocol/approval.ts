/**
 * What a signed-in device is shown of a "sign in with another device" request (and of a CIBA
 * request): one description for the server, which builds it, and the frame, which parses it
 * off the live channel (snake_case on the wire) and draws it.
 */
export interface ApprovalPrompt {
  id: string
  /** The site the new device wants (for CIBA: the client). */
  siteName: string
  /** The new device's browser, as it described itself. */
  device: string
  /** The address the request came from (the TCP peer; a proxy's own address behind one). */
  address: string
  // Never the code, nor numbers to choose from: the user types what the new device shows.
  /** CIBA's binding message, if the client sent one. */
  bindingMessage: string | null
  /** Server time (ms). */
  expiresAt: number
}
