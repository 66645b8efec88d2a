/**
 * The store schema (D8) as `@effect/sql` migrations, one DDL statement each: MariaDB commits DDL
 * implicitly, so a migration holding two statements could half-apply and still be recorded as done
 * (style.md §5.2). Every statement is `IF NOT EXISTS` (or, for an ALTER, checks first), so
 * re-running one is harmless.
 *
 * Column types are written once for both dialects: SQLite maps `VARCHAR`/`MEDIUMTEXT` to TEXT and
 * `BIGINT`/`INT`/`TINYINT` to INTEGER affinity. Instants are BIGINT microseconds UTC (SQLite
 * cannot bind a Date). On MariaDB every table is InnoDB, utf8mb4 with a binary collation, so
 * names compare and sort exactly as on SQLite, and emoji survive.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { ALERT_TABLES } from "./alerts.js"
import { StoreError } from "./errors.js"

export const MIGRATIONS_TABLE = "barto_migrations"

/** Tables the store needs; checked after migrating. */
export const TABLES = [
  "agents",
  "agent_sessions",
  "runs",
  "run_commands",
  "output_lines",
  "agent_offsets",
  "paused_schedules",
  ...ALERT_TABLES,
  "bartos_instances",
  "agent_claims",
  "leader_lease",
  "instance_commands"
] as const

const createTable = (name: string, body: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const options = sql.onDialectOrElse({
      mysql: () => " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
      orElse: () => ""
    })
    yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${name} (${body})${options}`)
  })

const createIndex = (name: string, table: string, columns: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => Effect.asVoid(sql.unsafe(`CREATE INDEX IF NOT EXISTS ${name} ON ${table} (${columns})`))
  )

const dropIndex = (name: string, table: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      Effect.asVoid(sql.unsafe(sql.onDialectOrElse({
        mysql: () => `DROP INDEX IF EXISTS ${name} ON ${table}`,
        orElse: () => `DROP INDEX IF EXISTS ${name}`
      })))
  )

/**
 * A microsecond instant column as readable UTC text, `YYYY-MM-DD HH:MM:SS.ffffff`, the same on
 * both databases (MariaDB whatever the session time zone; NULL stays NULL). Text in this order
 * compares like the instant, so `WHERE started_at > '2026-12-01'` or `> '2026-12-01 10:00'` works
 * on both (a DATETIME would print differently per database and compare differently on SQLite).
 */
const readableTime = (dialect: "mysql" | "sqlite", column: string) =>
  dialect === "mysql"
    ? `DATE_FORMAT(TIMESTAMPADD(MICROSECOND, ${column}, TIMESTAMP '1970-01-01 00:00:00'), '%Y-%m-%d %H:%i:%s.%f')`
    : `strftime('%Y-%m-%d %H:%M:%S', ${column} / 1000000, 'unixepoch') || printf('.%06d', ${column} % 1000000)`

/**
 * A read-only view for `barto-cli query` (documented in the cli README): `select(dialect)` is its
 * SELECT. `IF NOT EXISTS` on both (OR REPLACE would need DROP on MariaDB, which the main account
 * is not granted: SECURITY.md); on MariaDB it runs with the reader's rights (SQL SECURITY INVOKER).
 */
const createView = (name: string, select: (dialect: "mysql" | "sqlite") => string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.onDialectOrElse({
      mysql: () => sql.unsafe(`CREATE SQL SECURITY INVOKER VIEW IF NOT EXISTS ${name} AS ${select("mysql")}`),
      orElse: () => sql.unsafe(`CREATE VIEW IF NOT EXISTS ${name} AS ${select("sqlite")}`)
    })
  })

/** Whether `table` has `column` (the ALTERs below run only when they still have something to do). */
const columnExists = (table: string, column: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.onDialectOrElse({
      mysql: () =>
        sql.unsafe(
          `SELECT COLUMN_NAME FROM information_schema.COLUMNS
           WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?`,
          [table, column]
        ),
      orElse: () => sql.unsafe(`SELECT name FROM pragma_table_info(?) WHERE name = ?`, [table, column])
    })
    return rows.length > 0
  })

/** ALTERs are not `IF NOT EXISTS` on SQLite: each one checks first, so re-running it is harmless too. */
const addColumn = (table: string, column: string, definition: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (yield* columnExists(table, column)) return
    yield* sql.unsafe(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`)
  })

const renameColumn = (table: string, from: string, to: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if (!(yield* columnExists(table, from))) return
    yield* sql.unsafe(`ALTER TABLE ${table} RENAME COLUMN ${from} TO ${to}`)
  })

// Names: agents, schedules and free text are VARCHAR(255) (indexable on both); ids minted by
// agents (run ids, command ids, outbox ids, session ids) VARCHAR(64).
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_create_agents": createTable(
    "agents",
    `name VARCHAR(255) NOT NULL PRIMARY KEY,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    last_ip VARCHAR(255) NULL,
    os_name VARCHAR(255) NULL,
    hostname VARCHAR(255) NULL,
    os_version VARCHAR(255) NULL,
    kernel VARCHAR(255) NULL,
    agent_version VARCHAR(255) NULL`
  ),
  "0002_create_agent_sessions": createTable(
    "agent_sessions",
    `session_id VARCHAR(64) NOT NULL PRIMARY KEY,
    agent VARCHAR(255) NOT NULL,
    ip VARCHAR(255) NOT NULL,
    connected_at BIGINT NOT NULL,
    disconnected_at BIGINT NULL,
    os_name VARCHAR(255) NULL,
    hostname VARCHAR(255) NULL,
    os_version VARCHAR(255) NULL,
    kernel VARCHAR(255) NULL,
    agent_version VARCHAR(255) NULL`
  ),
  "0003_index_agent_sessions_agent": createIndex("agent_sessions_agent", "agent_sessions", "agent, connected_at"),
  // `run_trigger`/`exit_signal`: TRIGGER and SIGNAL are reserved words in MariaDB.
  // `exit_code`/`exit_signal` repeat the last exited command's, so run lists need no join.
  "0004_create_runs": createTable(
    "runs",
    `run_id VARCHAR(64) NOT NULL PRIMARY KEY,
    agent VARCHAR(255) NOT NULL,
    schedule VARCHAR(255) NOT NULL,
    run_trigger VARCHAR(16) NOT NULL,
    state VARCHAR(16) NOT NULL,
    scheduled_at BIGINT NOT NULL,
    started_at BIGINT NULL,
    finished_at BIGINT NULL,
    exit_code INT NULL,
    exit_signal VARCHAR(64) NULL,
    missed_reason VARCHAR(255) NULL`
  ),
  // listCommands, listLines, latestRun, runs(agent[, schedule]), markLost
  "0005_index_runs_agent_schedule_started": createIndex(
    "runs_agent_schedule_started",
    "runs",
    "agent, schedule, started_at"
  ),
  // cmdLines, runs(schedule)
  "0006_index_runs_schedule_agent": createIndex("runs_schedule_agent", "runs", "schedule, agent"),
  // failed, runs(state), markLost
  "0007_index_runs_state_agent": createIndex("runs_state_agent", "runs", "state, agent"),
  // cleanup, retention (finished runs)
  "0008_index_runs_finished_at": createIndex("runs_finished_at", "runs", "finished_at"),
  // runs (newest first, since), cleanup of missed/lost runs
  "0009_index_runs_scheduled_at": createIndex("runs_scheduled_at", "runs", "scheduled_at"),
  "0010_create_run_commands": createTable(
    "run_commands",
    `cmd_uuid VARCHAR(64) NOT NULL PRIMARY KEY,
    run_id VARCHAR(64) NOT NULL,
    cmd_index INT NOT NULL,
    command MEDIUMTEXT NOT NULL,
    started_at BIGINT NULL,
    finished_at BIGINT NULL,
    exit_code INT NULL,
    exit_signal VARCHAR(64) NULL`
  ),
  "0011_index_run_commands_run_id": createIndex("run_commands_run_id", "run_commands", "run_id, cmd_index"),
  // failed (exit_code <> 0), successfulLines (exit_code = 0)
  "0012_index_run_commands_exit_code": createIndex("run_commands_exit_code", "run_commands", "exit_code"),
  // The primary key (run_id, line_seq) is the idempotency guard and serves every line read.
  // MEDIUMTEXT: a line part is up to 64 KiB of UTF-8, more than MariaDB's TEXT holds.
  "0013_create_output_lines": createTable(
    "output_lines",
    `run_id VARCHAR(64) NOT NULL,
    line_seq INT NOT NULL,
    agent VARCHAR(255) NOT NULL,
    cmd_uuid VARCHAR(64) NOT NULL,
    stream VARCHAR(8) NOT NULL,
    ts BIGINT NOT NULL,
    data MEDIUMTEXT NOT NULL,
    continuation TINYINT NOT NULL,
    PRIMARY KEY (run_id, line_seq)`
  ),
  "0014_create_agent_offsets": createTable(
    "agent_offsets",
    `agent VARCHAR(255) NOT NULL,
    outbox_id VARCHAR(64) NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (agent, outbox_id)`
  ),
  "0015_create_paused_schedules": createTable(
    "paused_schedules",
    `agent VARCHAR(255) NOT NULL,
    schedule VARCHAR(255) NOT NULL,
    PRIMARY KEY (agent, schedule)`
  ),
  // Why a run was missed or interrupted: one column for both final states that carry a reason.
  "0016_rename_runs_missed_reason": renameColumn("runs", "missed_reason", "reason"),
  // A missed range (README, run states): its last occurrence; scheduled_at is its first.
  "0017_add_runs_scheduled_until": addColumn("runs", "scheduled_until", "BIGINT NULL"),
  // How many occurrences a row accounts for: 1, or a missed range's count. SUM(occurrences)
  // counts occurrences where COUNT(*) counts rows.
  "0018_add_runs_occurrences": addColumn("runs", "occurrences", "INT NOT NULL DEFAULT 1"),
  // runs(since): the missed ranges that began before `since` and end after it
  "0019_index_runs_scheduled_until": createIndex("runs_scheduled_until", "runs", "scheduled_until"),
  // recentRuns and runs(agent, schedule): newest first by scheduled_at straight from the index
  // (the console's schedule lists; 1,000 runs per schedule would otherwise be sorted per row).
  "0020_index_runs_agent_schedule_scheduled": createIndex(
    "runs_agent_schedule_scheduled",
    "runs",
    "agent, schedule, scheduled_at"
  ),
  // failures of the last day and their count (dashboard, failures page): a range per state
  // instead of every failed run ever (measured at 1M runs on SQLite: 14 ms → 1 ms).
  "0021_index_runs_state_scheduled": createIndex("runs_state_scheduled", "runs", "state, scheduled_at"),
  // 0022–0027: alert events, incidents and deliveries (internal/store/alerts.ts says how they are used)
  "0022_create_alert_events": createTable(
    "alert_events",
    `event_id VARCHAR(64) NOT NULL PRIMARY KEY,
    dedupe_key VARCHAR(512) NOT NULL UNIQUE,
    kind VARCHAR(16) NOT NULL,
    agent VARCHAR(255) NOT NULL,
    schedule VARCHAR(255) NULL,
    run_id VARCHAR(64) NULL,
    at BIGINT NOT NULL,
    incident_id VARCHAR(64) NULL,
    detail MEDIUMTEXT NOT NULL`
  ),
  // `alerts` (recent events), metrics counts by kind
  "0023_index_alert_events_at": createIndex("alert_events_at", "alert_events", "at"),
  "0024_create_alert_incidents": createTable(
    "alert_incidents",
    `incident_id VARCHAR(64) NOT NULL PRIMARY KEY,
    open_key VARCHAR(512) NULL UNIQUE,
    agent VARCHAR(255) NOT NULL,
    schedule VARCHAR(255) NULL,
    first_kind VARCHAR(16) NOT NULL,
    opened_at BIGINT NOT NULL,
    closed_at BIGINT NULL,
    bad_events INT NOT NULL,
    notified_at BIGINT NULL,
    last_notice_at BIGINT NULL,
    reminders INT NOT NULL DEFAULT 0,
    last_event_id VARCHAR(64) NOT NULL`
  ),
  "0025_create_alert_deliveries": createTable(
    "alert_deliveries",
    `delivery_id VARCHAR(320) NOT NULL PRIMARY KEY,
    event_id VARCHAR(64) NOT NULL,
    channel VARCHAR(255) NOT NULL,
    state VARCHAR(16) NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_error VARCHAR(1024) NULL,
    payload MEDIUMTEXT NOT NULL`
  ),
  // the worker's "what is due"
  "0026_index_alert_deliveries_state_next": createIndex(
    "alert_deliveries_state_next",
    "alert_deliveries",
    "state, next_at"
  ),
  // `alerts` (recent deliveries)
  "0027_index_alert_deliveries_created": createIndex("alert_deliveries_created", "alert_deliveries", "created_at"),
  // The last heartbeat of a run (issue 14): JSON {at, progress, status, message}, shown with the run.
  "0028_add_runs_heartbeat": addColumn("runs", "heartbeat", "MEDIUMTEXT NULL"),
  // Views with readable times for `query` (issue 15): same column names as their tables, so a
  // natural `WHERE started_at > '2026-12-01'` works; durations in seconds.
  "0030_create_runs_view": createView("runs_view", (d) =>
    `SELECT run_id, agent, schedule, run_trigger, state,
       ${readableTime(d, "scheduled_at")} AS scheduled_at, ${readableTime(d, "started_at")} AS started_at,
       ${readableTime(d, "finished_at")} AS finished_at, (finished_at - started_at) / 1000000.0 AS duration_secs,
       exit_code, exit_signal, reason, ${readableTime(d, "scheduled_until")} AS scheduled_until, occurrences
     FROM runs`),
  "0031_create_run_commands_view": createView(
    "run_commands_view",
    (d) =>
      `SELECT cmd_uuid, run_id, cmd_index, command, ${readableTime(d, "started_at")} AS started_at,
       ${readableTime(d, "finished_at")} AS finished_at, (finished_at - started_at) / 1000000.0 AS duration_secs,
       exit_code, exit_signal
     FROM run_commands`
  ),
  "0032_create_output_lines_view": createView(
    "output_lines_view",
    (d) =>
      `SELECT run_id, line_seq, agent, cmd_uuid, stream, ${readableTime(d, "ts")} AS ts, data, continuation
     FROM output_lines`
  ),
  // --- several bartos on one MariaDB (issue 18; `Cluster.ts`, `Leader.ts`). Created on SQLite
  // too (one schema), where a single instance uses none of them.
  // One row per running bartos; `heartbeat_at` is the database's clock (microseconds), so the
  // instances' own clocks never decide whether another one is alive.
  "0035_create_bartos_instances": createTable(
    "bartos_instances",
    `instance_id VARCHAR(255) NOT NULL PRIMARY KEY,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    table_version VARCHAR(64) NULL`
  ),
  // The live session registry across instances: the primary key makes one agent per name hold
  // across instances (4003), `instance_id` says which instance holds the socket, `since` when the
  // session began; a claim whose instance stopped heart-beating is stale (its agent is gone).
  "0036_create_agent_claims": createTable(
    "agent_claims",
    `agent VARCHAR(255) NOT NULL PRIMARY KEY,
    outbox_id VARCHAR(64) NOT NULL,
    session_id VARCHAR(64) NOT NULL,
    instance_id VARCHAR(255) NOT NULL,
    ip VARCHAR(255) NOT NULL,
    since BIGINT NOT NULL`
  ),
  // The leader lease: one row, `token` increases at every change of holder (the fencing token).
  "0037_create_leader_lease": createTable(
    "leader_lease",
    `name VARCHAR(32) NOT NULL PRIMARY KEY,
    holder VARCHAR(255) NOT NULL,
    token BIGINT NOT NULL,
    expires_at BIGINT NOT NULL`
  ),
  // Actions for an agent held by another instance: written by the instance that took the
  // request, claimed and answered by the target instance.
  "0038_create_instance_commands": createTable(
    "instance_commands",
    `id VARCHAR(64) NOT NULL PRIMARY KEY,
    target VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    body MEDIUMTEXT NOT NULL,
    state VARCHAR(16) NOT NULL,
    result MEDIUMTEXT NULL`
  ),
  // runs --agent A --limit N (newest first): a range of this index read backwards, instead of
  // sorting every run of the agent (runs_agent_schedule_scheduled serves it only per schedule).
  // instance_commands needs no index of its own: answered rows are removed after a minute.
  "0039_index_runs_agent_scheduled": createIndex("runs_agent_scheduled", "runs", "agent, scheduled_at, run_id"),
  // What the agent's latest session reported in its hello (`barto-cli schedules`), NULL when it did not.
  "0040_add_agents_missed_tick": addColumn("agents", "missed_tick", "VARCHAR(16) NULL"),
  "0041_add_agents_catch_up_limit": addColumn("agents", "catch_up_limit", "INT NULL"),
  // failed with a window (the CLI's default: the last 24 h, the newest 50): commands that exited
  // badly, in the order the window reads them, with exit_code to filter in the index. Before it,
  // every failure ever was sorted (EXPLAIN: filesort / temp b-tree) and then windowed.
  "0042_index_run_commands_finished": createIndex(
    "run_commands_finished",
    "run_commands",
    "finished_at, run_id, cmd_index, exit_code"
  ),
  // failed with a window: runs that ended badly (and their commands that never reported an
  // exit), a range of finished_at per state.
  "0043_index_runs_state_finished": createIndex("runs_state_finished", "runs", "state, finished_at"),
  // recentRuns (the schedule view, `schedules`, the console) and runs(agent, schedule): newest
  // first straight from the index, run id included. With only runs_agent_scheduled (0039) and
  // 0020 (which lacks run_id), SQLite chose 0039 and read the agent's runs newest first until
  // one of the schedule came: for a rarely running schedule, the agent's whole history.
  "0044_index_runs_agent_schedule_scheduled_id": createIndex(
    "runs_agent_schedule_scheduled_id",
    "runs",
    "agent, schedule, scheduled_at, run_id"
  ),
  // failed with a window: 0042 with exit_signal, so the commands part decides from the index alone
  // (a command without exit code fails when it has a signal) instead of reading each command's
  // row; with 1,000,000 runs on MariaDB that read was ~2.5 ms of each of failed's two statements.
  "0045_index_run_commands_finished_signal": Effect.zipRight(
    createIndex(
      "run_commands_finished_signal",
      "run_commands",
      "finished_at, run_id, cmd_index, exit_code, exit_signal"
    ),
    dropIndex("run_commands_finished", "run_commands")
  )
}

const LATEST = Math.max(...Object.keys(migrations).map((k) => Number(k.slice(0, 4))))

/**
 * Runs the migrations, logs what was applied and then checks the outcome, because the v3
 * Migrator can report success without doing anything: any error while recording migrations is
 * read as "locked" and swallowed, and a failing migration is a defect (style.md §5.2).
 * Returns the migrations applied by this call.
 */
export const migrate: Effect.Effect<ReadonlyArray<readonly [number, string]>, StoreError, SqlClient.SqlClient> = Effect
  .suspend(() => migrateWith({ verifyRetries: 10 }))

export const migrateWith = (
  options: { readonly verifyRetries: number }
): Effect.Effect<ReadonlyArray<readonly [number, string]>, StoreError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const applied = yield* Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: MIGRATIONS_TABLE }).pipe(
      Effect.catchAllDefect((defect) =>
        Effect.fail(
          new StoreError({ message: `store migration failed: ${Cause.pretty(Cause.die(defect))}`, cause: defect })
        )
      ),
      Effect.mapError((e) =>
        e._tag === "StoreError" ? e : new StoreError({ message: `store migration failed: ${e.message}`, cause: e })
      )
    )
    if (applied.length > 0) {
      yield* Effect.logInfo(`store: applied ${applied.length} migration(s)`).pipe(
        Effect.annotateLogs("migrations", applied.map(([id, name]) => `${id}_${name}`).join(", "))
      )
    }
    // Another bartos migrating the same database concurrently makes ours a silent no-op: give it
    // a few seconds to finish before calling the schema broken.
    yield* verify(sql).pipe(
      Effect.retry({ schedule: Schedule.spaced("500 millis"), times: applied.length > 0 ? 0 : options.verifyRetries })
    )
    return applied
  })

const verify = (sql: SqlClient.SqlClient): Effect.Effect<void, StoreError> =>
  Effect.gen(function*() {
    const rows = yield* sql.unsafe<{ readonly latest: unknown }>(
      `SELECT MAX(migration_id) AS latest FROM ${MIGRATIONS_TABLE}`
    )
    const latest = Number(rows[0]?.latest ?? 0)
    if (latest < LATEST) {
      return yield* new StoreError({
        message: `store schema is at migration ${latest}, expected ${LATEST}: migrations did not run (see the log)`
      })
    }
    for (const table of TABLES) {
      yield* sql.unsafe(`SELECT 1 FROM ${table} WHERE 1 = 0`)
    }
    yield* sql.unsafe(`SELECT reason, scheduled_until, occurrences, heartbeat FROM runs WHERE 1 = 0`)
  }).pipe(
    Effect.catchTag("SqlError", (e) =>
      Effect.fail(new StoreError({ message: `store schema check failed: ${String(e.cause ?? e.message)}`, cause: e })))
  )
