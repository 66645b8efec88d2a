/**
 * The store's SQLite client: `@effect/sql-sqlite-node`'s `SqliteClient` (0.53, same statement
 * cache, WAL, one connection behind a semaphore) plus `SqliteDirect`, a way to run a whole
 * transaction synchronously on the connection while holding that semaphore.
 *
 * Why: better-sqlite3 is synchronous, so a batch's statements gain nothing from being Effects, and
 * the Effect layers around each of them (statement cache lookup, fiber steps, the transaction's
 * scope and span) cost ~0.5 ms per ingested batch, as much as inserting 200 lines. `Store.ingest`
 * runs on `SqliteDirect`; everything else goes through the ordinary `SqlClient`.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as Client from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import Sqlite from "better-sqlite3"
import * as Cache from "effect/Cache"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"

export interface SqliteDirect {
  /**
   * Runs `f` on the connection, alone: no other statement or transaction of this client runs
   * until it returns (it holds the client's semaphore, as `withTransaction` does). `f` must be
   * synchronous and must leave no transaction open. A throw becomes a `SqlError`.
   */
  readonly exclusive: <A>(f: (db: Sqlite.Database) => A) => Effect.Effect<A, SqlError>
}

export const SqliteDirect = Context.GenericTag<SqliteDirect>("@barto/server/Store/SqliteDirect")

export interface Options {
  readonly filename: string
  readonly prepareCacheSize?: number
}

const make = (options: Options): Effect.Effect<
  { readonly client: Client.SqlClient; readonly direct: SqliteDirect },
  never,
  Scope.Scope | Reactivity.Reactivity
> =>
  Effect.gen(function*() {
    const compiler = Statement.makeCompilerSqlite()
    const db = new Sqlite(options.filename)
    yield* Effect.addFinalizer(() => Effect.sync(() => db.close()))
    db.pragma("journal_mode = WAL")

    const prepareCache = yield* Cache.make({
      capacity: options.prepareCacheSize ?? 200,
      timeToLive: Duration.minutes(10),
      lookup: (sql: string) =>
        Effect.try({
          try: () => db.prepare(sql),
          catch: (cause) => new SqlError({ cause, message: "Failed to prepare statement " })
        })
    })

    const runStatement = (statement: Sqlite.Statement, params: ReadonlyArray<unknown>, raw: boolean) =>
      Effect.withFiberRuntime<ReadonlyArray<any>, SqlError>((fiber) => {
        if (Context.get(fiber.currentContext, Client.SafeIntegers)) {
          statement.safeIntegers(true)
        }
        try {
          if (statement.reader) {
            return Effect.succeed(statement.all(...params))
          }
          const result = statement.run(...params)
          return Effect.succeed(raw ? result as unknown as ReadonlyArray<any> : [])
        } catch (cause) {
          return Effect.fail(new SqlError({ cause, message: "Failed to execute statement" }))
        }
      })

    const run = (sql: string, params: ReadonlyArray<unknown>, raw = false) =>
      Effect.flatMap(prepareCache.get(sql), (s) => runStatement(s, params, raw))

    const runValues = (sql: string, params: ReadonlyArray<unknown>) =>
      Effect.acquireUseRelease(
        prepareCache.get(sql),
        (statement) =>
          Effect.try({
            try: () => {
              if (statement.reader) {
                statement.raw(true)
                return statement.all(...params) as ReadonlyArray<ReadonlyArray<unknown>>
              }
              statement.run(...params)
              return []
            },
            catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" })
          }),
        (statement) => Effect.sync(() => statement.reader && statement.raw(false))
      )

    const connection: Connection = {
      execute(sql, params, transformRows) {
        return transformRows ? Effect.map(run(sql, params), transformRows) : run(sql, params)
      },
      executeRaw(sql, params) {
        return run(sql, params, true)
      },
      executeValues(sql, params) {
        return runValues(sql, params)
      },
      executeUnprepared(sql, params, transformRows) {
        const effect = runStatement(db.prepare(sql), params ?? [], false)
        return transformRows ? Effect.map(effect, transformRows) : effect
      },
      executeStream() {
        return Effect.dieMessage("executeStream not implemented")
      }
    }

    const semaphore = yield* Effect.makeSemaphore(1)
    const acquirer = semaphore.withPermits(1)(Effect.succeed(connection))
    const transactionAcquirer = Effect.uninterruptibleMask((restore) =>
      Effect.as(
        Effect.zipRight(
          restore(semaphore.take(1)),
          Effect.tap(Effect.scope, (scope) => Scope.addFinalizer(scope, semaphore.release(1)))
        ),
        connection
      )
    )

    const client = yield* Client.make({
      acquirer,
      compiler,
      transactionAcquirer,
      spanAttributes: [["db.system.name", "sqlite"]]
    })

    const direct: SqliteDirect = {
      exclusive: (f) =>
        semaphore.withPermits(1)(Effect.try({
          try: () => f(db),
          catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" })
        }))
    }
    return { client, direct }
  })

/** `SqlClient` and `SqliteDirect` over one connection to `filename`. */
export const layer = (options: Options): Layer.Layer<Client.SqlClient | SqliteDirect, SqlError> =>
  Layer.scopedContext(
    Effect.map(make(options), ({ client, direct }) => Context.make(Client.SqlClient, client).pipe(Context.add(SqliteDirect, direct))).pipe(
      // Opening the file can throw (a directory, no permission): a typed error, not a defect.
      Effect.catchAllDefect((cause) => Effect.fail(new SqlError({ cause, message: "Failed to open the database" })))
    )
  ).pipe(Layer.provide(Reactivity.layer))
