/**
 * The `Store` implementation, written once against `SqlClient`; the few dialect differences
 * (upsert syntax, row locks) are chosen with `sql.onDialectOrElse` when the store is made.
 *
 * `make` composes three parts, each its own module: `ingest.ts` (what the worker link writes:
 * record batches and session bookkeeping), `reads.ts` (what the CLI and the console read, and the
 * sandboxed `query`) and `maintenance.ts` (cleanup, retention, paused schedules). They share
 * `common.ts` (the statement runners bound to the client, value readers, `IN` lists, page sizes)
 * and `rows.ts` (rows read back as the domain's row classes).
 *
 * Conventions:
 * - ingest is written once as a generator of statements with two drivers (see `ingest.ts`):
 *   synchronous on SQLite, statement by statement in a transaction on MariaDB;
 * - values read back go through `num`/`numOrNull`, because MariaDB may return BIGINT as strings
 *   (style.md §5.3) and booleans are stored as 0/1.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type { QueryCaps, QueryResult, StoreShape } from "../../Store.js"
import { makeStoreSql } from "./common.js"
import type { QueryRefused, StoreError } from "./errors.js"
import { makeIngest } from "./ingest.js"
import { makeMaintenance } from "./maintenance.js"
import { makeReads } from "./reads.js"

export interface MakeOptions {
  readonly kind: "mariadb" | "sqlite"
  readonly location: string
  /** Runs an already checked read-only statement (see `guard.ts`) in the dialect's sandbox. */
  readonly runQuery: (sql: string, caps: QueryCaps) => Effect.Effect<QueryResult, StoreError | QueryRefused>
  /** Statements running at once, across every client (each holds a process or a connection). */
  readonly queryConcurrency: number
}

export const make = (options: MakeOptions): Effect.Effect<StoreShape, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const ctx = yield* makeStoreSql
    const ingest = yield* makeIngest(ctx)
    const reads = yield* makeReads(ctx, options)
    const maintenance = yield* makeMaintenance(ctx)
    return {
      kind: options.kind,
      location: options.location,
      ...ingest,
      ...reads,
      ...maintenance
    } satisfies StoreShape
  })
