import net from 'node:net'

/**
 * Malformed traffic over real TCP, a bounded set of cases, each followed by a normal request
 * that must still be answered (@see issue 14: one upgrade to `//[` used to end the process).
 * Used by `server.fuzz.test.ts` and by `npm run fuzz` (scripts/fuzz.ts).
 */

export interface FuzzTarget {
  host: string
  port: number
  /** The passport's public origin: sent as `Origin` where a case wants to pass that check. */
  origin: string
}

export interface FuzzCase {
  name: string
  /** Sends the case; resolves with what came back (a status line, "closed", "no answer"). */
  send(target: FuzzTarget): Promise<string>
}

export interface FuzzResult {
  name: string
  reply: string
  /** Whether the passport answered the normal request after this case. */
  answered: boolean
}

/** Longest a case waits for an answer; a server that keeps the socket open is fine. */
const CASE_TIMEOUT_MS = 1_500
const CRLF = '\r\n'

/**
 * Opens a socket, writes `chunks` (a pause of `gapMs` between them), and resolves with the first
 * line the server sends back (adding "still open" if it had to wait for the close and it did not
 * come), or how the socket ended. `afterSend` runs on the open socket after the
 * last chunk (for a reset, or frames after an upgrade) before the answer is awaited.
 */
function exchange(
  target: FuzzTarget,
  chunks: (string | Buffer)[],
  options: {
    gapMs?: number
    afterSend?: (socket: net.Socket) => void
    timeoutMs?: number
    /** Wait for the server to close the socket, rather than only for its first line. */
    untilClosed?: boolean
  } = {},
): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(target.port, target.host)
    let received = ''
    let settled = false
    const finish = (outcome: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(outcome)
    }
    const firstLine = () => received.split(CRLF)[0]?.slice(0, 80) ?? ''
    const timer = setTimeout(
      () => finish(received ? `${firstLine()} (still open)` : 'no answer (still open)'),
      options.timeoutMs ?? CASE_TIMEOUT_MS,
    )
    socket.on('data', (data) => {
      received += data.toString('latin1')
      if (!options.untilClosed && received.includes(CRLF)) finish(firstLine())
    })
    socket.on('error', (err: NodeJS.ErrnoException) =>
      finish(received ? firstLine() : `closed (${err.code})`),
    )
    socket.on('close', () => finish(received ? firstLine() : 'closed'))
    socket.on('connect', async () => {
      for (const [i, chunk] of chunks.entries()) {
        if (socket.destroyed) return
        if (i > 0 && options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs))
        socket.write(chunk)
      }
      options.afterSend?.(socket)
    })
  })
}

const request = (lines: string[], body = '') => `${lines.join(CRLF)}${CRLF}${CRLF}${body}`
const send = (name: string, text: string | Buffer): FuzzCase => ({
  name,
  send: (target) => exchange(target, [text]),
})

const upgradeHeaders = (path: string, origin: string, extra: string[] = []) => [
  `GET ${path} HTTP/1.1`,
  'Host: passport',
  'Upgrade: websocket',
  'Connection: Upgrade',
  'Sec-WebSocket-Version: 13',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  `Origin: ${origin}`,
  ...extra,
]
const LIVE = '/live?site=fuzz&last_event_id=0'
const LIVE_PROTOCOL_HEADER = 'Sec-WebSocket-Protocol: passport.v2'
const upgradeCase = (name: string, path: (t: FuzzTarget) => string, extra: string[] = []): FuzzCase => ({
  name,
  send: (target) => exchange(target, [request(upgradeHeaders(path(target), target.origin, extra))]),
})

/** A WebSocket frame as a client would send it, with the knobs a broken client turns. */
export function wsFrame(input: {
  opcode: number
  payload?: Buffer
  fin?: boolean
  rsv?: number
  masked?: boolean
  /** Declared length instead of the payload's (a lie). */
  declaredLength?: bigint
}): Buffer {
  const payload = input.payload ?? Buffer.alloc(0)
  const length = input.declaredLength ?? BigInt(payload.length)
  const first = ((input.fin ?? true) ? 0x80 : 0) | ((input.rsv ?? 0) << 4) | input.opcode
  const maskBit = (input.masked ?? true) ? 0x80 : 0
  let head: Buffer
  if (length < 126n) head = Buffer.from([first, maskBit | Number(length)])
  else if (length < 65536n) {
    head = Buffer.alloc(4)
    head.writeUInt8(first, 0)
    head.writeUInt8(maskBit | 126, 1)
    head.writeUInt16BE(Number(length), 2)
  } else {
    head = Buffer.alloc(10)
    head.writeUInt8(first, 0)
    head.writeUInt8(maskBit | 127, 1)
    head.writeBigUInt64BE(length, 2)
  }
  if (!(input.masked ?? true)) return Buffer.concat([head, payload])
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78])
  const body = Buffer.from(payload.map((byte, i) => byte ^ (mask[i % 4] as number)))
  return Buffer.concat([head, mask, body])
}

/**
 * An upgrade to the live path with the passport's own `Origin`, an answer to its challenge with
 * a made-up credential, then at once `frames`: whether the answer is refused (a real passport)
 * or accepted (a live server that takes any), the frames must cost that socket at most.
 */
const framesAfterUpgrade = (name: string, frames: Buffer[]): FuzzCase => ({
  name: `WebSocket: ${name}`,
  send: (target) =>
    exchange(
      target,
      [
        request(upgradeHeaders(LIVE, target.origin, [LIVE_PROTOCOL_HEADER])),
        wsFrame({ opcode: 0x1, payload: text('{"type":"auth","token":"fuzz","proof":"fuzz"}') }),
        ...frames,
      ],
      { untilClosed: true },
    ),
})

const text = (s: string) => Buffer.from(s, 'utf8')

export const FUZZ_CASES: FuzzCase[] = [
  // Request lines and targets.
  send('garbage request line', 'HELLO THERE\r\n\r\n'),
  send('binary junk', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a])),
  send('method only', 'GET\r\n\r\n'),
  send('unknown HTTP version', request(['GET / HTTP/9.9', 'Host: passport'])),
  send('target //[', request(['GET //[ HTTP/1.1', 'Host: passport'])),
  send('target http://[', request(['GET http://[ HTTP/1.1', 'Host: passport'])),
  send('target with %zz', request(['GET /%zz?%zz=%zz HTTP/1.1', 'Host: passport'])),
  send('target *', request(['OPTIONS * HTTP/1.1', 'Host: passport'])),
  send('dot-dot target', request(['GET /..%2f..%2f..%2fetc%2fpasswd HTTP/1.1', 'Host: passport'])),
  send('NUL in target', request(['GET /\u0000 HTTP/1.1', 'Host: passport'])),
  send('10 KB target', request([`GET /${'a'.repeat(10_000)} HTTP/1.1`, 'Host: passport'])),
  send('bad Host', request(['GET / HTTP/1.1', 'Host: ['])),
  // Headers.
  send('20 KB header', request(['GET / HTTP/1.1', 'Host: passport', `X-Big: ${'b'.repeat(20_000)}`])),
  send(
    '3000 headers',
    request(['GET / HTTP/1.1', 'Host: passport', ...Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`)]),
  ),
  send('duplicate Host', request(['GET / HTTP/1.1', 'Host: a', 'Host: b'])),
  send(
    'duplicate Content-Length',
    request(
      ['POST /token/introspect HTTP/1.1', 'Host: passport', 'Content-Length: 2', 'Content-Length: 5'],
      '{}',
    ),
  ),
  send('header without colon', request(['GET / HTTP/1.1', 'Host: passport', 'NoColonHere'])),
  send('header name with space', request(['GET / HTTP/1.1', 'Host: passport', 'Bad Name: x'])),
  // Bodies and framing.
  send(
    'Content-Length with Transfer-Encoding',
    request(
      [
        'POST /token/introspect HTTP/1.1',
        'Host: passport',
        'Content-Length: 10',
        'Transfer-Encoding: chunked',
      ],
      '0\r\n\r\n',
    ),
  ),
  send(
    'bad chunk size',
    request(
      ['POST /token/introspect HTTP/1.1', 'Host: passport', 'Transfer-Encoding: chunked'],
      'zz\r\nab\r\n',
    ),
  ),
  send(
    'negative Content-Length',
    request(['POST /api/frame/token HTTP/1.1', 'Host: passport', 'Content-Length: -1']),
  ),
  send(
    'malformed JSON',
    request(
      [
        'POST /api/frame/token HTTP/1.1',
        'Host: passport',
        'Content-Type: application/json',
        'Content-Length: 9',
      ],
      '{"a":NaN,',
    ),
  ),
  send(
    '1 MB declared body',
    request(
      ['POST /api/frame/token HTTP/1.1', 'Host: passport', 'Content-Length: 1048576'],
      'x'.repeat(1000),
    ),
  ),
  // Upgrades.
  upgradeCase('upgrade to //[', () => '//['),
  upgradeCase('upgrade to http://[', () => 'http://['),
  upgradeCase('upgrade to /live?%zz', () => '/live?%zz=%zz&ticket=%zz'),
  upgradeCase('upgrade to an unknown path', () => '/nowhere'),
  upgradeCase('upgrade with a bad last_event_id', () => '/live?ticket=a&site=b&last_event_id=1e999', [
    'Sec-WebSocket-Protocol: passport.v1, code.x',
  ]),
  upgradeCase('upgrade with a junk protocol list', () => LIVE, [
    `Sec-WebSocket-Protocol: ${',;'.repeat(500)}`,
  ]),
  upgradeCase('upgrade with two Origins', () => LIVE, ['Origin: http://evil.localhost']),
  send(
    'upgrade to h2c',
    request(['GET / HTTP/1.1', 'Host: passport', 'Upgrade: h2c', 'Connection: Upgrade, HTTP2-Settings']),
  ),
  send(
    'upgrade with no key or version',
    request(['GET /live HTTP/1.1', 'Host: passport', 'Upgrade: websocket', 'Connection: Upgrade']),
  ),
  {
    name: 'upgrade reset while it is being checked',
    send: (target) =>
      exchange(target, [request(upgradeHeaders(LIVE, target.origin, [LIVE_PROTOCOL_HEADER]))], {
        afterSend: (socket) => socket.resetAndDestroy(),
      }),
  },
  // Half-open and slow connections.
  {
    name: 'connect and close at once',
    send: (target) => exchange(target, [], { afterSend: (s) => s.end() }),
  },
  {
    name: 'half a request, then a reset',
    send: (target) => exchange(target, ['GET / HTTP/1.1\r\nHo'], { afterSend: (s) => s.resetAndDestroy() }),
  },
  {
    name: 'half a request, then the write side closed',
    send: (target) =>
      exchange(target, ['POST /api/frame/token HTTP/1.1\r\nContent-Length: 50\r\n\r\n{'], {
        afterSend: (s) => s.end(),
      }),
  },
  {
    name: 'a form body cut short, then the write side closed',
    send: (target) =>
      exchange(
        target,
        [
          request(
            [
              'POST /login HTTP/1.1',
              'Host: passport',
              `Origin: ${target.origin}`,
              'Content-Type: application/x-www-form-urlencoded',
              'Content-Length: 100',
            ],
            'username=alice&pass',
          ),
        ],
        { afterSend: (s) => s.end() },
      ),
  },
  {
    name: 'slow headers (a byte every 50 ms for 1 s)',
    send: (target) =>
      exchange(target, [...'GET / HTTP/1.1\r\nX-Slow: abcdef'], { gapMs: 50, timeoutMs: 2_000 }),
  },
  {
    name: 'slowloris: 50 sockets holding half a request while a normal one is made',
    send: async (target) => {
      const held = Array.from({ length: 50 }, () => {
        const socket = net.connect(target.port, target.host, () => socket.write('GET / HTTP/1.1\r\nX-A: '))
        socket.on('error', () => {})
        return socket
      })
      await new Promise((r) => setTimeout(r, 200))
      const answered = await stillAnswers(target)
      for (const socket of held) socket.destroy()
      return answered
        ? 'a normal request was answered meanwhile'
        : 'a normal request was NOT answered meanwhile'
    },
  },
  // Invalid WebSocket frames, right after the upgrade.
  framesAfterUpgrade('unmasked text frame', [wsFrame({ opcode: 0x1, payload: text('hi'), masked: false })]),
  framesAfterUpgrade('reserved opcode', [wsFrame({ opcode: 0x3, payload: text('x') })]),
  framesAfterUpgrade('RSV1 without an extension', [wsFrame({ opcode: 0x1, rsv: 4, payload: text('x') })]),
  framesAfterUpgrade('ping over 125 bytes', [wsFrame({ opcode: 0x9, payload: Buffer.alloc(126) })]),
  framesAfterUpgrade('fragmented ping', [wsFrame({ opcode: 0x9, fin: false, payload: text('x') })]),
  framesAfterUpgrade('invalid UTF-8 text', [wsFrame({ opcode: 0x1, payload: Buffer.from([0xc3, 0x28]) })]),
  framesAfterUpgrade('declared length 2^63-1', [wsFrame({ opcode: 0x2, declaredLength: 2n ** 63n - 1n })]),
  framesAfterUpgrade('close with code 999', [wsFrame({ opcode: 0x8, payload: Buffer.from([0x03, 0xe7]) })]),
  framesAfterUpgrade('continuation without a start', [wsFrame({ opcode: 0x0, payload: text('x') })]),
  framesAfterUpgrade('10 KB message', [wsFrame({ opcode: 0x1, payload: Buffer.alloc(10_240, 0x61) })]),
  framesAfterUpgrade('JSON that is no message', [
    wsFrame({ opcode: 0x1, payload: text('{"type":[[[[[]]]]]}') }),
  ]),
  framesAfterUpgrade('garbage bytes', [Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x02])]),
]

/** A normal request: does the passport still answer? */
export async function stillAnswers(target: FuzzTarget): Promise<boolean> {
  try {
    const res = await fetch(`http://${target.host}:${target.port}/.well-known/openid-configuration`, {
      signal: AbortSignal.timeout(3_000),
    })
    await res.arrayBuffer()
    return res.status === 200
  } catch {
    return false
  }
}

/** Sends every case in turn, checking after each that the passport answers; stops at the first that it does not. */
export async function runFuzz(
  target: FuzzTarget,
  onResult: (result: FuzzResult) => void = () => {},
  cases: FuzzCase[] = FUZZ_CASES,
): Promise<FuzzResult[]> {
  const results: FuzzResult[] = []
  for (const fuzzCase of cases) {
    const reply = await fuzzCase.send(target)
    const result = { name: fuzzCase.name, reply, answered: await stillAnswers(target) }
    results.push(result)
    onResult(result)
    if (!result.answered) break
  }
  return results
}
