/**
 * `query` on MariaDB: a small pool of its own, apart from the store's `SqlClient` pool, logged in
 * as a separate least-privilege account (`[mariadb] query_username`; SECURITY.md has the grants).
 * - The account is the real barrier: with SELECT on barto's database only (no FILE, no other
 *   schema, no DDL), a statement that slips past the lexical guard still cannot read server
 *   files, write, or look elsewhere. Its grants are checked at start; broader grants refuse to
 *   start, and without the account `query` is refused with the statements that create it.
 * - `SqlClient` connections drop mysql2's field list, so column order and duplicate column names
 *   (`SELECT a.id, b.id`) could not be reported; here every row comes as an array plus `fields`.
 * - An operator's slow statement never holds a connection that ingest needs.
 * - The pool allows no multi-statements; each session runs in UTC with a pinned `sql_mode` (no
 *   ANSI_QUOTES, no NO_BACKSLASH_ESCAPES: the guard lexes strings as the server then does), each
 *   statement inside `START TRANSACTION READ ONLY` under `max_statement_time`, then rolled back.
 * - A statement that is abandoned (time limit, row or byte cap, the CLI went away) is stopped on
 *   the server with `KILL QUERY` from a connection of its own: closing the socket alone leaves the
 *   server thread running (a `SLEEP(600)` would hold it for ten minutes).
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Mysql from "mysql2"
import type { QueryCaps, QueryResult } from "../../Store.js"
import { QueryRefused, StoreError } from "./errors.js"
import { mysqlDateTimeToRfc3339, renderCell, rowBytes } from "./render.js"

export interface MariadbQueryOptions {
  readonly host: string
  readonly port: number
  /** The store's own account: the query account must be another one. */
  readonly username: string
  readonly database: string
  readonly ssl?: Mysql.SslOptions | undefined
  /** The least-privilege account; absent = `query` is refused with instructions. */
  readonly queryUsername?: string | undefined
  readonly queryPassword?: Redacted.Redacted<string> | undefined
  /** Pool size: the most statements running at once (the store bounds callers to the same). */
  readonly concurrency: number
}

const TYPE_TIMESTAMP = 0x07
const TYPE_DATETIME = 0x0c
const TYPE_TIMESTAMP2 = 0x11
const TYPE_DATETIME2 = 0x12

/** The `sql_mode` of every query session: MariaDB's default minus anything that changes lexing. */
export const QUERY_SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"

/** An identifier as MariaDB quotes it. */
const quoteIdent = (name: string) => "`" + name.replace(/`/g, "``") + "`"
const quoteString = (text: string) => `'${text.replace(/\\/g, "\\\\").replace(/'/g, "''")}'`

/** What an operator runs to create the account (also quoted by the refusal). */
export const queryAccountRecipe = (database: string, user = "barto_query") =>
  `CREATE USER ${quoteString(user)}@'%' IDENTIFIED BY '<password>'; ` +
  `GRANT SELECT ON ${quoteIdent(database)}.* TO ${quoteString(user)}@'%';`

const run = (conn: Mysql.Connection, sql: string): Promise<void> =>
  new Promise((resolve, reject) => conn.query(sql, (err) => (err ? reject(err) : resolve())))

const rows = (conn: Mysql.Connection, sql: string): Promise<Array<Record<string, unknown>>> =>
  new Promise((resolve, reject) =>
    conn.query(sql, (err, result) => (err ? reject(err) : resolve(result as Array<Record<string, unknown>>)))
  )

const isServerError = (err: unknown): err is { sqlMessage: string; errno: number; fatal?: boolean } =>
  typeof err === "object" && err !== null && "sqlMessage" in err && (err as { fatal?: boolean }).fatal !== true

const describe = (err: unknown) =>
  isServerError(err) ? err.sqlMessage : err instanceof Error ? err.message : String(err)

// --- grants ----------------------------------------------------------------------------------

/** `` `a``b` `` → "a`b"; `\_` and `\%` (escaped wildcards in a database grant) → `_`, `%`. */
const unquote = (text: string): string => {
  const t = text.trim()
  const inner = t.startsWith("`") && t.endsWith("`") ? t.slice(1, -1).replace(/``/g, "`") : t
  return inner.replace(/\\([_%])/g, "$1")
}

/**
 * The lines of `SHOW GRANTS` that give more than SELECT on `database` (and the USAGE line every
 * account has); passwords hashes are blanked. Roles, proxies and GRANT OPTION count as more: what
 * they allow cannot be told from here.
 */
export const excessGrants = (grants: ReadonlyArray<string>, database: string): Array<string> =>
  grants.filter((line) => {
    const m = /^GRANT (.+?) ON (.+?) TO .+$/s.exec(line)
    if (m === null || /WITH\b.*\bGRANT OPTION/s.test(line)) return true
    const privileges = m[1]!.trim()
    const target = m[2]!.trim()
    if (privileges === "USAGE") return target !== "*.*"
    if (!/^SELECT(\s*\([^)]*\))?$/.test(privileges)) return true
    const dot = /^(`(?:[^`]|``)*`|[^.`]+)\.(.+)$/.exec(target)
    return dot === null || unquote(dot[1]!) !== database
  }).map((line) => line.replace(/PASSWORD '[^']*'/g, "PASSWORD '…'"))

// --- one statement -----------------------------------------------------------------------------

const select = (
  conn: Mysql.PoolConnection,
  sql: string,
  caps: QueryCaps
): Promise<QueryResult> =>
  new Promise((resolve, reject) => {
    let fields: ReadonlyArray<Mysql.FieldPacket> = []
    const out: Array<Array<string | null>> = []
    let bytes = 0
    let finished = false
    const q = conn.query({ sql, rowsAsArray: true })
    const toText = (row: ReadonlyArray<unknown>): Array<string | null> =>
      row.map((v, i) => {
        const t = fields[i]?.columnType
        if (
          typeof v === "string" &&
          (t === TYPE_DATETIME || t === TYPE_TIMESTAMP || t === TYPE_DATETIME2 || t === TYPE_TIMESTAMP2)
        ) {
          return mysqlDateTimeToRfc3339(v)
        }
        return renderCell(v)
      })
    const enough = () => {
      // Stop the transfer by dropping the connection; the caller kills the statement.
      finished = true
      conn.destroy()
      resolve({ columns: fields.map((f) => f.name), rows: out, truncated: true })
    }
    q.on("fields", (f: Array<Mysql.FieldPacket>) => {
      fields = f
    })
    q.on("result", (raw: unknown) => {
      if (finished) return
      if (out.length >= caps.rowCap) return enough()
      const row = toText(raw as ReadonlyArray<unknown>)
      bytes += rowBytes(row)
      if (bytes > caps.maxBytes) return enough()
      out.push(row)
    })
    q.on("error", (err: unknown) => {
      if (finished) return
      finished = true
      reject(err)
    })
    q.on("end", () => {
      if (finished) return
      finished = true
      resolve({ columns: fields.map((f) => f.name), rows: out, truncated: false })
    })
  })

interface Job {
  readonly result: Promise<QueryResult>
  /** Stops the statement on the server (if it runs) and drops its connection; resolves when done. */
  readonly abandon: () => Promise<void>
}

const start = (
  pool: Mysql.Pool,
  kill: (threadId: number) => Promise<void>,
  sql: string,
  caps: QueryCaps
): Job => {
  let conn: Mysql.PoolConnection | undefined
  let abandoned = false
  let running = false
  let done = false
  const result = (async () => {
    const c = await new Promise<Mysql.PoolConnection>((resolve, reject) =>
      pool.getConnection((err, got) => (err ? reject(err) : resolve(got)))
    )
    if (abandoned) {
      c.destroy()
      throw new Error("abandoned")
    }
    conn = c
    let keep = true
    try {
      await run(c, "SET SESSION time_zone = '+00:00'")
      await run(c, `SET SESSION sql_mode = '${QUERY_SQL_MODE}'`)
      await run(c, `SET SESSION max_statement_time = ${(Math.max(1, caps.timeoutMs) / 1000).toFixed(3)}`)
      await run(c, "START TRANSACTION READ ONLY")
      running = true
      const out = await select(c, sql, caps)
      running = false
      if (out.truncated) {
        keep = false
        // The rest of the result is not wanted: the server stops producing it.
        await kill(c.threadId ?? -1)
      } else {
        await run(c, "ROLLBACK")
      }
      return out
    } catch (err) {
      keep = false
      throw err
    } finally {
      running = false
      done = true
      // A connection in an unknown state (error mid-transaction, truncated transfer) is not reused.
      if (keep) c.release()
      else c.destroy()
    }
  })()
  return {
    result,
    abandon: async () => {
      abandoned = true
      const c = conn
      if (c === undefined || done) return
      const threadId = c.threadId
      c.destroy()
      if (running && threadId !== null) await kill(threadId)
    }
  }
}

export interface MariadbQueryRunner {
  readonly run: (sql: string, caps: QueryCaps) => Effect.Effect<QueryResult, StoreError | QueryRefused>
}

const poolOptions = (options: MariadbQueryOptions, user: string, password: Redacted.Redacted<string> | undefined) => ({
  host: options.host,
  port: options.port,
  user,
  ...(password !== undefined ? { password: Redacted.value(password) } : {}),
  database: options.database,
  ...(options.ssl !== undefined ? { ssl: options.ssl } : {}),
  multipleStatements: false,
  supportBigNumbers: true,
  bigNumberStrings: true,
  dateStrings: true,
  timezone: "Z",
  connectTimeout: 5000
})

/** One short-lived connection of the query account: the grants check and `KILL QUERY`. */
const withConnection = <A>(
  options: ReturnType<typeof poolOptions>,
  use: (conn: Mysql.Connection) => Promise<A>
): Promise<A> =>
  new Promise<Mysql.Connection>((resolve, reject) => {
    const conn = Mysql.createConnection(options)
    conn.connect((err) => (err ? (conn.destroy(), reject(err)) : resolve(conn)))
  }).then((conn) =>
    use(conn).finally(() =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => (conn.destroy(), resolve()), 1000)
        conn.end(() => (clearTimeout(timer), resolve()))
      })
    )
  )

const refusedWithoutAccount = (database: string) =>
  new QueryRefused({
    reason: "query on MariaDB runs as a separate read-only account and none is configured: set [mariadb] " +
      "query_username and query_password (or query_password_file), an account created with " +
      `${queryAccountRecipe(database)} (see SECURITY.md)`
  })

/**
 * The runner, after checking the account (scoped: the pool ends with the scope). Fails with a
 * `StoreError` when the account cannot log in, is the store's own account, or may do more than
 * SELECT on the database.
 */
export const makeMariadbQueryRunner = (
  options: MariadbQueryOptions
): Effect.Effect<MariadbQueryRunner, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const user = options.queryUsername
    if (user === undefined) {
      yield* Effect.logWarning(
        "no [mariadb] query_username: barto-cli query is refused until a read-only account is configured " +
          `(${queryAccountRecipe(options.database)} see SECURITY.md)`
      )
      return { run: () => Effect.fail(refusedWithoutAccount(options.database)) } satisfies MariadbQueryRunner
    }
    if (user === options.username) {
      return yield* new StoreError({
        message: `[mariadb] query_username must be an account of its own with SELECT only, not the store's '${user}'`
      })
    }
    const connectOptions = poolOptions(options, user, options.queryPassword)
    const grants = yield* Effect.tryPromise({
      try: () => withConnection(connectOptions, (conn) => rows(conn, "SHOW GRANTS")),
      catch: (cause) =>
        new StoreError({
          message: `cannot log in to MariaDB as the query account '${user}' ([mariadb] query_username): ${
            describe(cause)
          }`,
          cause
        })
    })
    const excess = excessGrants(grants.map((r) => String(Object.values(r)[0])), options.database)
    if (excess.length > 0) {
      return yield* new StoreError({
        message: `the query account '${user}' may do more than SELECT on ${quoteIdent(options.database)}: ` +
          `${excess.join("; ")}. Revoke it, or give query an account of its own: ` +
          `${queryAccountRecipe(options.database, user)} (see SECURITY.md)`
      })
    }
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => Mysql.createPool({ ...connectOptions, connectionLimit: options.concurrency, maxIdle: 0 })),
      (pool) => Effect.async<void>((resume) => pool.end(() => resume(Effect.void)))
    )
    // A failed KILL (the thread ended meanwhile, the server is gone) leaves nothing to do.
    const kill = (threadId: number) =>
      threadId < 0
        ? Promise.resolve()
        : withConnection(connectOptions, (conn) => run(conn, `KILL QUERY ${Math.floor(threadId)}`)).catch(() => {})
    return {
      run: (sql, caps) =>
        Effect.async<QueryResult, StoreError | QueryRefused>((resume) => {
          const job = start(pool, kill, sql, caps)
          job.result.then(
            (result) => resume(Effect.succeed(result)),
            (err: unknown) => {
              if (isServerError(err)) {
                resume(Effect.fail(
                  err.errno === 1969
                    ? new QueryRefused({ reason: `the statement exceeded the time limit of ${caps.timeoutMs} ms` })
                    : new QueryRefused({ reason: `the database rejected the statement: ${err.sqlMessage}` })
                ))
              } else {
                resume(Effect.fail(new StoreError({ message: `query: ${describe(err)}`, cause: err })))
              }
            }
          )
          // Interruption (the backstop below, a CLI that went away) waits for the kill, so the
          // caller's concurrency slot is free only once the server has stopped the statement.
          return Effect.promise(job.abandon)
        }).pipe(
          // The server enforces max_statement_time; this is the backstop for a dead link or a
          // statement the server does not interrupt.
          Effect.timeoutFail({
            duration: caps.timeoutMs + 2000,
            onTimeout: () =>
              new QueryRefused({ reason: `the statement exceeded the time limit of ${caps.timeoutMs} ms` })
          })
        )
    } satisfies MariadbQueryRunner
  })
