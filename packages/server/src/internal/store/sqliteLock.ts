/**
 * One bartos per SQLite file (issue 18): SQLite has no way to share a registry, a leader or a
 * command table between processes, so a second bartos on the same file is refused at start.
 *
 * The lock is SQLite's own: a side file `<db>.instance-lock` opened in `locking_mode = EXCLUSIVE`
 * and written once, so the connection keeps its exclusive file lock until it closes. The kernel
 * drops that lock when the process dies (kill -9 included), so a crashed bartos never leaves a
 * stale lock behind, unlike a pid file. The holder writes who it is to `<db>.instance-lock.owner`
 * (plain text) for the refusal message; that file is information only, never the lock.
 */
import Sqlite from "better-sqlite3"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Os from "node:os"
import { StoreError } from "./errors.js"

const ownerText = () => `pid ${process.pid} on ${Os.hostname()} since ${new Date().toISOString()}`

/** Holds the instance lock of `dbFile` for the scope; fails with a message naming the holder. */
export const acquire = (dbFile: string): Effect.Effect<void, StoreError, Scope.Scope> => {
  const lockFile = `${dbFile}.instance-lock`
  const ownerFile = `${lockFile}.owner`
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        const db = new Sqlite(lockFile, { timeout: 0 })
        try {
          db.pragma("locking_mode = EXCLUSIVE")
          db.exec("BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS holder (since TEXT); COMMIT")
        } catch (e) {
          db.close()
          throw e
        }
        Fs.writeFileSync(ownerFile, `${ownerText()}\n`)
        return db
      },
      catch: (cause) => {
        const code = (cause as { code?: unknown }).code
        if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
          let holder = "another process"
          try {
            holder = Fs.readFileSync(ownerFile, "utf8").trim() || holder
          } catch {
            // no owner file: the holder is older than this file or could not write it
          }
          return new StoreError({
            message:
              `sqlite.path ${dbFile}: another bartos already uses this database (${holder}; lock ${lockFile}). ` +
              "SQLite serves a single bartos instance: stop the other one, or give both a [mariadb] database " +
              "to run several instances (README, deployment)",
            cause
          })
        }
        return new StoreError({
          message: `sqlite.path ${dbFile}: cannot take the instance lock ${lockFile}: ${String(cause)}`,
          cause
        })
      }
    }),
    (db) =>
      Effect.sync(() => {
        try {
          Fs.rmSync(ownerFile, { force: true })
        } catch {
          // best effort: a leftover owner file is only information
        }
        db.close()
      })
  ).pipe(Effect.asVoid)
}
