/**
 * The embedded store (SQLite). Each repository is a file of its own under `sqlite/`; this is the
 * entry the rest of the server opens it by.
 */
export { openSqliteStore } from './sqlite/index.ts'
