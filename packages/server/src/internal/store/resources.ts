/**
 * What each backend needs before the store can be made: the `SqlClient` layer and the options of
 * `make` (kind, location without secrets, the `query` sandbox). `Store.ts` composes them.
 */
import * as MysqlClient from "@effect/sql-mysql2/MysqlClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { StoreError } from "./errors.js"
import type { MakeOptions } from "./make.js"
import { makeMariadbQueryRunner } from "./mariadbQuery.js"
import * as SqliteClient from "./sqliteClient.js"
import * as SqliteLock from "./sqliteLock.js"
import { runSqliteQuery } from "./sqliteQuery.js"

export interface Resources {
  /** On SQLite it also provides `SqliteDirect`, which `make` picks up for ingest. */
  readonly client: Layer.Layer<SqlClient.SqlClient, StoreError>
  readonly options: MakeOptions
}

const describe = (e: unknown): string => {
  const cause = (e as { cause?: { message?: unknown } }).cause
  if (typeof cause?.message === "string") return cause.message
  return e instanceof Error ? e.message : String(e)
}

/** Default of `[limits] query_concurrency`. */
export const QUERY_CONCURRENCY = 2

export const sqlite = (
  options: { readonly filename: string; readonly queryConcurrency?: number | undefined }
): Effect.Effect<Resources, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const ephemeral = options.filename === ":memory:"
    const file = ephemeral
      ? yield* Effect.acquireRelease(
        Effect.try({
          try: () => Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "barto-store-")), "store.db"),
          catch: (cause) => new StoreError({ message: `cannot create a temporary database: ${describe(cause)}`, cause })
        }),
        (file) => Effect.sync(() => Fs.rmSync(Path.dirname(file), { recursive: true, force: true }))
      )
      : Path.resolve(options.filename)
    if (!ephemeral) {
      yield* Effect.try({
        try: () => Fs.mkdirSync(Path.dirname(file), { recursive: true }),
        catch: (cause) =>
          new StoreError({ message: `cannot create the directory of ${file}: ${describe(cause)}`, cause })
      })
      // One bartos per file: several instances need MariaDB (issue 18).
      yield* SqliteLock.acquire(file)
    }
    // A throwaway database (tests) does without the checkpointer thread.
    const client = SqliteClient.layer({ filename: file, prepareCacheSize: 512, checkpointInBackground: !ephemeral })
      .pipe(
        Layer.mapError((e) =>
          new StoreError({ message: `cannot open SQLite database ${file}: ${describe(e)}`, cause: e })
        ),
        // A throwaway database needs no durability; the others keep SQLite's defaults in WAL mode.
        Layer.tap((ctx) =>
          ephemeral
            ? Effect.orDie(Context.get(ctx, SqlClient.SqlClient).unsafe("PRAGMA synchronous = OFF"))
            : Effect.void
        )
      )
    return {
      client,
      options: {
        kind: "sqlite",
        location: ephemeral ? ":memory:" : file,
        runQuery: (text, caps) => runSqliteQuery(file, text, caps),
        queryConcurrency: options.queryConcurrency ?? QUERY_CONCURRENCY
      }
    } satisfies Resources
  })

export interface MariadbOptions {
  readonly host: string
  readonly port: number
  readonly username: string
  readonly password?: Redacted.Redacted<string> | undefined
  readonly database: string
  readonly queryUsername?: string | undefined
  readonly queryPassword?: Redacted.Redacted<string> | undefined
  readonly queryConcurrency?: number | undefined
  readonly ssl?: boolean | undefined
  readonly connectTimeoutMs?: number | undefined
}

export const mariadb = (options: MariadbOptions): Effect.Effect<Resources, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const location = `${options.host}:${options.port}/${options.database}`
    const ssl = options.ssl === true ? {} : undefined
    const queryConcurrency = options.queryConcurrency ?? QUERY_CONCURRENCY
    const runner = yield* makeMariadbQueryRunner({
      host: options.host,
      port: options.port,
      username: options.username,
      database: options.database,
      ssl,
      queryUsername: options.queryUsername,
      queryPassword: options.queryPassword,
      concurrency: queryConcurrency
    })
    const client = MysqlClient.layer({
      host: options.host,
      port: options.port,
      username: options.username,
      password: options.password,
      database: options.database,
      maxConnections: 8,
      poolConfig: {
        // Bounds the server-side prepared statements each pooled connection keeps.
        maxPreparedStatements: 512,
        ...(ssl !== undefined ? { ssl } : {}),
        ...(options.connectTimeoutMs !== undefined ? { connectTimeout: options.connectTimeoutMs } : {})
      }
    }).pipe(
      Layer.mapError((e: SqlError | { readonly _tag: string }) =>
        new StoreError({ message: `cannot open MariaDB at ${location}: ${describe(e)}`, cause: e })
      )
    )
    return {
      client,
      options: { kind: "mariadb", location, runQuery: runner.run, queryConcurrency }
    } satisfies Resources
  })

/** `[mariadb] options` (a URL query string in the reference) as MariaDB options. */
export const parseMariadbOptions = (
  text: string | undefined
): Effect.Effect<{ readonly ssl?: boolean; readonly connectTimeoutMs?: number }, StoreError> =>
  Effect.suspend(() => {
    const out: { ssl?: boolean; connectTimeoutMs?: number } = {}
    if (text === undefined || text.trim() === "") return Effect.succeed(out)
    for (const [key, value] of new URLSearchParams(text.trim().replace(/^\?/, ""))) {
      const k = key.toLowerCase().replace(/-/g, "_")
      if (k === "ssl" || k === "ssl_mode") {
        const v = value.toLowerCase()
        if (["true", "1", "required", "require", "verify_full", "verify_identity", "verify_ca"].includes(v)) {
          out.ssl = true
        } else if (["false", "0", "disabled", "disable"].includes(v)) out.ssl = false
        else return Effect.fail(new StoreError({ message: `[mariadb] options: ${key}=${value} is not understood` }))
      } else if (k === "connect_timeout") {
        const secs = Number(value)
        if (!Number.isFinite(secs) || secs <= 0) {
          return Effect.fail(
            new StoreError({ message: `[mariadb] options: ${key} must be a positive number of seconds` })
          )
        }
        out.connectTimeoutMs = Math.round(secs * 1000)
      } else {
        return Effect.fail(
          new StoreError({
            message: `[mariadb] options: unsupported key "${key}" (understood: ssl, connect_timeout)`
          })
        )
      }
    }
    return Effect.succeed(out)
  })
