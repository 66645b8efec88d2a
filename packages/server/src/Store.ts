/**
 * The `Store` service: bartos' persistence (D5, D8) over `@effect/sql`, on MariaDB or SQLite.
 *
 * Every method is dialect-neutral; the layers choose the client, run the migrations and hand back
 * the same `StoreShape`. Instants are microseconds UTC (`Micros`), stored as BIGINT.
 *
 * Ingest semantics (one transaction per batch, in seq order): `RunStarted` inserts a `running` run
 * (or completes a placeholder, and a `lost`/`missed` row runs again); `RunFinished` moves only a
 * `running` or `lost` run to its final state, with its reason (a final state is final);
 * `RunMissed` inserts a `missed` run with its reason, and for a range its last occurrence
 * (`scheduled_until`) and count (`occurrences`; 1 for every other row); records of a run never
 * seen create a placeholder run (schedule "unknown").
 * A run belongs to the agent that first reported it: records of one agent about another agent's
 * run are refused, never written. Output lines are also unique on (run_id, line_seq), a second
 * guard behind the offsets; a line that arrives again with other content is a logged conflict.
 */
import type {
  AgentRecord,
  ClientInfo,
  FailedRow,
  LineRow,
  Micros,
  MissedTick,
  RunRow,
  RunState
} from "@barto/domain/Messages"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { AlertStoreShape } from "./internal/store/alerts.js"
import { makeAlertStore } from "./internal/store/alerts.js"
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

/** The bounds of one `query` (D7): rows, bytes of rendered cells, and time. */
export interface QueryCaps {
  readonly rowCap: number
  readonly maxBytes: number
  readonly timeoutMs: number
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
  /** The agent's `missed_tick` and `catch_up_limit` from its hello; absent when it did not say. */
  readonly missedTick?: MissedTick
  readonly catchUpLimit?: number
}

/** What `sessionOpened` found: each half on its own, so a failed session write does not lose the offset. */
export interface SessionEnd {
  readonly agent: string
  readonly sessionId: string
  readonly at: Micros
}

export interface SessionOpened {
  readonly started: Either.Either<void, StoreError>
  /** The agent instance's acked offset (`ackedUpTo`). */
  readonly acked: Either.Either<number, StoreError>
}

/**
 * What `failed` may leave out, as `barto-cli failed` windows it: with `since`/`until`, only
 * failures that ended (`finishedAt`) inside [since, until); with `limit`, from the newest `limit`
 * of those (of all, without since/until) on. Every row the window keeps comes, in the unwindowed
 * order; the caller still applies the window (a few rows more may come). It is read along
 * indexes instead of from the first failure ever (issue 18: `failed` at 1,000,000 runs).
 */
export interface FailedWindow {
  readonly since?: Micros | undefined
  readonly until?: Micros | undefined
  readonly limit?: number | undefined
}

export interface RunsFilter {
  /** Runs whose id starts or ends with this text (hex digits and dashes only: `Ids.isRunIdInput`). */
  readonly runIdMatch?: string
  readonly agent?: string
  readonly schedule?: string
  readonly state?: RunState
  /** Any of these states (with `state`, both apply). */
  readonly states?: ReadonlyArray<RunState>
  readonly since?: Micros
  /** Cursor: only runs after this one in the newest-first order (the last row of a previous page). */
  readonly before?: { readonly scheduledAt: Micros; readonly runId: string }
  readonly limit: number
}

/** An agent that ever connected (the `agents` table), as the console lists it. */
export interface AgentRow {
  readonly name: string
  readonly firstSeenAt: Micros
  readonly lastSeenAt: Micros
  readonly lastIp: string | null
  readonly osName: string | null
  readonly hostname: string | null
  readonly osVersion: string | null
  readonly kernel: string | null
  readonly agentVersion: string | null
  /** What its latest session reported (null: it did not, or it never connected since bartos kept this). */
  readonly missedTick: MissedTick | null
  readonly catchUpLimit: number | null
}

/** One command of a run, in execution order. */
export interface CommandRow {
  readonly cmdUuid: string
  readonly index: number
  readonly command: string
  readonly startedAt: Micros | null
  readonly finishedAt: Micros | null
  readonly exitCode: number | null
  readonly signal: string | null
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
  /** `ackedUpTo` of many pairs in one query (the reconnect storm, `internal/sessionBatch.ts`), in their order. */
  readonly ackedUpToMany: (
    keys: ReadonlyArray<{ readonly agent: string; readonly outboxId: string }>
  ) => Effect.Effect<ReadonlyArray<number>, StoreError>
  readonly sessionStarted: (s: SessionInfo) => Effect.Effect<void, StoreError>
  /**
   * `sessionStarted` of many sessions by a few multi-row statements, in the caller's transaction
   * if there is one (`internal/sessionBatch.ts` group-commits them); a name twice: the later wins.
   */
  readonly sessionsStarted: (s: ReadonlyArray<SessionInfo>) => Effect.Effect<void, StoreError>
  /**
   * A hello's two store calls, both in flight at once: `sessionStarted(s)` and `ackedUpTo(s.agent,
   * outboxId)` (they do not depend on each other: the offset only moves by this agent's ingest,
   * which starts after the ServerHello). `internal/sessionBatch.ts` queues both into their groups
   * without a fiber of their own.
   */
  readonly sessionOpened: (s: SessionInfo, outboxId: string) => Effect.Effect<SessionOpened>
  readonly sessionInfo: (agent: string, sessionId: string, info: ClientInfo) => Effect.Effect<void, StoreError>
  readonly sessionEnded: (agent: string, sessionId: string, at: Micros) => Effect.Effect<void, StoreError>
  /**
   * `sessionEnded` of many sessions, in the caller's transaction if there is one: a mass
   * disconnect (a network cut, a shutdown of bartos) ends thousands at once, and
   * `internal/sessionBatch.ts` group-commits them.
   */
  readonly sessionsEnded: (ends: ReadonlyArray<SessionEnd>) => Effect.Effect<void, StoreError>
  /** Runs of `agent` still `running` that started before `startedBefore` become `lost`; returns how many. */
  readonly markLost: (agent: string, startedBefore: Micros) => Effect.Effect<number, StoreError>
  /** Distinct schedule names with runs, sorted. */
  readonly listCommands: (agent: string) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /**
   * Output lines of `agent`'s `schedule`, ordered by run start, run id, lineSeq. A stream: it
   * reads page by page (keyset cursors), so a history larger than memory can be sent in frames.
   */
  readonly listLines: (agent: string, schedule: string) => Stream.Stream<LineRow, StoreError>
  /** As `listLines` for every agent's `schedule`, ordered by agent first. */
  readonly cmdLines: (schedule: string) => Stream.Stream<LineRow, StoreError>
  /**
   * Commands with exit != 0 or killed, plus runs timed_out/interrupted/lost/failed without commands; newest
   * last. A command with more than a page of lines comes as consecutive rows of the same
   * (runId, cmdUuid), each carrying the next lines.
   */
  readonly failed: (window?: FailedWindow) => Stream.Stream<FailedRow, StoreError>
  /** Data of lines whose command exited 0, in time order (for `updates`). */
  readonly successfulLines: (agent: string) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /**
   * Newest first by scheduled_at (then run id); `since` compares scheduled_at too (missed runs have
   * nothing else), a missed range's last occurrence.
   */
  readonly runs: (filter: RunsFilter) => Effect.Effect<ReadonlyArray<RunRow>, StoreError>
  /**
   * For each (agent, schedule): its newest run and the states of its newest `perSchedule` runs
   * (as `runs` orders them, newest first), in one round trip; keyed by `recentKey(agent, schedule)`.
   */
  readonly recentRuns: (
    schedules: ReadonlyArray<{ readonly agent: string; readonly schedule: string }>,
    perSchedule: number
  ) => Effect.Effect<ReadonlyMap<string, RecentRuns>, StoreError>
  /** How many runs `runs` would list without a limit (cursor ignored). */
  readonly countRuns: (filter: Omit<RunsFilter, "limit" | "before">) => Effect.Effect<number, StoreError>
  readonly getRun: (runId: string) => Effect.Effect<Option.Option<RunRow>, StoreError>
  /** The commands of a run by index (a command whose start never arrived has index -1, first). */
  readonly runCommands: (runId: string) => Effect.Effect<ReadonlyArray<CommandRow>, StoreError>
  /** Every agent that ever connected, sorted by name. */
  readonly agents: () => Effect.Effect<ReadonlyArray<AgentRow>, StoreError>
  /** The run that started last (a missed occurrence never started, so it is never the latest). */
  readonly latestRun: (agent: string, schedule: string) => Effect.Effect<Option.Option<RunRow>, StoreError>
  readonly runLines: (
    runId: string,
    afterLineSeq: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<LineRow>, StoreError>
  /**
   * D7: one SELECT/WITH/SHOW/EXPLAIN statement, checked lexically, then run where it cannot write
   * (MariaDB: a least-privilege account in its own pool, `START TRANSACTION READ ONLY`,
   * `max_statement_time`, `KILL QUERY` when abandoned; SQLite: a read-only connection in a child
   * process that is killed at the time limit). At most `queryConcurrency` run at once; the result
   * stops at `rowCap` rows or `maxBytes` bytes (`truncated`). `QueryRefused` when it is not
   * read-only, the database rejects it, it runs over `timeoutMs`, every slot is busy, or (MariaDB)
   * no query account is configured; `StoreError` only when the database cannot be reached.
   */
  readonly query: (sql: string, caps: QueryCaps) => Effect.Effect<QueryResult, StoreError | QueryRefused>
  /**
   * Runs finished before `before` (missed/lost ones: scheduled before; a missed range: its last
   * occurrence) with their commands and lines; never a running run.
   */
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

export interface RecentRuns {
  readonly last: RunRow
  readonly states: ReadonlyArray<RunState>
}

export const recentKey = (agent: string, schedule: string): string => `${agent}\u0000${schedule}`

/** The store with its alert tables (events, incidents, deliveries: internal/store/alerts.ts). */
export interface StoreWithAlerts extends StoreShape {
  readonly alerts: AlertStoreShape
}

export class Store extends Context.Tag("@barto/server/Store")<Store, StoreWithAlerts>() {}

const fromResources = (
  resources: Effect.Effect<Resources.Resources, StoreError, Scope.Scope>
): Layer.Layer<Store | SqlClient.SqlClient, StoreError> =>
  Layer.unwrapScoped(Effect.map(resources, ({ client, options }) =>
    Layer.effect(
      Store,
      Effect.zipRight(migrate, Effect.zipWith(make(options), makeAlertStore, (core, alerts) => ({ ...core, alerts })))
    ).pipe(Layer.provideMerge(client))))

/** Keeps only `Store` in the output: programs should not reach around the store to its client. */
const storeOnly = (layer: Layer.Layer<Store | SqlClient.SqlClient, StoreError>): Layer.Layer<Store, StoreError> =>
  Layer.provide(Layer.effect(Store, Store), layer)

/**
 * Embedded SQLite (WAL), migrated at start. `":memory:"` gives an ephemeral database (a temporary
 * file removed with the layer, so that `query` can open it read-only from its own process);
 * parent directories of a path are created.
 */
export const layerSqlite = (options: SqliteOptions): Layer.Layer<Store, StoreError> =>
  storeOnly(layerSqliteWithClient(options))

export interface SqliteOptions {
  readonly filename: string
  /** Most `query` statements running at once (each is a process); default 2. */
  readonly queryConcurrency?: number | undefined
}

/** `layerSqlite` that also provides its `SqlClient` (tests, benchmarks: `bench/lib/rawInsert.ts`). */
export const layerSqliteWithClient = (
  options: SqliteOptions
): Layer.Layer<Store | SqlClient.SqlClient, StoreError> => fromResources(Resources.sqlite(options))

export interface MariadbOptions {
  readonly host: string
  readonly port: number
  readonly username: string
  readonly password?: Redacted.Redacted<string>
  readonly database: string
  /** The least-privilege account `query` runs as (SECURITY.md); without it `query` is refused. */
  readonly queryUsername?: string | undefined
  readonly queryPassword?: Redacted.Redacted<string> | undefined
  /** Most `query` statements running at once (the query pool's size); default 2. */
  readonly queryConcurrency?: number | undefined
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
    readonly query_username?: string | undefined
    readonly query_password?: Redacted.Redacted<string> | undefined
  } | undefined
  readonly sqlite: { readonly path: string }
  readonly limits?: { readonly query_concurrency: number } | undefined
}): Layer.Layer<Store, StoreError> => storeOnly(layerFromConfigWithClient(config))

/** `layerFromConfig` that also provides its `SqlClient` (the coordination tables of `Cluster.ts`). */
export const layerFromConfigWithClient = (config: Parameters<typeof layerFromConfig>[0]): Layer.Layer<
  Store | SqlClient.SqlClient,
  StoreError
> => {
  const m = config.mariadb
  const queryConcurrency = config.limits?.query_concurrency
  if (m === undefined) return layerSqliteWithClient({ filename: config.sqlite.path, queryConcurrency })
  return fromResources(Effect.flatMap(Resources.parseMariadbOptions(m.options), (extra) =>
    Resources.mariadb({
      host: m.host,
      port: m.port,
      username: m.username,
      password: m.password,
      database: m.database,
      queryUsername: m.query_username,
      queryPassword: m.query_password,
      queryConcurrency,
      ssl: extra.ssl,
      connectTimeoutMs: extra.connectTimeoutMs
    })))
}
