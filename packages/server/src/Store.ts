/**
 * The `Store` service: bartos' persistence (D5, D8) over `@effect/sql`, on MariaDB or SQLite.
 *
 * Every method is dialect-neutral; the layers choose the client, run the migrations and hand back
 * the same `StoreShape`. Instants are microseconds UTC (`Micros`), stored as BIGINT.
 *
 * Ingest semantics (one transaction per batch, in seq order): `RunStarted` inserts a `running` run
 * (or completes a placeholder, and a `lost`/`missed` row runs again); `RunFinished` moves only a
 * `running` or `lost` run to its final state (a final state is final); `RunMissed` inserts a
 * `missed` run; records of a run never seen create a placeholder run (schedule "unknown").
 * A run belongs to the agent that first reported it: records of one agent about another agent's
 * run are refused, never written. Output lines are also unique on (run_id, line_seq), a second
 * guard behind the offsets; a line that arrives again with other content is a logged conflict.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { AgentRecord, ClientInfo, FailedRow, LineRow, Micros, RunRow, RunState } from "@barto/domain/Messages"
import type { QueryRefused, StoreError } from "./internal/store/errors.js"
import { make } from "./internal/store/make.js"
import { migrate } from "./internal/store/migrations.js"
import * as Resources from "./internal/store/resources.js"

export { QueryRefused, StoreError } from "./internal/store/errors.js"

export interface QueryResult {
  readonly columns: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string | null>>
  readonly truncated: boolean
}

/** A record refused because its run (or command) belongs to another agent (or run); never written. */
export interface RefusedRecord {
  readonly seq: number
  readonly runId: string
  readonly reason: "foreign_run" | "foreign_command"
}

/** A line whose (run, line number) was already stored with other content; the stored one stays. */
export interface LineConflict {
  readonly seq: number
  readonly runId: string
  readonly lineSeq: number
}

export interface IngestResult {
  /** The new offset: highest seq handled (stored or refused), -1 if none. */
  readonly upTo: number
  readonly refused: ReadonlyArray<RefusedRecord>
  readonly lineConflicts: ReadonlyArray<LineConflict>
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
  /**
   * One transaction; records with seq <= the stored offset of (agent, outboxId) are skipped.
   * Records about runs of other agents are refused (see `RefusedRecord`), lines that conflict
   * with stored ones are kept out (see `LineConflict`); both are logged and returned.
   */
  readonly ingest: (
    agent: string,
    outboxId: string,
    records: ReadonlyArray<AgentRecord>
  ) => Effect.Effect<IngestResult, StoreError>
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
  /** Newest first by scheduled_at (then run id); `since` compares scheduled_at too (missed runs have nothing else). */
  readonly runs: (filter: RunsFilter) => Effect.Effect<ReadonlyArray<RunRow>, StoreError>
  readonly getRun: (runId: string) => Effect.Effect<Option.Option<RunRow>, StoreError>
  /** The run that started last (a missed occurrence never started, so it is never the latest). */
  readonly latestRun: (agent: string, schedule: string) => Effect.Effect<Option.Option<RunRow>, StoreError>
  readonly runLines: (
    runId: string,
    afterLineSeq: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<LineRow>, StoreError>
  /**
   * D7: one SELECT/WITH/SHOW/EXPLAIN statement, checked lexically, then run where it cannot write
   * (MariaDB: own pool, `START TRANSACTION READ ONLY`, `max_statement_time`; SQLite: a read-only
   * connection in a child process that is killed at the time limit). `QueryRefused` when it is not
   * read-only, the database rejects it, or it runs over `timeoutMs`; `StoreError` only when the
   * database cannot be reached.
   */
  readonly query: (
    sql: string,
    options: { readonly rowCap: number; readonly timeoutMs: number }
  ) => Effect.Effect<QueryResult, StoreError | QueryRefused>
  /** Runs finished before `before` (missed/lost ones: scheduled before) with their commands and lines; never a running run. */
  readonly cleanup: (
    before: Micros,
    dryRun: boolean
  ) => Effect.Effect<{ readonly runs: number; readonly commands: number; readonly lines: number }, StoreError>
  /** Deletes runs older than `maxAgeDays` (as `cleanup`), then all but the newest `maxRunsPerSchedule` per (agent, schedule). */
  readonly retention: (
    options: { readonly maxAgeDays?: number; readonly maxRunsPerSchedule?: number; readonly now: Micros }
  ) => Effect.Effect<{ readonly runs: number; readonly lines: number }, StoreError>
  readonly setPaused: (agent: string, schedule: string, paused: boolean) => Effect.Effect<void, StoreError>
  readonly paused: () => Effect.Effect<ReadonlyArray<{ readonly agent: string; readonly schedule: string }>, StoreError>
}

export class Store extends Context.Tag("@barto/server/Store")<Store, StoreShape>() {}

const fromResources = (
  resources: Effect.Effect<Resources.Resources, StoreError, Scope.Scope>
): Layer.Layer<Store | SqlClient.SqlClient, StoreError> =>
  Layer.unwrapScoped(Effect.map(resources, ({ client, options }) =>
    Layer.effect(Store, Effect.zipRight(migrate, make(options))).pipe(Layer.provideMerge(client))))

/** Keeps only `Store` in the output: programs should not reach around the store to its client. */
const storeOnly = (layer: Layer.Layer<Store | SqlClient.SqlClient, StoreError>): Layer.Layer<Store, StoreError> =>
  Layer.provide(Layer.effect(Store, Store), layer)

/**
 * Embedded SQLite (WAL), migrated at start. `":memory:"` gives an ephemeral database (a temporary
 * file removed with the layer, so that `query` can open it read-only from its own process);
 * parent directories of a path are created.
 */
export const layerSqlite = (options: { readonly filename: string }): Layer.Layer<Store, StoreError> =>
  storeOnly(layerSqliteWithClient(options))

/** `layerSqlite` that also provides its `SqlClient` (tests, benchmarks: `measureRawInsertRate`). */
export const layerSqliteWithClient = (
  options: { readonly filename: string }
): Layer.Layer<Store | SqlClient.SqlClient, StoreError> => fromResources(Resources.sqlite(options))

export interface MariadbOptions {
  readonly host: string
  readonly port: number
  readonly username: string
  readonly password?: Redacted.Redacted<string>
  readonly database: string
}

/** MariaDB, migrated at start; the password travels as a Redacted field, never inside a URL. */
export const layerMariadb = (options: MariadbOptions): Layer.Layer<Store, StoreError> =>
  storeOnly(layerMariadbWithClient(options))

/** `layerMariadb` that also provides its `SqlClient` (tests, benchmarks). */
export const layerMariadbWithClient = (
  options: MariadbOptions
): Layer.Layer<Store | SqlClient.SqlClient, StoreError> => fromResources(Resources.mariadb(options))

/**
 * The store `bartos.toml` asks for: `[mariadb]` when present, else `[sqlite] path`. Takes the
 * `mariadb`/`sqlite` parts of `BartosConfig` (structurally). `[mariadb] options` is a query string
 * (the reference appends it after `?` to its URL); `ssl=true` and `connect_timeout=<secs>` are
 * understood, any other key is an error rather than silently ignored.
 */
export const layerFromConfig = (config: {
  readonly mariadb?: {
    readonly host: string
    readonly port: number
    readonly username: string
    readonly password?: Redacted.Redacted<string> | undefined
    readonly database: string
    readonly options?: string | undefined
  } | undefined
  readonly sqlite: { readonly path: string }
}): Layer.Layer<Store, StoreError> => {
  const m = config.mariadb
  if (m === undefined) return layerSqlite({ filename: config.sqlite.path })
  return storeOnly(fromResources(Effect.flatMap(Resources.parseMariadbOptions(m.options), (extra) =>
    Resources.mariadb({
      host: m.host,
      port: m.port,
      username: m.username,
      password: m.password,
      database: m.database,
      ssl: extra.ssl,
      connectTimeoutMs: extra.connectTimeoutMs
    }))))
}
