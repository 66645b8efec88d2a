/**
 * The few better-sqlite3 calls the outbox needs, typed locally: the workspace has no
 * `@types/better-sqlite3` and we may not add dependencies. better-sqlite3 is synchronous, which
 * is what we want here: an append is one short transaction, durable when it returns.
 */
import { createRequire } from "node:module"

export interface RunResult {
  readonly changes: number
  readonly lastInsertRowid: number | bigint
}

export interface Statement {
  run(...params: ReadonlyArray<unknown>): RunResult
  get(...params: ReadonlyArray<unknown>): unknown
  all(...params: ReadonlyArray<unknown>): Array<unknown>
}

export interface Database {
  prepare(sql: string): Statement
  exec(sql: string): void
  pragma(source: string, options?: { readonly simple?: boolean }): unknown
  transaction<Args extends Array<unknown>, R>(fn: (...args: Args) => R): (...args: Args) => R
  close(): void
  readonly open: boolean
}

interface DatabaseConstructor {
  new(filename: string, options?: { readonly timeout?: number }): Database
}

const require = createRequire(import.meta.url)

let ctor: DatabaseConstructor | undefined

/** Opens (creating if needed) a database file; throws like better-sqlite3 does. */
export const open = (filename: string): Database => {
  if (ctor === undefined) ctor = require("better-sqlite3") as DatabaseConstructor
  return new ctor(filename, { timeout: 5000 })
}
