/**
 * The store's SQLite client: `@effect/sql-sqlite-node`'s `SqliteClient` (0.53, same statement
 * cache, WAL, one connection behind a semaphore) plus `SqliteDirect`, a way to run a whole
 * transaction synchronously on the connection while holding that semaphore.
 *
 * Why: better-sqlite3 is synchronous, so a batch's statements gain nothing from being Effects, and
 * the Effect layers around each of them (statement cache lookup, fiber steps, the transaction's
 * scope and span) cost ~0.5 ms per ingested batch, as much as inserting 200 lines. `Store.ingest`
 * runs on `SqliteDirect`; everything else goes through the ordinary `SqlClient`.
 *
 * With `checkpointInBackground`, WAL checkpoints run on a second connection in a worker thread:
 * copying WAL pages into the database file was ~40% of a commit's cost on the event loop (the
 * automatic checkpoint runs inside the commit that crosses 1,000 pages). The worker checkpoints
 * (PASSIVE: never blocks the writer) shortly after writes; the main connection keeps an automatic
 * checkpoint at 4,000 pages, which then finds little left to copy and lets the WAL restart, and
 * which does all the work should the worker be gone. Durability is unchanged: each commit still
 * syncs the WAL (synchronous = FULL) before it returns.
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
import * as Stream from "effect/Stream"
import { createRequire } from "node:module"
import { Worker } from "node:worker_threads"

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
  /** Checkpoint the WAL from a worker thread instead of inside commits (see above). */
  readonly checkpointInBackground?: boolean
}

/** Pages in the WAL before the main connection checkpoints itself (SQLite's default is 1,000). */
const MAIN_AUTOCHECKPOINT = 4000
/** A write pokes the checkpointer at most this often. */
const POKE_EVERY_MS = 50

// CommonJS, run with `eval`: a worker file of its own would not survive the bundle.
const CHECKPOINTER = `
const { parentPort, workerData } = require("node:worker_threads")
const Database = require(workerData.driver)
const db = new Database(workerData.filename, { fileMustExist: true })
parentPort.on("message", (m) => {
  if (m === "close") {
    db.close()
    process.exit(0)
  }
  try {
    db.pragma("wal_checkpoint(PASSIVE)")
  } catch {
    // Busy or failing: the main connection's own automatic checkpoint still runs.
  }
})
`

/** Starts the checkpointer; returns the poke to call after writes. Stopped with the scope. */
const checkpointer = (filename: string): Effect.Effect<() => void, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        try {
          const worker = new Worker(CHECKPOINTER, {
            eval: true,
            // It runs one pragma at a time: a small heap is plenty (the isolate is ~8 MiB anyway).
            resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
            workerData: { driver: createRequire(import.meta.url).resolve("better-sqlite3"), filename }
          })
          // It only ever helps: an error (it could not open the file) leaves the main connection
          // checkpointing alone, as SQLite does by default.
          worker.on("error", () => {})
          worker.unref()
          return worker
        } catch {
          return undefined
        }
      }),
      (worker) =>
        worker === undefined ? Effect.void : Effect.async<void>((resume) => {
          const timer = setTimeout(() => void worker.terminate().finally(() => resume(Effect.void)), 2000)
          worker.once("exit", () => {
            clearTimeout(timer)
            resume(Effect.void)
          })
          worker.postMessage("close")
        })
    ),
    (worker) => {
      if (worker === undefined) return () => {}
      let last = 0
      return () => {
        const now = Date.now()
        if (now - last < POKE_EVERY_MS) return
        last = now
        worker.postMessage(0)
      }
    }
  )

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
    // Registered after the connection: scopes close in reverse, so the worker stops first.
    const poke = options.checkpointInBackground === true ? yield* checkpointer(options.filename) : () => {}
    if (options.checkpointInBackground === true) db.pragma(`wal_autocheckpoint = ${MAIN_AUTOCHECKPOINT}`)

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
      // Upstream 0.53 dies here. The rows are read in one go and then streamed: a lazy
      // `statement.iterate()` would keep the single connection busy between pulls.
      executeStream(sql, params, transformRows) {
        const rows = runStatement(db.prepare(sql), params, false)
        return Stream.fromIterableEffect(transformRows ? Effect.map(rows, transformRows) : rows)
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
          try: () => {
            const result = f(db)
            poke()
            return result
          },
          catch: (cause) => new SqlError({ cause, message: "Failed to execute statement" })
        }))
    }
    return { client, direct }
  })

/** `SqlClient` and `SqliteDirect` over one connection to `filename`. */
export const layer = (options: Options): Layer.Layer<Client.SqlClient | SqliteDirect, SqlError> =>
  Layer.scopedContext(
    Effect.map(make(options), ({ client, direct }) =>
      Context.make(Client.SqlClient, client).pipe(Context.add(SqliteDirect, direct))).pipe(
        // Opening the file can throw (a directory, no permission): a typed error, not a defect.
        Effect.catchAllDefect((cause) =>
          Effect.fail(new SqlError({ cause, message: "Failed to open the database" }))
        )
      )
  ).pipe(Layer.provide(Reactivity.layer))
