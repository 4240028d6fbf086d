import type { ManagementOptions } from './management.ts'

/** The management listener's default port (the Prometheus exporter convention's 9464). */
export const DEFAULT_MANAGEMENT_PORT = 9464

/**
 * The management listener's settings from the environment (`main.ts`, the demo, the CLI):
 * `PASSPORT_MANAGEMENT_HOST` (default 127.0.0.1), `PASSPORT_MANAGEMENT_PORT` (default 9464;
 * `off` for none) and `PASSPORT_METRICS_TOKEN` (the bearer it requires; default none). Null
 * when it is off. Throws on a port that is not one.
 */
export function managementFromEnv(env: Record<string, string | undefined>): ManagementOptions | null {
  const rawPort = env.PASSPORT_MANAGEMENT_PORT ?? String(DEFAULT_MANAGEMENT_PORT)
  if (rawPort === 'off') return null
  const port = Number(rawPort)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PASSPORT_MANAGEMENT_PORT must be a port number or off, got ${rawPort}`)
  }
  const token = env.PASSPORT_METRICS_TOKEN ?? ''
  if (token !== '' && token.length < 16)
    throw new Error('PASSPORT_METRICS_TOKEN needs at least 16 characters')
  return { host: env.PASSPORT_MANAGEMENT_HOST ?? '127.0.0.1', port, token }
}
