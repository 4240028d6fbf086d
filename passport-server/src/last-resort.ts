import type { Logger } from './errors.ts'

/**
 * The last resort for a promise rejection nobody handled (a bug in a background job, a bus
 * handler): Node's default ends the process, signing out nobody but refusing everybody. It is
 * logged, without the error's detail beyond its name and message, and the server keeps
 * serving: every request has its own error handler, and all security state is in the store,
 * so an abandoned promise leaves nothing half-decided in memory (attack I5).
 */
export function installLastResortHandler(proc: Pick<NodeJS.Process, 'on'>, log: Logger): void {
  proc.on('unhandledRejection', (reason: unknown) => {
    const err = reason instanceof Error ? reason : new Error(String(reason))
    log('unhandled_rejection', { name: err.name, message: err.message.slice(0, 200) })
  })
}
