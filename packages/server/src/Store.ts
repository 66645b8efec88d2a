/**
 * The `Store` service: bartos' persistence (D5, D8) over `@effect/sql`, on MariaDB or SQLite.
 *
 * Every method is dialect-neutral; the layers choose the client, run the migrations and hand back
 * the same `StoreShape`.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { AgentRecord, ClientInfo, FailedRow, LineRow, Micros, RunRow, RunState } from "@barto/domain/Messages"

export class StoreError extends Data.TaggedError("StoreError")<{ readonly message: string; readonly cause?: unknown }> {}

/** A `query` statement that is not read-only (D7). */
export class QueryRefused extends Data.TaggedError("QueryRefused")<{ readonly reason: string }> {}

export interface QueryResult {
  readonly columns: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string | null>>
  readonly truncated: boolean
}

export interface SessionInfo {
  readonly agent: string
  readonly sessionId: string
  readonly ip: string
  readonly connectedAt: Micros
}

export interface RunsFilter {
  readonly agent?: string
  readonly schedule?: string
  readonly state?: RunState
  readonly since?: Micros
  readonly limit: number
}

export interface StoreShape {
  readonly kind: "mariadb" | "sqlite"
  /** sqlite file path, or "host:port/database" (never a password). */
  readonly location: string
  /** One transaction; records with seq <= the stored offset of (agent, outboxId) are skipped; returns the new offset (highest stored seq, -1 if none). */
  readonly ingest: (
    agent: string,
    outboxId: string,
    records: ReadonlyArray<AgentRecord>
  ) => Effect.Effect<number, StoreError>
  readonly ackedUpTo: (agent: string, outboxId: string) => Effect.Effect<number, StoreError>
  readonly sessionStarted: (s: SessionInfo) => Effect.Effect<void, StoreError>
  readonly sessionInfo: (agent: string, sessionId: string, info: ClientInfo) => Effect.Effect<void, StoreError>
  readonly sessionEnded: (agent: string, sessionId: string, at: Micros) => Effect.Effect<void, StoreError>
  /** Runs of `agent` still `running` that started before `startedBefore` become `lost`; returns how many. */
  readonly markLost: (agent: string, startedBefore: Micros) => Effect.Effect<number, StoreError>
  /** Distinct schedule names with runs, sorted. */
  readonly listCommands: (agent: string) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /** Ordered by run start, lineSeq. */
  readonly listLines: (agent: string, schedule: string) => Effect.Effect<ReadonlyArray<LineRow>, StoreError>
  /** Grouped by agent, sorted. */
  readonly cmdLines: (
    schedule: string
  ) => Effect.Effect<ReadonlyArray<{ readonly agent: string; readonly lines: ReadonlyArray<LineRow> }>, StoreError>
  /** Commands with exit != 0 or killed, plus runs timed_out/lost/failed without commands; newest last. */
  readonly failed: () => Effect.Effect<ReadonlyArray<FailedRow>, StoreError>
  /** Data of lines whose command exited 0, in time order (for `updates`). */
  readonly successfulLines: (agent: string) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /** Newest first. */
  readonly runs: (filter: RunsFilter) => Effect.Effect<ReadonlyArray<RunRow>, StoreError>
  readonly getRun: (runId: string) => Effect.Effect<Option.Option<RunRow>, StoreError>
  readonly latestRun: (agent: string, schedule: string) => Effect.Effect<Option.Option<RunRow>, StoreError>
  readonly runLines: (
    runId: string,
    afterLineSeq: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<LineRow>, StoreError>
  readonly query: (
    sql: string,
    options: { readonly rowCap: number; readonly timeoutMs: number }
  ) => Effect.Effect<QueryResult, StoreError | QueryRefused>
  readonly cleanup: (
    before: Micros,
    dryRun: boolean
  ) => Effect.Effect<{ readonly runs: number; readonly commands: number; readonly lines: number }, StoreError>
  readonly retention: (
    options: { readonly maxAgeDays?: number; readonly maxRunsPerSchedule?: number; readonly now: Micros }
  ) => Effect.Effect<{ readonly runs: number; readonly lines: number }, StoreError>
  readonly setPaused: (agent: string, schedule: string, paused: boolean) => Effect.Effect<void, StoreError>
  readonly paused: () => Effect.Effect<ReadonlyArray<{ readonly agent: string; readonly schedule: string }>, StoreError>
}

export class Store extends Context.Tag("@barto/server/Store")<Store, StoreShape>() {}

/** Embedded SQLite (WAL). `":memory:"` allowed; parent directories are created. */
export const layerSqlite = (_options: { readonly filename: string }): Layer.Layer<Store, StoreError> =>
  Layer.fail(new StoreError({ message: "Store.layerSqlite: implementation in progress" }))

/** MariaDB; the password travels as a Redacted field, never inside a URL. */
export const layerMariadb = (_options: {
  readonly host: string
  readonly port: number
  readonly username: string
  readonly password?: Redacted.Redacted<string>
  readonly database: string
}): Layer.Layer<Store, StoreError> =>
  Layer.fail(new StoreError({ message: "Store.layerMariadb: implementation in progress" }))
