/**
 * `query` on SQLite: the statement runs in a short-lived child process that opens the database
 * file read-only. Why a process and not the store's connection or a worker thread:
 * - better-sqlite3 is synchronous and has no interrupt, so a slow statement on the store's
 *   connection would freeze bartos (every agent link) for its whole duration;
 * - a worker thread cannot be stopped while SQLite runs native code (measured: `terminate()` never
 *   returned for a runaway recursive CTE, and the process could not exit), a process can be killed;
 * - a separate read-only connection makes writes impossible whatever the text says, and
 *   better-sqlite3 reports the column list (duplicates and order intact) and `statement.readonly`.
 * Start-up costs ~80 ms per query, fine for an operator command.
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import { createRequire } from "node:module"
import type { QueryCaps, QueryResult } from "../../Store.js"
import { QueryRefused, StoreError } from "./errors.js"

// Runs in the child (CommonJS, `node -e`). Cells are rendered to text there so that only strings
// cross the IPC channel (Buffers and bigints would not survive it).
const childProgram = `
process.once("message", (job) => {
  const reply = (msg) => process.send(msg, () => process.exit(0))
  let db
  try {
    const Database = require(job.driver)
    db = new Database(job.filename, { readonly: true, fileMustExist: true })
    db.pragma("query_only = ON")
  } catch (e) {
    return reply({ kind: "store", message: String(e && e.message || e) })
  }
  let st
  try {
    st = db.prepare(job.sql)
  } catch (e) {
    return reply({ kind: "refused", message: "the database rejected the statement: " + String(e && e.message || e) })
  }
  if (!st.reader) return reply({ kind: "refused", message: "the statement returns no rows" })
  if (!st.readonly) return reply({ kind: "refused", message: "not a read-only statement (SQLite says it writes)" })
  const render = (v) => {
    if (v === null || v === undefined) return null
    if (typeof v === "string") return v
    if (typeof v === "bigint") return v.toString()
    if (typeof v === "number") {
      const s = String(v)
      if (!/e/i.test(s)) return s
      return Number.isInteger(v) ? BigInt(v).toString() : v.toFixed(20).replace(/0+$/, "").replace(/\\.$/, "")
    }
    if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex")
    return String(v)
  }
  try {
    const columns = st.columns().map((c) => c.name)
    st.raw(true)
    st.safeIntegers(true)
    const rows = []
    let truncated = false
    let bytes = 0
    // Bytes counted as render.ts rowBytes does.
    for (const row of st.iterate()) {
      if (rows.length >= job.rowCap) { truncated = true; break }
      const cells = row.map(render)
      bytes += 2
      for (const c of cells) bytes += c === null ? 5 : Buffer.byteLength(c, "utf8") + 3
      if (bytes > job.maxBytes) { truncated = true; break }
      rows.push(cells)
    }
    reply({ kind: "ok", columns, rows, truncated })
  } catch (e) {
    reply({ kind: "refused", message: "the database rejected the statement: " + String(e && e.message || e) })
  }
})
`

type ChildReply =
  | {
    readonly kind: "ok"
    readonly columns: Array<string>
    readonly rows: Array<Array<string | null>>
    readonly truncated: boolean
  }
  | { readonly kind: "store" | "refused"; readonly message: string }

const driverPath = (): string => createRequire(import.meta.url).resolve("better-sqlite3")

export const runSqliteQuery = (
  filename: string,
  sql: string,
  caps: QueryCaps
): Effect.Effect<QueryResult, StoreError | QueryRefused> =>
  Effect.async<QueryResult, StoreError | QueryRefused>((resume) => {
    let settled = false
    let stderr = ""
    // eslint-disable-next-line prefer-const -- settle() may run (the catch below) before the timer exists
    let timer: ReturnType<typeof setTimeout> | undefined
    const settle = (effect: Effect.Effect<QueryResult, StoreError | QueryRefused>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resume(effect)
    }
    let child: ChildProcess.ChildProcess
    try {
      // An empty environment: the child needs nothing from ours (and never sees our secrets).
      child = ChildProcess.spawn(process.execPath, ["-e", childProgram], {
        stdio: ["ignore", "ignore", "pipe", "ipc"],
        env: {}
      })
    } catch (cause) {
      settle(Effect.fail(new StoreError({ message: `query: cannot start the query process: ${String(cause)}`, cause })))
      return
    }
    timer = setTimeout(() => {
      child.kill("SIGKILL")
      settle(Effect.fail(new QueryRefused({ reason: `the statement exceeded the time limit of ${caps.timeoutMs} ms` })))
    }, caps.timeoutMs)
    child.stderr?.on("data", (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString("utf8")
    })
    child.on("message", (msg: ChildReply) => {
      if (msg.kind === "ok") settle(Effect.succeed({ columns: msg.columns, rows: msg.rows, truncated: msg.truncated }))
      else if (msg.kind === "refused") settle(Effect.fail(new QueryRefused({ reason: msg.message })))
      else settle(Effect.fail(new StoreError({ message: `query: ${msg.message}` })))
    })
    child.on(
      "error",
      (cause) =>
        settle(Effect.fail(new StoreError({ message: `query: query process failed: ${cause.message}`, cause })))
    )
    child.on("exit", (code, signal) =>
      settle(Effect.fail(
        new StoreError({
          message: `query: query process ended without an answer (code ${code}, signal ${signal})${
            stderr === "" ? "" : `: ${stderr.trim()}`
          }`
        })
      )))
    child.send({ driver: driverPath(), filename, sql, rowCap: caps.rowCap, maxBytes: caps.maxBytes })
    return Effect.sync(() => {
      clearTimeout(timer)
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    })
  })
