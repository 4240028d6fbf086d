import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs'
import path from 'node:path'
import type { Logger } from '../errors.ts'

/**
 * JSON log lines appended to a file, written synchronously so that a reader (the e2e log
 * check) sees every line the moment it is logged. For the demo and tests; a production
 * passport logs to standard output and lets its supervisor keep the lines.
 */
export function fileLogger(file: string): Logger & { close(): void } {
  mkdirSync(path.dirname(file), { recursive: true })
  const fd = openSync(file, 'a', 0o600)
  const log = (event: string, fields?: Record<string, unknown>) => {
    writeSync(fd, `${JSON.stringify({ t: new Date().toISOString(), event, ...fields })}\n`)
  }
  return Object.assign(log, { close: () => closeSync(fd) })
}

/** Every line to each logger given. */
export function teeLogger(...logs: Logger[]): Logger {
  return (event, fields) => {
    for (const log of logs) log(event, fields)
  }
}
