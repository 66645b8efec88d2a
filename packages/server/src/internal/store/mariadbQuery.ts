/**
 * `query` on MariaDB: a small pool of its own, apart from the store's `SqlClient` pool.
 * - `SqlClient` connections drop mysql2's field list, so column order and duplicate column names
 *   (`SELECT a.id, b.id`) could not be reported; here every row comes as an array plus `fields`;
 * - an operator's slow statement never holds a connection that ingest needs;
 * - the pool allows no multi-statements, the session runs in UTC, each statement runs inside
 *   `START TRANSACTION READ ONLY` under `max_statement_time`, then is rolled back.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Mysql from "mysql2"
import type { QueryResult } from "../../Store.js"
import { QueryRefused, StoreError } from "./errors.js"
import { mysqlDateTimeToRfc3339, renderCell } from "./render.js"

export interface MariadbQueryOptions {
  readonly host: string
  readonly port: number
  readonly username: string
  readonly password?: Redacted.Redacted<string> | undefined
  readonly database: string
  readonly ssl?: Mysql.SslOptions | undefined
}

const TYPE_TIMESTAMP = 0x07
const TYPE_DATETIME = 0x0c
const TYPE_TIMESTAMP2 = 0x11
const TYPE_DATETIME2 = 0x12

const run = (conn: Mysql.PoolConnection, sql: string): Promise<void> =>
  new Promise((resolve, reject) => conn.query(sql, (err) => (err ? reject(err) : resolve())))

const isServerError = (err: unknown): err is { sqlMessage: string; errno: number; fatal?: boolean } =>
  typeof err === "object" && err !== null && "sqlMessage" in err && (err as { fatal?: boolean }).fatal !== true

const select = (
  conn: Mysql.PoolConnection,
  sql: string,
  rowCap: number
): Promise<QueryResult> =>
  new Promise((resolve, reject) => {
    let fields: ReadonlyArray<Mysql.FieldPacket> = []
    const rows: Array<Array<string | null>> = []
    let finished = false
    const q = conn.query({ sql, rowsAsArray: true })
    const toText = (row: ReadonlyArray<unknown>): Array<string | null> =>
      row.map((v, i) => {
        const t = fields[i]?.columnType
        if (typeof v === "string" && (t === TYPE_DATETIME || t === TYPE_TIMESTAMP || t === TYPE_DATETIME2 || t === TYPE_TIMESTAMP2)) {
          return mysqlDateTimeToRfc3339(v)
        }
        return renderCell(v)
      })
    q.on("fields", (f: Array<Mysql.FieldPacket>) => {
      fields = f
    })
    q.on("result", (row: unknown) => {
      if (finished) return
      if (rows.length >= rowCap) {
        // Enough: stop the transfer by dropping the connection (the pool makes a new one).
        finished = true
        conn.destroy()
        resolve({ columns: fields.map((f) => f.name), rows, truncated: true })
        return
      }
      rows.push(toText(row as ReadonlyArray<unknown>))
    })
    q.on("error", (err: unknown) => {
      if (finished) return
      finished = true
      reject(err)
    })
    q.on("end", () => {
      if (finished) return
      finished = true
      resolve({ columns: fields.map((f) => f.name), rows, truncated: false })
    })
  })

const runQuery = async (
  pool: Mysql.Pool,
  sql: string,
  rowCap: number,
  timeoutMs: number,
  signal: AbortSignal
): Promise<QueryResult> => {
  const conn = await new Promise<Mysql.PoolConnection>((resolve, reject) =>
    pool.getConnection((err, c) => (err ? reject(err) : resolve(c)))
  )
  const onAbort = () => conn.destroy()
  signal.addEventListener("abort", onAbort, { once: true })
  let keep = true
  try {
    await run(conn, "SET SESSION time_zone = '+00:00'")
    await run(conn, `SET SESSION max_statement_time = ${(Math.max(1, timeoutMs) / 1000).toFixed(3)}`)
    await run(conn, "START TRANSACTION READ ONLY")
    const result = await select(conn, sql, rowCap)
    if (result.truncated) keep = false
    else await run(conn, "ROLLBACK")
    return result
  } catch (err) {
    keep = false
    throw err
  } finally {
    signal.removeEventListener("abort", onAbort)
    // A connection in an unknown state (error mid-transaction, truncated transfer) is not reused.
    if (keep) conn.release()
    else conn.destroy()
  }
}

export interface MariadbQueryRunner {
  readonly run: (sql: string, rowCap: number, timeoutMs: number) => Effect.Effect<QueryResult, StoreError | QueryRefused>
}

export const makeMariadbQueryRunner = (options: MariadbQueryOptions): Effect.Effect<MariadbQueryRunner, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() =>
        Mysql.createPool({
          host: options.host,
          port: options.port,
          user: options.username,
          ...(options.password !== undefined ? { password: Redacted.value(options.password) } : {}),
          database: options.database,
          ...(options.ssl !== undefined ? { ssl: options.ssl } : {}),
          connectionLimit: 2,
          maxIdle: 0,
          multipleStatements: false,
          supportBigNumbers: true,
          bigNumberStrings: true,
          dateStrings: true,
          timezone: "Z",
          connectTimeout: 5000
        })
      ),
      (pool) => Effect.async<void>((resume) => pool.end(() => resume(Effect.void)))
    ),
    (pool): MariadbQueryRunner => ({
      run: (sql, rowCap, timeoutMs) =>
        Effect.tryPromise({
          try: (signal) => runQuery(pool, sql, rowCap, timeoutMs, signal),
          catch: (err): StoreError | QueryRefused => {
            if (isServerError(err)) {
              if (err.errno === 1969) {
                return new QueryRefused({ reason: `the statement exceeded the time limit of ${timeoutMs} ms` })
              }
              return new QueryRefused({ reason: `the database rejected the statement: ${err.sqlMessage}` })
            }
            return new StoreError({ message: `query: ${err instanceof Error ? err.message : String(err)}`, cause: err })
          }
        }).pipe(
          // The server enforces max_statement_time; this is the backstop for a dead link. The
          // interruption aborts the signal, which destroys the connection.
          Effect.timeoutFail({
            duration: timeoutMs + 2000,
            onTimeout: () => new QueryRefused({ reason: `the statement exceeded the time limit of ${timeoutMs} ms` })
          })
        )
    })
  )
