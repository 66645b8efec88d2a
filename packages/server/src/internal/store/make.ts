/**
 * The `Store` implementation, written once against `SqlClient`; the few dialect differences
 * (upsert syntax, row locks) are chosen with `sql.onDialectOrElse` when the store is made.
 *
 * Conventions of this file:
 * - statements are plain text with `?` placeholders (`sql.unsafe`), the same on both drivers
 *   (one exception: SQLite's line insert binds the shared run/agent/command as `@r`, `@a`, `@c`);
 * - ingest is written once as a generator of statements with two drivers (see "ingest" below):
 *   synchronous on SQLite, statement by statement in a transaction on MariaDB;
 * - values read back go through `num`/`numOrNull`, because MariaDB may return BIGINT as strings
 *   (style.md §5.3) and booleans are stored as 0/1;
 * - result rows are built with validation off: the values come from our own columns, and the
 *   domain row classes must be instances (the codec's encoder checks `instanceof`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import type Sqlite from "better-sqlite3"
import type { AgentRecord, ClientInfo, Micros, RunId, RunState, Trigger } from "@barto/domain/Messages"
import { FailedRow, LineRow, RunRow } from "@barto/domain/Messages"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import {
  type IngestResult,
  type LineConflict,
  type QueryCaps,
  type QueryResult,
  type RecentRuns,
  recentKey,
  type RefusedRecord,
  type RunsFilter,
  type SessionInfo,
  type StoreShape
} from "../../Store.js"
import { QueryRefused, StoreError } from "./errors.js"
import { checkReadOnly } from "./guard.js"
import { SqliteDirect } from "./sqliteClient.js"

export interface MakeOptions {
  readonly kind: "mariadb" | "sqlite"
  readonly location: string
  /** Runs an already checked read-only statement (see `guard.ts`) in the dialect's sandbox. */
  readonly runQuery: (sql: string, caps: QueryCaps) => Effect.Effect<QueryResult, StoreError | QueryRefused>
  /** Statements running at once, across every client (each holds a process or a connection). */
  readonly queryConcurrency: number
}

type Row = Record<string, unknown>

const num = (v: unknown): number => (typeof v === "number" ? v : Number(v))
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v))
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))

/** VARCHAR(n) counts characters; cut by code point so no surrogate pair is split. */
const clip = (s: string, max = 255): string => (s.length <= max ? s : Array.from(s).slice(0, max).join(""))

/** MariaDB: `affectedRows`; SQLite: `changes`. */
const affected = (raw: unknown): number => {
  const r = raw as { affectedRows?: unknown; changes?: unknown } | null
  return num(r?.affectedRows ?? r?.changes ?? 0)
}

/**
 * `IN (?, …)` lists padded to a power of two by repeating the last value: MariaDB keeps one
 * prepared statement per distinct text, and padding bounds how many a connection collects.
 */
const inList = <A extends string | number>(values: ReadonlyArray<A>): { readonly text: string; readonly params: Array<A> } => {
  let size = 1
  while (size < values.length) size *= 2
  const params = values.slice()
  while (params.length < size) params.push(values[values.length - 1])
  return { text: `(${params.map(() => "?").join(", ")})`, params }
}

const chunk = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/**
 * Line inserts are split into near-equal chunks of at most this many rows (8 parameters each;
 * SQLite allows 32,766 parameters, and on SQLite every statement saved counts) and about this many
 * bytes of line data (MariaDB refuses a packet over `max_allowed_packet`, 16 MiB by default, and
 * 500 lines of 64 KiB would be 32 MiB).
 */
const LINE_CHUNK_ROWS = { mysql: 500, sqlite: 1000 } as const
const LINE_CHUNK_BYTES = 4 * 1024 * 1024
/** Runs (or failed commands) per page of `list`, `cmd` and `failed`. */
const PAGE_RUNS = 256
/** Output lines per page: one query reads at most this many (plus what arrives meanwhile). */
const PAGE_LINES = 500

/** One turn of the event loop (I/O included), between pages of a large read. */
const breathe = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** Run ids per delete transaction in cleanup and retention. */
const DELETE_CHUNK = 256
const MICROS_PER_DAY = 86_400_000_000
const LOST_OR_FAILED = "('failed', 'timed_out', 'interrupted', 'lost')"

const RUN_COLUMNS = "r.run_id, r.agent, r.schedule, r.run_trigger, r.state, r.scheduled_at, r.started_at, r.finished_at, " +
  "r.exit_code, r.exit_signal, r.reason, r.scheduled_until, r.occurrences"

// A line carries its run's state and exit code (what `list`/`cmd` head each run with), not the
// exit code of the command that printed it: a run whose printing command exited 0 and whose
// silent last command exited 3 is "failed (exit 3)", as `runs` says.
const LINE_SELECT = `SELECT ol.run_id, r.agent, r.schedule, ol.cmd_uuid, ol.line_seq, ol.stream, ol.ts, ol.data,
  ol.continuation, r.exit_code, r.state
FROM output_lines ol
JOIN runs r ON r.run_id = ol.run_id`

const toRunRow = (r: Row): RunRow =>
  new RunRow({
    runId: String(r.run_id) as RunId,
    agent: String(r.agent),
    schedule: String(r.schedule),
    trigger: String(r.run_trigger) as Trigger,
    state: String(r.state) as RunState,
    scheduledAt: num(r.scheduled_at) as Micros,
    startedAt: numOrNull(r.started_at) as Micros | null,
    finishedAt: numOrNull(r.finished_at) as Micros | null,
    exitCode: numOrNull(r.exit_code),
    signal: strOrNull(r.exit_signal),
    reason: strOrNull(r.reason),
    scheduledUntil: numOrNull(r.scheduled_until) as Micros | null,
    occurrences: numOrNull(r.occurrences) ?? 1
  }, true)

const toLineRow = (r: Row): LineRow =>
  new LineRow({
    runId: String(r.run_id) as RunId,
    agent: String(r.agent),
    schedule: String(r.schedule),
    cmdUuid: String(r.cmd_uuid),
    lineSeq: num(r.line_seq),
    stream: String(r.stream) === "stderr" ? "stderr" : "stdout",
    ts: num(r.ts) as Micros,
    data: String(r.data),
    continuation: num(r.continuation) !== 0,
    exitCode: numOrNull(r.exit_code),
    runState: String(r.state) as RunState
  }, true)

const storeError = (what: string) => (e: SqlError): StoreError => {
  const cause = e.cause as { message?: unknown } | undefined
  const detail = typeof cause?.message === "string" ? cause.message : e.message
  return new StoreError({ message: `${what}: ${detail}`, cause: e })
}

/**
 * Worth retrying: MariaDB deadlock (1213) or lock wait timeout (1205), e.g. gap locks of two
 * agents' inserts meeting in `output_lines`; SQLite busy (another process holds the file).
 */
const isTransient = (e: SqlError): boolean => {
  const cause = e.cause as { errno?: unknown; code?: unknown } | undefined
  return cause?.errno === 1213 || cause?.errno === 1205 || cause?.code === "SQLITE_BUSY"
}

type OutputLine = Extract<AgentRecord, { readonly _tag: "OutputLine" }>

/** When a record is the first one seen of its run, the instant its placeholder run gets. */
const recordTime = (r: AgentRecord): number => {
  switch (r._tag) {
    case "RunStarted":
      return r.startedAt
    case "CommandStarted":
      return r.startedAt
    case "OutputLine":
      return r.ts
    case "CommandExited":
      return r.finishedAt
    case "RunFinished":
      return r.finishedAt
    case "RunMissed":
      return r.scheduledAt
  }
}

export const make = (options: MakeOptions): Effect.Effect<StoreShape, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const mysql = sql.onDialectOrElse({ mysql: () => true, orElse: () => false })

    // --- dialect-specific statement texts ------------------------------------------------------
    /** `INSERT … <ignore duplicate key>`: MariaDB has no ON CONFLICT; a no-op update ignores only duplicates (unlike INSERT IGNORE, which also hides truncation). */
    const ignoreDup = (pkColumn: string, conflictTarget: string) =>
      mysql ? `ON DUPLICATE KEY UPDATE ${pkColumn} = ${pkColumn}` : `ON CONFLICT (${conflictTarget}) DO NOTHING`
    const forUpdate = sql.onDialectOrElse({ mysql: () => " FOR UPDATE", orElse: () => "" })

    // MariaDB applies the assignments left to right (each sees the ones before): `reason` is
    // decided on the old state, before `state` changes.
    const upsertRunStarted = mysql
      ? `INSERT INTO runs (run_id, agent, schedule, run_trigger, state, scheduled_at, started_at)
         VALUES (?, ?, ?, ?, 'running', ?, ?)
         ON DUPLICATE KEY UPDATE schedule = VALUES(schedule), run_trigger = VALUES(run_trigger),
           scheduled_at = VALUES(scheduled_at), started_at = VALUES(started_at),
           reason = IF(state IN ('lost', 'missed'), NULL, reason),
           state = IF(state IN ('lost', 'missed'), 'running', state)`
      : `INSERT INTO runs (run_id, agent, schedule, run_trigger, state, scheduled_at, started_at)
         VALUES (?, ?, ?, ?, 'running', ?, ?)
         ON CONFLICT (run_id) DO UPDATE SET schedule = excluded.schedule, run_trigger = excluded.run_trigger,
           scheduled_at = excluded.scheduled_at, started_at = excluded.started_at,
           reason = CASE WHEN runs.state IN ('lost', 'missed') THEN NULL ELSE runs.reason END,
           state = CASE WHEN runs.state IN ('lost', 'missed') THEN 'running' ELSE runs.state END`

    const upsertCommandStarted = mysql
      ? `INSERT INTO run_commands (cmd_uuid, run_id, cmd_index, command, started_at) VALUES (?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE cmd_index = VALUES(cmd_index), command = VALUES(command), started_at = VALUES(started_at)`
      : `INSERT INTO run_commands (cmd_uuid, run_id, cmd_index, command, started_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (cmd_uuid) DO UPDATE SET cmd_index = excluded.cmd_index, command = excluded.command,
           started_at = excluded.started_at`

    // An exit for a command never announced still records the exit, under a placeholder command.
    const upsertCommandExited = mysql
      ? `INSERT INTO run_commands (cmd_uuid, run_id, cmd_index, command, finished_at, exit_code, exit_signal)
         VALUES (?, ?, -1, 'unknown', ?, ?, ?)
         ON DUPLICATE KEY UPDATE finished_at = VALUES(finished_at), exit_code = VALUES(exit_code),
           exit_signal = VALUES(exit_signal)`
      : `INSERT INTO run_commands (cmd_uuid, run_id, cmd_index, command, finished_at, exit_code, exit_signal)
         VALUES (?, ?, -1, 'unknown', ?, ?, ?)
         ON CONFLICT (cmd_uuid) DO UPDATE SET finished_at = excluded.finished_at, exit_code = excluded.exit_code,
           exit_signal = excluded.exit_signal`

    const insertRunMissed = `INSERT INTO runs
      (run_id, agent, schedule, run_trigger, state, scheduled_at, reason, scheduled_until, occurrences)
      VALUES (?, ?, ?, ?, 'missed', ?, ?, ?, ?) ${ignoreDup("run_id", "run_id")}`

    const insertPlaceholderRun = `INSERT INTO runs (run_id, agent, schedule, run_trigger, state, scheduled_at, started_at)
      VALUES (?, ?, 'unknown', 'schedule', 'running', ?, ?) ${ignoreDup("run_id", "run_id")}`

    const lineInsertTexts = new Map<number, string>()
    const lineInsert = (rows: number): string => {
      let text = lineInsertTexts.get(rows)
      if (text === undefined) {
        text = `INSERT INTO output_lines (run_id, line_seq, agent, cmd_uuid, stream, ts, data, continuation) VALUES ${
          Array.from({ length: rows }, () => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")
        } ${ignoreDup("line_seq", "run_id, line_seq")}`
        lineInsertTexts.set(rows, text)
      }
      return text
    }

    /**
     * SQLite: the lines of one command, with the run id, agent and command id bound once as named
     * parameters (`@r`, `@a`, `@c`) shared by every row. Binding 3 of 8 values once instead of per
     * row saves a third of the statement's cost (each is a string copied into SQLite).
     */
    const sharedLineInsertTexts = new Map<number, string>()
    const sharedLineInsert = (rows: number): string => {
      let text = sharedLineInsertTexts.get(rows)
      if (text === undefined) {
        text = `INSERT INTO output_lines (run_id, line_seq, agent, cmd_uuid, stream, ts, data, continuation) VALUES ${
          Array.from({ length: rows }, () => "(@r, ?, @a, @c, ?, ?, ?, ?)").join(", ")
        } ON CONFLICT (run_id, line_seq) DO NOTHING`
        sharedLineInsertTexts.set(rows, text)
      }
      return text
    }

    const upsertAgentSeen = mysql
      ? `INSERT INTO agents (name, first_seen_at, last_seen_at, last_ip) VALUES (?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE last_seen_at = VALUES(last_seen_at), last_ip = VALUES(last_ip)`
      : `INSERT INTO agents (name, first_seen_at, last_seen_at, last_ip) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET last_seen_at = excluded.last_seen_at, last_ip = excluded.last_ip`

    const run = (text: string, params: ReadonlyArray<unknown> = []) => sql.unsafe<Row>(text, params)
    const exec = (text: string, params: ReadonlyArray<unknown> = []) => Effect.map(sql.unsafe(text, params).raw, affected)

    // --- ingest ----------------------------------------------------------------------------------
    //
    // The ingest of a batch is written once, as a generator that yields its statements
    // (`IngestStep`) and receives their results, and run by one of two drivers:
    // - SQLite (`SqliteDirect`): synchronously, in one call holding the connection, with its own
    //   prepared statements. better-sqlite3 is synchronous anyway, and running each statement as
    //   an Effect (cache lookup, fiber steps, the transaction's scope and spans) cost ~0.5 ms per
    //   batch, as much as inserting 200 lines.
    // - MariaDB: statement by statement on the transaction's connection (round trips dominate;
    //   the `sql` statement layer (compile, span, transforms) is still skipped).

    type IngestStep =
      | { readonly _tag: "rows"; readonly text: string; readonly params: ReadonlyArray<unknown> }
      | { readonly _tag: "exec"; readonly text: string; readonly params: ReadonlyArray<unknown> }
    type IngestProgram = Generator<IngestStep, number, ReadonlyArray<Row> | number>

    const rowsOf = function*(text: string, params: ReadonlyArray<unknown>): Generator<IngestStep, ReadonlyArray<Row>, any> {
      return yield { _tag: "rows", text, params }
    }
    const execOf = function*(text: string, params: ReadonlyArray<unknown>): Generator<IngestStep, number, any> {
      return yield { _tag: "exec", text, params }
    }

    /** What a batch did beside storing, to be logged after the commit and answered to the agent. */
    interface IngestNotes {
      /** Runs for which this batch created a placeholder. */
      readonly placeholders: Array<string>
      readonly refused: Array<RefusedRecord>
      readonly lineConflicts: Array<LineConflict>
    }
    const newNotes = (): IngestNotes => ({ placeholders: [], refused: [], lineConflicts: [] })

    const lineChunkRows = mysql ? LINE_CHUNK_ROWS.mysql : LINE_CHUNK_ROWS.sqlite

    /**
     * Near-equal chunks by row count (fewer distinct statement texts), then cut further where the
     * data would make one statement too large.
     */
    const lineChunks = (lines: ReadonlyArray<OutputLine>): Array<ReadonlyArray<OutputLine>> => {
      const size = Math.ceil(lines.length / Math.ceil(lines.length / lineChunkRows))
      const parts: Array<ReadonlyArray<OutputLine>> = []
      for (const part of chunk(lines, size)) {
        let start = 0
        let bytes = 0
        for (let i = 0; i < part.length; i++) {
          // UTF-16 length x3 bounds the UTF-8 size without encoding.
          const b = part[i].data.length * 3
          if (i > start && bytes + b > LINE_CHUNK_BYTES) {
            parts.push(part.slice(start, i))
            start = i
            bytes = 0
          }
          bytes += b
        }
        parts.push(part.slice(start))
      }
      return parts
    }

    /** MariaDB: every value of every row as a `?`. */
    const insertLinesPositional = function*(agent: string, lines: ReadonlyArray<OutputLine>) {
      for (const part of lineChunks(lines)) {
        const params: Array<unknown> = []
        for (const l of part) {
          params.push(l.runId, l.lineSeq, agent, l.cmdUuid, l.stream, l.ts, l.data, l.continuation ? 1 : 0)
        }
        yield* execOf(lineInsert(part.length), params)
      }
    }

    /**
     * SQLite: per command (almost always one per batch), the run id, agent and command id bound
     * once as named parameters (better-sqlite3 binds a trailing plain object to them), the other
     * values positionally. The order across commands does not matter: they touch different keys.
     */
    const insertLinesShared = function*(agent: string, lines: ReadonlyArray<OutputLine>) {
      const groups = new Map<string, Array<OutputLine>>()
      let last: Array<OutputLine> | undefined
      let lastRun = ""
      let lastCmd = ""
      for (const l of lines) {
        if (last === undefined || l.runId !== lastRun || l.cmdUuid !== lastCmd) {
          const key = `${l.runId}\u0000${l.cmdUuid}`
          last = groups.get(key)
          if (last === undefined) groups.set(key, last = [])
          lastRun = l.runId
          lastCmd = l.cmdUuid
        }
        last.push(l)
      }
      for (const group of groups.values()) {
        for (const part of lineChunks(group)) {
          const params: Array<unknown> = new Array(part.length * 5 + 1)
          let k = 0
          for (const l of part) {
            params[k++] = l.lineSeq
            params[k++] = l.stream
            params[k++] = l.ts
            params[k++] = l.data
            params[k++] = l.continuation ? 1 : 0
          }
          params[k] = { r: part[0].runId, a: agent, c: part[0].cmdUuid }
          yield* execOf(sharedLineInsert(part.length), params)
        }
      }
    }

    /** A run already stored: who owns it, and its highest line number (null without lines). */
    interface StoredRun {
      readonly agent: string
      readonly lastLine: number | null
    }

    /** The stored runs among the batch's run ids (one query per chunk of ids, usually one). */
    const storedRuns = function*(records: ReadonlyArray<AgentRecord>) {
      const ids = new Set<string>()
      let lastRun: string | undefined
      for (const r of records) {
        // Consecutive records mostly share their run: skip the lookups then.
        if (r.runId === lastRun) continue
        lastRun = r.runId
        ids.add(r.runId)
      }
      const stored = new Map<string, StoredRun>()
      for (const part of chunk(Array.from(ids), DELETE_CHUNK)) {
        const list = inList(part)
        // MAX over the primary key (run_id, line_seq) is one index probe on both databases.
        const rows = yield* rowsOf(
          `SELECT r.run_id, r.agent,
             (SELECT MAX(ol.line_seq) FROM output_lines ol WHERE ol.run_id = r.run_id) AS last_line
           FROM runs r WHERE r.run_id IN ${list.text}`,
          list.params
        )
        for (const row of rows) stored.set(String(row.run_id), { agent: String(row.agent), lastLine: numOrNull(row.last_line) })
      }
      return stored
    }

    /** The run each already stored command belongs to, for the commands this batch starts or ends. */
    const storedCommands = function*(records: ReadonlyArray<AgentRecord>) {
      const ids = new Set<string>()
      for (const r of records) if (r._tag === "CommandStarted" || r._tag === "CommandExited") ids.add(r.cmdUuid)
      const stored = new Map<string, string>()
      for (const part of chunk(Array.from(ids), DELETE_CHUNK)) {
        const list = inList(part)
        const rows = yield* rowsOf(`SELECT cmd_uuid, run_id FROM run_commands WHERE cmd_uuid IN ${list.text}`, list.params)
        for (const row of rows) stored.set(String(row.cmd_uuid), String(row.run_id))
      }
      return stored
    }

    /**
     * Runs are owned by the agent that first reported them (issue 11): a record about another
     * agent's run, or about a command of another run, is refused and never written. The records
     * are otherwise stored, in order; the Ack still covers the refused ones, because resending
     * them can never make them acceptable (a refused batch left unacked would stall the agent's
     * outbox forever), and the agent is told with a ProtocolError.
     */
    const owned = (
      agent: string,
      records: ReadonlyArray<AgentRecord>,
      runs: Map<string, StoredRun>,
      commands: Map<string, string>,
      notes: IngestNotes
    ): ReadonlyArray<AgentRecord> => {
      let kept: Array<AgentRecord> | undefined
      for (let i = 0; i < records.length; i++) {
        const r = records[i]
        const run = runs.get(r.runId)
        let reason: RefusedRecord["reason"] | undefined
        if (run !== undefined && run.agent !== agent) reason = "foreign_run"
        else if (r._tag === "CommandStarted" || r._tag === "CommandExited") {
          const owner = commands.get(r.cmdUuid)
          if (owner !== undefined && owner !== r.runId) reason = "foreign_command"
          else commands.set(r.cmdUuid, r.runId)
        }
        if (reason === undefined) {
          kept?.push(r)
          continue
        }
        notes.refused.push({ seq: r.seq, runId: r.runId, reason })
        kept ??= records.slice(0, i)
      }
      return kept ?? records
    }

    /** Records of runs this batch does not start and the store has never seen get a placeholder run. */
    const ensureRuns = function*(agent: string, records: ReadonlyArray<AgentRecord>, runs: Map<string, StoredRun>, notes: IngestNotes) {
      const started = new Set<string>()
      const firstTime = new Map<string, number>()
      let lastRun: string | undefined
      for (const r of records) {
        if (r.runId === lastRun) continue
        lastRun = r.runId
        if (runs.has(r.runId)) continue
        if (r._tag === "RunStarted" || r._tag === "RunMissed") started.add(r.runId)
        else if (!started.has(r.runId) && !firstTime.has(r.runId)) firstTime.set(r.runId, recordTime(r))
      }
      for (const [id, at] of firstTime) {
        notes.placeholders.push(id)
        yield* execOf(insertPlaceholderRun, [id, agent, at, at])
      }
    }

    const sameLine = (l: OutputLine, row: Row) =>
      String(row.data) === l.data && String(row.stream) === l.stream && String(row.cmd_uuid) === l.cmdUuid &&
      num(row.ts) === l.ts && (num(row.continuation) !== 0) === l.continuation

    /**
     * Lines whose (run, line number) is already taken (by an earlier batch or earlier in this one)
     * are not inserted: an identical one is a harmless resend, a different one is a conflict that
     * is logged and counted. The line stored first stays. Runs are owned, so only the owner
     * itself can ever conflict with its own lines. Only runs whose stored lines reach the batch's
     * line numbers are looked up, so appending lines (the normal case) costs no query.
     */
    const newLines = function*(lines: ReadonlyArray<OutputLine>, runs: Map<string, StoredRun>, notes: IngestNotes) {
      const byRun = new Map<string, Map<number, OutputLine>>()
      const kept: Array<OutputLine> = []
      let dropped = false
      const overlapping = new Map<string, Array<number>>()
      for (const l of lines) {
        let seen = byRun.get(l.runId)
        if (seen === undefined) byRun.set(l.runId, seen = new Map())
        const first = seen.get(l.lineSeq)
        if (first !== undefined) {
          dropped = true
          if (!(first.data === l.data && first.stream === l.stream && first.cmdUuid === l.cmdUuid && first.ts === l.ts &&
            first.continuation === l.continuation)) notes.lineConflicts.push({ seq: l.seq, runId: l.runId, lineSeq: l.lineSeq })
          continue
        }
        seen.set(l.lineSeq, l)
        const lastLine = runs.get(l.runId)?.lastLine ?? null
        if (lastLine !== null && l.lineSeq <= lastLine) {
          let list = overlapping.get(l.runId)
          if (list === undefined) overlapping.set(l.runId, list = [])
          list.push(l.lineSeq)
        }
        kept.push(l)
      }
      if (overlapping.size === 0) return dropped ? kept : lines
      const taken = new Set<OutputLine>()
      for (const [runId, lineSeqs] of overlapping) {
        const seen = byRun.get(runId)!
        for (const part of chunk(lineSeqs, DELETE_CHUNK)) {
          const list = inList(part)
          const rows = yield* rowsOf(
            `SELECT line_seq, cmd_uuid, stream, ts, data, continuation FROM output_lines
             WHERE run_id = ? AND line_seq IN ${list.text}`,
            [runId, ...list.params]
          )
          for (const row of rows) {
            const l = seen.get(num(row.line_seq))!
            taken.add(l)
            if (!sameLine(l, row)) notes.lineConflicts.push({ seq: l.seq, runId, lineSeq: l.lineSeq })
          }
        }
      }
      return taken.size === 0 ? kept : kept.filter((l) => !taken.has(l))
    }

    const applyRecord = function*(agent: string, r: AgentRecord) {
      switch (r._tag) {
        case "RunStarted":
          return yield* execOf(upsertRunStarted, [r.runId, agent, r.schedule, r.trigger, r.scheduledAt, r.startedAt])
        case "CommandStarted":
          return yield* execOf(upsertCommandStarted, [r.cmdUuid, r.runId, r.cmdIndex, r.command, r.startedAt])
        case "CommandExited":
          yield* execOf(upsertCommandExited, [r.cmdUuid, r.runId, r.finishedAt, r.exitCode, clipSignal(r.signal)])
          // The run's exit status is the one that decided it: the first failure (non-zero or a
          // signal) sticks, so [0, 3, 0] under on_failure = "continue" reads "exit 3", not 0.
          return yield* execOf(
            `UPDATE runs SET exit_code = ?, exit_signal = ? WHERE run_id = ?
               AND exit_signal IS NULL AND (exit_code IS NULL OR exit_code = 0)`,
            [r.exitCode, clipSignal(r.signal), r.runId]
          )
        case "RunFinished":
          // A final state is final: only a running or lost run takes one (lost = reconciled).
          return yield* execOf(
            `UPDATE runs SET state = ?, finished_at = ?, reason = ? WHERE run_id = ? AND state IN ('running', 'lost')`,
            [r.state, r.finishedAt, r.reason === undefined ? null : clip(r.reason), r.runId]
          )
        case "RunMissed":
          // A range row stands for `count` occurrences, scheduled_at (first) to scheduled_until (last).
          return yield* execOf(insertRunMissed, [
            r.runId,
            agent,
            r.schedule,
            r.trigger ?? "schedule",
            r.scheduledAt,
            clip(r.reason),
            r.until ?? null,
            r.count ?? 1
          ])
        case "OutputLine":
          return 0
      }
    }

    /** The batch inside its transaction; returns the new offset. */
    const ingestProgram = function*(
      agent: string,
      outboxId: string,
      records: ReadonlyArray<AgentRecord>,
      notes: IngestNotes,
      sharedLines: boolean
    ): IngestProgram {
      const rows = yield* rowsOf(
        `SELECT last_seq FROM agent_offsets WHERE agent = ? AND outbox_id = ?${forUpdate}`,
        [agent, outboxId]
      )
      const offset = rows.length > 0 ? num(rows[0].last_seq) : -1
      // Agents send strictly increasing seqs: then this is one pass and no copy.
      let ordered = true
      let prev = offset
      for (const r of records) {
        if (r.seq <= prev) {
          ordered = false
          break
        }
        prev = r.seq
      }
      let fresh: ReadonlyArray<AgentRecord> = records
      if (!ordered) {
        const kept: Array<AgentRecord> = []
        const seen = new Set<number>()
        for (const r of records) {
          if (r.seq > offset && !seen.has(r.seq)) {
            seen.add(r.seq)
            kept.push(r)
          }
        }
        kept.sort((a, b) => a.seq - b.seq)
        fresh = kept
      }
      if (fresh.length === 0) return offset
      const runs = yield* storedRuns(fresh)
      const commands = yield* storedCommands(fresh)
      const accepted = owned(agent, fresh, runs, commands, notes)
      yield* ensureRuns(agent, accepted, runs, notes)
      const lines: Array<OutputLine> = []
      for (const r of accepted) {
        // Lines touch no other record's rows, so they go in bulk after the rest.
        if (r._tag === "OutputLine") lines.push(r)
        else yield* applyRecord(agent, r)
      }
      const insert = lines.length > 0 ? yield* newLines(lines, runs, notes) : lines
      if (insert.length > 0) yield* (sharedLines ? insertLinesShared(agent, insert) : insertLinesPositional(agent, insert))
      const upTo = fresh[fresh.length - 1].seq
      yield* execOf(`UPDATE agent_offsets SET last_seq = ? WHERE agent = ? AND outbox_id = ?`, [upTo, agent, outboxId])
      return upTo
    }

    // (agent, outboxId) pairs whose offset row is known to exist. Creating the row outside the
    // batch transaction means `SELECT … FOR UPDATE` always finds a row to lock: two first batches
    // racing on a missing row would otherwise deadlock on MariaDB's gap locks.
    const knownOffsets = new Set<string>()
    const offsetKey = (agent: string, outboxId: string) => `${agent}\u0000${outboxId}`
    const rememberOffset = (key: string) => {
      if (knownOffsets.size > 100_000) knownOffsets.clear()
      knownOffsets.add(key)
    }
    const insertOffsetRow =
      `INSERT INTO agent_offsets (agent, outbox_id, last_seq) VALUES (?, ?, -1) ${ignoreDup("last_seq", "agent, outbox_id")}`

    /** SQLite: the whole batch in one synchronous call holding the connection. */
    const directStatements = new Map<string, Sqlite.Statement<Array<unknown>>>()
    const ingestDirect = (direct: SqliteDirect, agent: string, outboxId: string, records: ReadonlyArray<AgentRecord>) =>
      direct.exclusive((db) => {
        const statement = (text: string) => {
          let st = directStatements.get(text)
          if (st === undefined) {
            // Bounded like the client's cache: statement texts are few (a line insert per size).
            if (directStatements.size >= 512) directStatements.clear()
            st = db.prepare<Array<unknown>>(text)
            directStatements.set(text, st)
          }
          return st
        }
        const notes = newNotes()
        const key = offsetKey(agent, outboxId)
        // IMMEDIATE: take the write lock at once (a reader process never blocks it in WAL mode).
        statement("BEGIN IMMEDIATE").run()
        try {
          // No gap locks here: the offset row can be created inside the transaction.
          if (!knownOffsets.has(key)) statement(insertOffsetRow).run(agent, outboxId)
          const program = ingestProgram(agent, outboxId, records, notes, true)
          let step = program.next(0)
          while (!step.done) {
            const { _tag, params, text } = step.value
            const st = statement(text)
            step = program.next(_tag === "rows" ? st.all(...params) as ReadonlyArray<Row> : st.run(...params).changes)
          }
          statement("COMMIT").run()
          rememberOffset(key)
          return { upTo: step.value, notes }
        } catch (e) {
          try {
            if (db.inTransaction) db.exec("ROLLBACK")
          } catch {
            // The original error says more; SQLite has rolled back already if ROLLBACK fails.
          }
          throw e
        }
      })

    const ensureOffsetRow = (agent: string, outboxId: string) => {
      const key = offsetKey(agent, outboxId)
      if (knownOffsets.has(key)) return Effect.void
      return exec(insertOffsetRow, [agent, outboxId]).pipe(Effect.tap(() => rememberOffset(key)))
    }

    /** MariaDB (and SQLite without `SqliteDirect`): statement by statement in `withTransaction`. */
    const ingestStatements = (agent: string, outboxId: string, records: ReadonlyArray<AgentRecord>) =>
      Effect.zipRight(
        ensureOffsetRow(agent, outboxId),
        sql.withTransaction(Effect.gen(function*() {
          // Always present inside withTransaction; the types cannot say so.
          const conn = yield* Effect.serviceOption(SqlClient.TransactionConnection)
          const onConn: Connection | undefined = Option.isSome(conn) ? conn.value[0] : undefined
          const notes = newNotes()
          const program = ingestProgram(agent, outboxId, records, notes, false)
          let step = program.next(0)
          while (!step.done) {
            const { _tag, params, text } = step.value
            const result: ReadonlyArray<Row> | number = onConn !== undefined
              ? (_tag === "rows"
                ? (yield* onConn.execute(text, params, undefined)) as ReadonlyArray<Row>
                : affected(yield* onConn.executeRaw(text, params)))
              : (_tag === "rows" ? yield* run(text, params) : yield* exec(text, params))
            step = program.next(result)
          }
          return { upTo: step.value, notes }
        }))
      )

    const logNotes = (agent: string, notes: IngestNotes) =>
      Effect.gen(function*() {
        for (const runId of notes.placeholders) {
          yield* Effect.logWarning("store: records for an unknown run; created a placeholder run").pipe(
            Effect.annotateLogs({ agent, runId })
          )
        }
        if (notes.refused.length > 0) {
          const first = notes.refused[0]
          yield* Effect.logWarning(
            `store: refused ${notes.refused.length} record(s) about runs or commands the agent does not own ` +
              `(first: seq ${first.seq}, run ${first.runId}, ${first.reason})`
          ).pipe(Effect.annotateLogs({ agent }))
        }
        for (const c of notes.lineConflicts) {
          yield* Effect.logError(
            `store: line ${c.lineSeq} of run ${c.runId} was already stored with other content; kept the stored one (seq ${c.seq})`
          ).pipe(Effect.annotateLogs({ agent, runId: c.runId }))
        }
      })

    const direct = yield* Effect.serviceOption(SqliteDirect)

    const ingest = (agent: string, outboxId: string, records: ReadonlyArray<AgentRecord>) => {
      const once = Effect.flatMap(
        Option.isSome(direct)
          ? ingestDirect(direct.value, agent, outboxId, records)
          : ingestStatements(agent, outboxId, records),
        ({ notes, upTo }): Effect.Effect<IngestResult> =>
          Effect.as(logNotes(agent, notes), { upTo, refused: notes.refused, lineConflicts: notes.lineConflicts })
      )
      // The transaction rolled back, so running the batch again is safe.
      const attempt = (retries: number): Effect.Effect<IngestResult, SqlError> =>
        Effect.catchIf(once, (e) => retries > 0 && isTransient(e), () => attempt(retries - 1))
      return attempt(3).pipe(
        Effect.mapError(storeError(`ingest (agent ${agent})`)),
        Effect.withSpan("Store.ingest", { attributes: { agent, outboxId, records: records.length }, captureStackTrace: false })
      )
    }

    const ackedUpTo = (agent: string, outboxId: string) =>
      run(`SELECT last_seq FROM agent_offsets WHERE agent = ? AND outbox_id = ?`, [agent, outboxId]).pipe(
        Effect.map((rows) => (rows.length > 0 ? num(rows[0].last_seq) : -1)),
        Effect.mapError(storeError("ackedUpTo"))
      )

    // --- sessions ------------------------------------------------------------------------------

    const sessionStarted = (s: SessionInfo) =>
      Effect.all([
        exec(upsertAgentSeen, [s.agent, s.connectedAt, s.connectedAt, clip(s.ip)]),
        exec(
          `INSERT INTO agent_sessions (session_id, agent, ip, connected_at) VALUES (?, ?, ?, ?) ${
            ignoreDup("session_id", "session_id")
          }`,
          [s.sessionId, s.agent, clip(s.ip), s.connectedAt]
        )
      ], { discard: true }).pipe(Effect.mapError(storeError("sessionStarted")))

    const sessionInfo = (agent: string, sessionId: string, info: ClientInfo) => {
      const values = [clip(info.osName), clip(info.hostname), clip(info.osVersion), clip(info.kernel), clip(info.agentVersion)]
      return Effect.all([
        exec(
          `UPDATE agent_sessions SET os_name = ?, hostname = ?, os_version = ?, kernel = ?, agent_version = ?
           WHERE session_id = ? AND agent = ?`,
          [...values, sessionId, agent]
        ),
        exec(
          `UPDATE agents SET os_name = ?, hostname = ?, os_version = ?, kernel = ?, agent_version = ? WHERE name = ?`,
          [...values, agent]
        )
      ], { discard: true }).pipe(Effect.mapError(storeError("sessionInfo")))
    }

    const sessionEnded = (agent: string, sessionId: string, at: Micros) =>
      Effect.all([
        exec(`UPDATE agent_sessions SET disconnected_at = ? WHERE session_id = ? AND agent = ?`, [at, sessionId, agent]),
        exec(`UPDATE agents SET last_seen_at = ? WHERE name = ?`, [at, agent])
      ], { discard: true }).pipe(Effect.mapError(storeError("sessionEnded")))

    const markLost = (agent: string, startedBefore: Micros) =>
      exec(`UPDATE runs SET state = 'lost' WHERE agent = ? AND state = 'running' AND started_at < ?`, [
        agent,
        startedBefore
      ]).pipe(Effect.mapError(storeError("markLost")))

    // --- reads -----------------------------------------------------------------------------------

    const listCommands = (agent: string) =>
      run(`SELECT DISTINCT schedule FROM runs WHERE agent = ? ORDER BY schedule`, [agent]).pipe(
        Effect.map((rows) => rows.map((r) => String(r.schedule))),
        Effect.mapError(storeError("listCommands"))
      )

    // --- paged reads: list, cmd, failed ---------------------------------------------------------
    //
    // A history can be far larger than one answer frame, or than memory: these reads are streams
    // that page through the database with keyset cursors (never OFFSET), PAGE_RUNS runs or failed
    // commands at a time, each page's lines fetched together when they are few (one query for
    // many small runs) or PAGE_LINES at a time along the primary key (run_id, line_seq) when a
    // run has many. Between pages the fiber yields to the event loop (`breathe`): better-sqlite3
    // reads synchronously, and agents' frames must keep flowing while a large answer is built.

    /** A run (or a failed command) of a paged listing and how many output lines it has. */
    interface Counted<A> {
      readonly item: A
      readonly runId: string
      readonly lines: number
    }

    /**
     * The lines of `page`'s items in their order: consecutive items with few lines in one
     * `fetchMany` (grouped by run id), an item with many through `fetchAfter` page by page.
     */
    const linesOfPage = <A, L>(
      page: ReadonlyArray<Counted<A>>,
      fetchMany: (runIds: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<{ readonly runId: string; readonly line: L }>, SqlError>,
      fetchAfter: (item: A, afterLineSeq: number) => Effect.Effect<ReadonlyArray<{ readonly lineSeq: number; readonly line: L }>, SqlError>,
      emit: (item: A, lines: ReadonlyArray<L>, first: boolean) => ReadonlyArray<unknown>
    ): Stream.Stream<unknown, SqlError> => {
      const groups: Array<{ readonly big: boolean; readonly items: Array<Counted<A>> }> = []
      let budget = 0
      for (const c of page) {
        const last = groups[groups.length - 1]
        if (c.lines > PAGE_LINES) groups.push({ big: true, items: [c] })
        else if (last !== undefined && !last.big && budget + c.lines <= PAGE_LINES) {
          last.items.push(c)
          budget += c.lines
        } else {
          groups.push({ big: false, items: [c] })
          budget = c.lines
        }
      }
      return Stream.fromIterable(groups).pipe(Stream.flatMap((group) => {
        if (!group.big) {
          return Stream.fromIterableEffect(Effect.gen(function*() {
            const withLines = group.items.filter((c) => c.lines > 0)
            const byRun = new Map<string, Array<L>>()
            if (withLines.length > 0) {
              const runIds = Array.from(new Set(withLines.map((c) => c.runId)))
              for (const row of yield* fetchMany(runIds)) {
                const acc = byRun.get(row.runId)
                if (acc === undefined) byRun.set(row.runId, [row.line])
                else acc.push(row.line)
              }
            }
            return group.items.flatMap((c) => emit(c.item, byRun.get(c.runId) ?? [], true))
          }).pipe(Effect.zipLeft(breathe)))
        }
        const item = group.items[0]!.item
        return Stream.paginateChunkEffect({ after: -1, first: true }, (state) =>
          fetchAfter(item, state.after).pipe(
            Effect.zipLeft(breathe),
            Effect.map((rows) => [
              Chunk.fromIterable(rows.length === 0 && !state.first ? [] : emit(item, rows.map((r) => r.line), state.first)),
              rows.length < PAGE_LINES
                ? Option.none()
                : Option.some({ after: rows[rows.length - 1]!.lineSeq, first: false })
            ] as const)
          ))
      }))
    }

    /** Line counts of runs (by run id), or of commands (by run id and command id). */
    const countLines = (runIds: ReadonlyArray<string>, perCommand: boolean) => {
      if (runIds.length === 0) return Effect.succeed(new Map<string, number>())
      const list = inList(runIds)
      return run(
        `SELECT run_id, ${perCommand ? "cmd_uuid" : "'' AS cmd_uuid"}, COUNT(*) AS n FROM output_lines
         WHERE run_id IN ${list.text} GROUP BY run_id${perCommand ? ", cmd_uuid" : ""}`,
        list.params
      ).pipe(Effect.map((rows) => new Map(rows.map((r) => [`${String(r.run_id)}\u0000${String(r.cmd_uuid)}`, num(r.n)]))))
    }
    const countKey = (runId: string, cmdUuid = "") => `${runId}\u0000${cmdUuid}`

    /**
     * Pages of rows along a keyset cursor: `fetch(after)` reads the page after `after` (the first
     * when undefined); a page shorter than PAGE_RUNS is the last. Yields between pages.
     */
    const keysetPages = (
      fetch: (after: ReadonlyArray<unknown> | undefined) => Effect.Effect<ReadonlyArray<Row>, SqlError>,
      cursorOf: (last: Row) => ReadonlyArray<unknown>
    ): Stream.Stream<ReadonlyArray<Row>, SqlError> =>
      Stream.paginateEffect(undefined as ReadonlyArray<unknown> | undefined | null, (after) =>
        after === null
          ? Effect.succeed([[] as ReadonlyArray<Row>, Option.none()] as const)
          : Effect.map(Effect.zipLeft(fetch(after), breathe), (rows) =>
            [rows, Option.some(rows.length < PAGE_RUNS ? null : cursorOf(rows[rows.length - 1]!))] as const)).pipe(
          Stream.takeWhile((rows) => rows.length > 0)
        )

    /** `select … WHERE <column> IN (runIds) ORDER BY <column>, line_seq`, each row with its run id. */
    const rowsOfRuns = <L>(select: string, column: string, toLine: (r: Row) => L) => (runIds: ReadonlyArray<string>) => {
      const list = inList(runIds)
      return Effect.map(
        run(`${select} WHERE ${column} IN ${list.text} ORDER BY ${column}, line_seq`, list.params),
        (rows) => rows.map((r) => ({ runId: String(r.run_id), line: toLine(r) }))
      )
    }

    /**
     * Lines of the runs `where` selects, in `order` (which ends with the run order key `k` and
     * `r.run_id`; `cursor` makes the keyset condition from the last run of a page).
     */
    const pagedRunLines = (
      what: string,
      where: string,
      params: ReadonlyArray<unknown>,
      orderColumns: ReadonlyArray<string>,
      cursor: (r: Row) => ReadonlyArray<unknown>
    ): Stream.Stream<LineRow, StoreError> => {
      const order = orderColumns.join(", ")
      const runsPage = (after: ReadonlyArray<unknown> | undefined) =>
        run(
          `SELECT r.run_id, r.agent, COALESCE(r.started_at, r.scheduled_at) AS k FROM runs r
           WHERE ${where}${after === undefined ? "" : ` AND (${order}) > (${after.map(() => "?").join(", ")})`}
           ORDER BY ${order} LIMIT ?`,
          [...params, ...(after ?? []), PAGE_RUNS]
        )
      return keysetPages(runsPage, cursor).pipe(
        Stream.mapEffect((rows) =>
          Effect.map(countLines(rows.map((r) => String(r.run_id)), false), (counts) =>
            rows.map((r): Counted<string> => ({
              item: String(r.run_id),
              runId: String(r.run_id),
              lines: counts.get(countKey(String(r.run_id))) ?? 0
            })))
        ),
        Stream.flatMap((page) =>
          linesOfPage(
            page,
            rowsOfRuns(LINE_SELECT, "ol.run_id", toLineRow),
            (runId, after) =>
              Effect.map(
                run(`${LINE_SELECT} WHERE ol.run_id = ? AND ol.line_seq > ? ORDER BY ol.line_seq LIMIT ?`, [runId, after, PAGE_LINES]),
                (rows) => rows.map((r) => ({ lineSeq: num(r.line_seq), line: toLineRow(r) }))
              ),
            (_runId, lines) => lines
          ) as Stream.Stream<LineRow, SqlError>
        ),
        Stream.mapError(storeError(what))
      )
    }

    const RUN_KEY = "COALESCE(r.started_at, r.scheduled_at)"

    const listLines = (agent: string, schedule: string) =>
      pagedRunLines("listLines", "r.agent = ? AND r.schedule = ?", [agent, schedule], [RUN_KEY, "r.run_id"], (r) => [
        num(r.k),
        String(r.run_id)
      ])

    const cmdLines = (schedule: string) =>
      pagedRunLines("cmdLines", "r.schedule = ?", [schedule], ["r.agent", RUN_KEY, "r.run_id"], (r) => [
        String(r.agent),
        num(r.k),
        String(r.run_id)
      ])

    // Commands that exited non-zero or by a signal, and commands that never reported an exit in a
    // run that ended badly (timed out, lost, failed); then runs that ended badly without any
    // command. Ordered by when they ended (else started, else were scheduled), run id, position.
    const FAILED_COMMANDS = `SELECT COALESCE(c.finished_at, r.finished_at, r.started_at, r.scheduled_at) AS k,
        c.run_id AS run_id, c.cmd_index AS idx, c.cmd_uuid AS cmd_uuid, c.command AS command,
        c.exit_code AS exit_code, c.exit_signal AS exit_signal, COALESCE(c.finished_at, r.finished_at) AS fin,
        r.agent AS agent, r.schedule AS schedule, r.state AS state
      FROM run_commands c JOIN runs r ON r.run_id = c.run_id
      WHERE (c.exit_code IS NULL OR c.exit_code <> 0)
        AND (c.exit_code IS NOT NULL OR c.exit_signal IS NOT NULL OR r.state IN ${LOST_OR_FAILED})`
    const FAILED_RUNS = `SELECT COALESCE(r.finished_at, r.started_at, r.scheduled_at) AS k,
        r.run_id AS run_id, -1 AS idx, '' AS cmd_uuid, '' AS command,
        r.exit_code AS exit_code, r.exit_signal AS exit_signal, r.finished_at AS fin,
        r.agent AS agent, r.schedule AS schedule, r.state AS state
      FROM runs r
      WHERE r.state IN ${LOST_OR_FAILED} AND NOT EXISTS (SELECT 1 FROM run_commands c WHERE c.run_id = r.run_id)`
    const FAILED_KEY = {
      commands: ["COALESCE(c.finished_at, r.finished_at, r.started_at, r.scheduled_at)", "c.run_id", "c.cmd_index"],
      runs: ["COALESCE(r.finished_at, r.started_at, r.scheduled_at)", "r.run_id", "-1"]
    }

    const failedRow = (r: Row, lines: ReadonlyArray<string>) =>
      new FailedRow({
        runId: String(r.run_id) as RunId,
        agent: String(r.agent),
        schedule: String(r.schedule),
        cmdUuid: String(r.cmd_uuid),
        command: String(r.command),
        state: String(r.state) as RunState,
        exitCode: numOrNull(r.exit_code),
        signal: strOrNull(r.exit_signal),
        finishedAt: numOrNull(r.fin) as Micros | null,
        lines
      }, true)

    const failed = () => {
      const page = (after: ReadonlyArray<unknown> | undefined) => {
        // The cursor condition goes into both halves, so that neither is read whole per page.
        const cond = (columns: ReadonlyArray<string>) =>
          after === undefined ? "" : ` AND (${columns.join(", ")}) > (?, ?, ?)`
        return run(
          `SELECT * FROM (${FAILED_COMMANDS}${cond(FAILED_KEY.commands)} UNION ALL ${FAILED_RUNS}${cond(FAILED_KEY.runs)}) f
           ORDER BY f.k, f.run_id, f.idx LIMIT ?`,
          [...(after ?? []), ...(after ?? []), PAGE_RUNS]
        )
      }
      return keysetPages(page, (last) => [num(last.k), String(last.run_id), num(last.idx)]).pipe(
        Stream.mapEffect((rows) =>
          Effect.map(countLines(Array.from(new Set(rows.map((r) => String(r.run_id)))), true), (counts) => {
            // What one fetch of a run's lines returns: every command's lines of that run.
            const perRun = new Map<string, number>()
            for (const [key, n] of counts) {
              const runId = key.slice(0, key.indexOf("\u0000"))
              perRun.set(runId, (perRun.get(runId) ?? 0) + n)
            }
            return rows.map((r): Counted<Row> => {
              const own = String(r.cmd_uuid) === "" ? 0 : counts.get(countKey(String(r.run_id), String(r.cmd_uuid))) ?? 0
              // A command with many lines is read on its own; else its run's lines come together.
              return { item: r, runId: String(r.run_id), lines: own > PAGE_LINES ? own : own === 0 ? 0 : perRun.get(String(r.run_id)) ?? 0 }
            })
          })
        ),
        Stream.flatMap((page) =>
          linesOfPage(
            page,
            rowsOfRuns("SELECT run_id, cmd_uuid, data FROM output_lines", "run_id", (l) => ({
              cmdUuid: String(l.cmd_uuid),
              data: String(l.data)
            })),
            (r, after) =>
              Effect.map(
                run(
                  `SELECT line_seq, cmd_uuid, data FROM output_lines WHERE run_id = ? AND cmd_uuid = ? AND line_seq > ?
                   ORDER BY line_seq LIMIT ?`,
                  [String(r.run_id), String(r.cmd_uuid), after, PAGE_LINES]
                ),
                (rows) => rows.map((l) => ({ lineSeq: num(l.line_seq), line: { cmdUuid: String(l.cmd_uuid), data: String(l.data) } }))
              ),
            (r, lines, first) => {
              const cmd = String(r.cmd_uuid)
              const own = cmd === "" ? [] : lines.filter((l) => l.cmdUuid === cmd).map((l) => l.data)
              return first || own.length > 0 ? [failedRow(r, own)] : []
            }
          ) as Stream.Stream<FailedRow, SqlError>
        ),
        Stream.mapError(storeError("failed"))
      )
    }

    const successfulLines = (agent: string) =>
      run(
        `SELECT ol.data FROM runs r
         JOIN output_lines ol ON ol.run_id = r.run_id
         JOIN run_commands c ON c.cmd_uuid = ol.cmd_uuid
         WHERE r.agent = ? AND c.exit_code = 0
         ORDER BY ol.ts, ol.run_id, ol.line_seq`,
        [agent]
      ).pipe(
        Effect.map((rows) => rows.map((r) => String(r.data))),
        Effect.mapError(storeError("successfulLines"))
      )

    const runsWhere = (filter: Omit<RunsFilter, "limit">) => {
      const where: Array<string> = []
      const params: Array<unknown> = []
      if (filter.runIdMatch !== undefined) {
        // Safe in LIKE: the text is hex digits and dashes only (checked by Operations.runs).
        where.push("(r.run_id LIKE ? OR r.run_id LIKE ?)")
        params.push(`${filter.runIdMatch}%`, `%${filter.runIdMatch}`)
      }
      if (filter.agent !== undefined) {
        where.push("r.agent = ?")
        params.push(filter.agent)
      }
      if (filter.schedule !== undefined) {
        where.push("r.schedule = ?")
        params.push(filter.schedule)
      }
      if (filter.state !== undefined) {
        where.push("r.state = ?")
        params.push(filter.state)
      }
      if (filter.states !== undefined && filter.states.length > 0) {
        const list = inList(filter.states)
        where.push(`r.state IN ${list.text}`)
        params.push(...list.params)
      }
      if (filter.before !== undefined) {
        where.push("(r.scheduled_at < ? OR (r.scheduled_at = ? AND r.run_id < ?))")
        params.push(filter.before.scheduledAt, filter.before.scheduledAt, filter.before.runId)
      }
      // `since` is applied by the callers: a missed range counts when any of its occurrences is
      // at or after it, which `runs` answers with one branch per index.
      return { where, params }
    }

    const runs = (filter: RunsFilter) => {
      const limit = Math.max(0, Math.floor(filter.limit))
      if (limit === 0) return Effect.succeed([])
      const { params, where } = runsWhere(filter)
      const base = where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""
      const and = where.length > 0 ? "AND" : "WHERE"
      // With `since`, a missed range counts when any of its occurrences is at or after it: the
      // rows scheduled since, plus the ranges that began before and end since, each branch on
      // its own index (one OR over both columns would scan the table).
      const text = filter.since === undefined
        ? `SELECT ${RUN_COLUMNS} FROM runs r ${base} ORDER BY r.scheduled_at DESC, r.run_id DESC LIMIT ?`
        : `SELECT ${RUN_COLUMNS} FROM runs r ${base} ${and} r.scheduled_at >= ?
           UNION ALL
           SELECT ${RUN_COLUMNS} FROM runs r ${base} ${and} r.scheduled_until >= ? AND r.scheduled_at < ?
           ORDER BY scheduled_at DESC, run_id DESC LIMIT ?`
      const all = filter.since === undefined
        ? [...params, limit]
        : [...params, filter.since, ...params, filter.since, filter.since, limit]
      return run(text, all).pipe(
        Effect.map((rows) => rows.map(toRunRow)),
        Effect.mapError(storeError("runs"))
      )
    }

    // One statement of UNION ALLed per-schedule subqueries (each an index range scan with its own
    // LIMIT): one round trip instead of one per schedule. `SELECT * FROM (…) AS t` is the compound
    // form both SQLite and MariaDB accept with an ORDER BY … LIMIT inside.
    const RECENT_CHUNK = 64
    const recentRuns = (
      schedules: ReadonlyArray<{ readonly agent: string; readonly schedule: string }>,
      perSchedule: number
    ) =>
      Effect.gen(function*() {
        const out = new Map<string, RecentRuns>()
        const limit = Math.max(0, Math.floor(perSchedule))
        if (limit === 0) return out
        for (const part of chunk(schedules, RECENT_CHUNK)) {
          // `k` numbers the subquery, `n` the row within it: rows come back in that order.
          const text = part.map((_, k) =>
            `SELECT * FROM (SELECT ${k} AS k, ${RUN_COLUMNS} FROM runs r WHERE r.agent = ? AND r.schedule = ?
             ORDER BY r.scheduled_at DESC, r.run_id DESC LIMIT ${limit}) AS t${k}`
          ).join(" UNION ALL ")
          const rows = yield* run(text, part.flatMap((s) => [s.agent, s.schedule]))
          const byK = new Map<number, Array<Row>>()
          for (const row of rows) {
            const k = num(row.k)
            const list = byK.get(k)
            if (list === undefined) byK.set(k, [row])
            else list.push(row)
          }
          for (const [k, list] of byK) {
            // UNION ALL keeps each subquery's order on both databases, but nothing promises it.
            list.sort((a, b) =>
              num(b.scheduled_at) - num(a.scheduled_at) || (String(a.run_id) < String(b.run_id) ? 1 : -1)
            )
            const { agent, schedule } = part[k]!
            // Only the newest becomes a RunRow: building a Schema class per row dominated this read.
            out.set(recentKey(agent, schedule), { last: toRunRow(list[0]!), states: list.map((r) => String(r.state) as RunState) })
          }
        }
        return out
      }).pipe(Effect.mapError(storeError("recentRuns")))

    const countRuns = (filter: Omit<RunsFilter, "limit" | "before">) => {
      const { params, where } = runsWhere(filter)
      // Rows (a missed range is one row) scheduled since `since`.
      if (filter.since !== undefined) {
        where.push("r.scheduled_at >= ?")
        params.push(filter.since)
      }
      return count(`SELECT COUNT(*) AS n FROM runs r ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}`, params).pipe(
        Effect.mapError(storeError("countRuns"))
      )
    }

    const getRun = (runId: string) =>
      run(`SELECT ${RUN_COLUMNS} FROM runs r WHERE r.run_id = ?`, [runId]).pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toRunRow)),
        Effect.mapError(storeError("getRun"))
      )

    const runCommands = (runId: string) =>
      run(
        `SELECT cmd_uuid, cmd_index, command, started_at, finished_at, exit_code, exit_signal
         FROM run_commands WHERE run_id = ? ORDER BY cmd_index, started_at`,
        [runId]
      ).pipe(
        Effect.map((rows) =>
          rows.map((r) => ({
            cmdUuid: String(r.cmd_uuid),
            index: num(r.cmd_index),
            command: String(r.command),
            startedAt: numOrNull(r.started_at) as Micros | null,
            finishedAt: numOrNull(r.finished_at) as Micros | null,
            exitCode: numOrNull(r.exit_code),
            signal: strOrNull(r.exit_signal)
          }))
        ),
        Effect.mapError(storeError("runCommands"))
      )

    const agents = () =>
      run(
        `SELECT name, first_seen_at, last_seen_at, last_ip, os_name, hostname, os_version, kernel, agent_version
         FROM agents ORDER BY name`
      ).pipe(
        Effect.map((rows) =>
          rows.map((r) => ({
            name: String(r.name),
            firstSeenAt: num(r.first_seen_at) as Micros,
            lastSeenAt: num(r.last_seen_at) as Micros,
            lastIp: strOrNull(r.last_ip),
            osName: strOrNull(r.os_name),
            hostname: strOrNull(r.hostname),
            osVersion: strOrNull(r.os_version),
            kernel: strOrNull(r.kernel),
            agentVersion: strOrNull(r.agent_version)
          }))
        ),
        Effect.mapError(storeError("agents"))
      )

    // The latest run that actually started: a missed occurrence has nothing to show or tail.
    const latestRun = (agent: string, schedule: string) =>
      run(
        `SELECT ${RUN_COLUMNS} FROM runs r
         WHERE r.agent = ? AND r.schedule = ? AND r.started_at IS NOT NULL
         ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1`,
        [agent, schedule]
      ).pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toRunRow)),
        Effect.mapError(storeError("latestRun"))
      )

    const runLines = (runId: string, afterLineSeq: number, limit: number) => {
      const n = Math.max(0, Math.floor(limit))
      if (n === 0) return Effect.succeed([])
      return run(`${LINE_SELECT} WHERE ol.run_id = ? AND ol.line_seq > ? ORDER BY ol.line_seq LIMIT ?`, [
        runId,
        Math.floor(afterLineSeq),
        n
      ]).pipe(
        Effect.map((rows) => rows.map(toLineRow)),
        Effect.mapError(storeError("runLines"))
      )
    }

    // --- query -----------------------------------------------------------------------------------

    // Refused rather than queued when every slot is busy: a queue would let a burst of slow
    // statements keep a quick one waiting for the sum of their time limits.
    const querySlots = yield* Effect.makeSemaphore(Math.max(1, Math.floor(options.queryConcurrency)))
    const query = (text: string, caps: QueryCaps) =>
      Either.match(checkReadOnly(text, mysql ? "mysql" : "sqlite"), {
        onLeft: (reason) => Effect.fail(new QueryRefused({ reason })),
        onRight: (statement) =>
          options.runQuery(statement, {
            rowCap: Math.max(0, Math.floor(caps.rowCap)),
            maxBytes: Math.max(0, Math.floor(caps.maxBytes)),
            timeoutMs: Math.max(1, Math.floor(caps.timeoutMs))
          }).pipe(
            querySlots.withPermitsIfAvailable(1),
            Effect.flatMap(Option.match({
              onNone: () =>
                Effect.fail(
                  new QueryRefused({
                    reason: `bartos is already running ${options.queryConcurrency} queries ` +
                      "([limits] query_concurrency); try again when one has finished"
                  })
                ),
              onSome: Effect.succeed
            }))
          )
      })

    // --- cleanup and retention ---------------------------------------------------------------

    // Never a running run. A lost or missed run has no finished_at: it ages by its scheduled_at,
    // a missed range by its last occurrence.
    const DELETABLE = `r.state <> 'running' AND (r.finished_at < ? OR ` +
      `(r.finished_at IS NULL AND COALESCE(r.scheduled_until, r.scheduled_at) < ?))`

    /** Deletes the runs and everything under them, one transaction per chunk of run ids. */
    const deleteRuns = (runIds: ReadonlyArray<string>) =>
      Effect.reduce(chunk(runIds, DELETE_CHUNK), { runs: 0, commands: 0, lines: 0 }, (acc, part) => {
        const list = inList(part)
        return sql.withTransaction(Effect.all({
          lines: exec(`DELETE FROM output_lines WHERE run_id IN ${list.text}`, list.params),
          commands: exec(`DELETE FROM run_commands WHERE run_id IN ${list.text}`, list.params),
          runs: exec(`DELETE FROM runs WHERE run_id IN ${list.text}`, list.params)
        })).pipe(Effect.map((n) => ({
          runs: acc.runs + n.runs,
          commands: acc.commands + n.commands,
          lines: acc.lines + n.lines
        })))
      })

    const deleteBefore = (before: number) =>
      Effect.gen(function*() {
        const total = { runs: 0, commands: 0, lines: 0 }
        // Chunk by chunk, so neither database holds one huge transaction (on SQLite that would
        // stall ingest for its whole length).
        while (true) {
          const rows = yield* run(`SELECT r.run_id FROM runs r WHERE ${DELETABLE} LIMIT ${DELETE_CHUNK}`, [before, before])
          if (rows.length === 0) break
          const n = yield* deleteRuns(rows.map((r) => String(r.run_id)))
          total.runs += n.runs
          total.commands += n.commands
          total.lines += n.lines
          if (n.runs === 0) break
        }
        return total
      })

    const count = (text: string, params: ReadonlyArray<unknown>) =>
      Effect.map(run(text, params), (rows) => num(rows[0]?.n ?? 0))

    const cleanup = (before: Micros, dryRun: boolean) =>
      (dryRun
        ? Effect.all({
          runs: count(`SELECT COUNT(*) AS n FROM runs r WHERE ${DELETABLE}`, [before, before]),
          commands: count(
            `SELECT COUNT(*) AS n FROM run_commands WHERE run_id IN (SELECT r.run_id FROM runs r WHERE ${DELETABLE})`,
            [before, before]
          ),
          lines: count(
            `SELECT COUNT(*) AS n FROM output_lines WHERE run_id IN (SELECT r.run_id FROM runs r WHERE ${DELETABLE})`,
            [before, before]
          )
        })
        : deleteBefore(before)).pipe(Effect.mapError(storeError("cleanup")))

    const retention = (opts: { readonly maxAgeDays?: number; readonly maxRunsPerSchedule?: number; readonly now: Micros }) =>
      Effect.gen(function*() {
        let runsDeleted = 0
        let linesDeleted = 0
        if (opts.maxAgeDays !== undefined) {
          const n = yield* deleteBefore(opts.now - opts.maxAgeDays * MICROS_PER_DAY)
          runsDeleted += n.runs
          linesDeleted += n.lines
        }
        if (opts.maxRunsPerSchedule !== undefined) {
          const keep = Math.max(0, Math.floor(opts.maxRunsPerSchedule))
          const rows = yield* run(
            `SELECT run_id FROM (
               SELECT run_id, state,
                 ROW_NUMBER() OVER (PARTITION BY agent, schedule ORDER BY scheduled_at DESC, run_id DESC) AS rn
               FROM runs
             ) ranked
             WHERE ranked.rn > ? AND ranked.state <> 'running'`,
            [keep]
          )
          const n = yield* deleteRuns(rows.map((r) => String(r.run_id)))
          runsDeleted += n.runs
          linesDeleted += n.lines
        }
        return { runs: runsDeleted, lines: linesDeleted }
      }).pipe(Effect.mapError(storeError("retention")))

    // --- pause -----------------------------------------------------------------------------------

    const setPaused = (agent: string, schedule: string, paused: boolean) =>
      (paused
        ? exec(
          `INSERT INTO paused_schedules (agent, schedule) VALUES (?, ?) ${ignoreDup("schedule", "agent, schedule")}`,
          [agent, schedule]
        )
        : exec(`DELETE FROM paused_schedules WHERE agent = ? AND schedule = ?`, [agent, schedule])).pipe(
          Effect.asVoid,
          Effect.mapError(storeError("setPaused"))
        )

    const paused = () =>
      run(`SELECT agent, schedule FROM paused_schedules ORDER BY agent, schedule`).pipe(
        Effect.map((rows) => rows.map((r) => ({ agent: String(r.agent), schedule: String(r.schedule) }))),
        Effect.mapError(storeError("paused"))
      )

    return {
      kind: options.kind,
      location: options.location,
      ingest,
      ackedUpTo,
      sessionStarted,
      sessionInfo,
      sessionEnded,
      markLost,
      listCommands,
      listLines,
      cmdLines,
      failed,
      successfulLines,
      runs,
      countRuns,
      recentRuns,
      getRun,
      runCommands,
      agents,
      latestRun,
      runLines,
      query,
      cleanup,
      retention,
      setPaused,
      paused
    } satisfies StoreShape
  })

const clipSignal = (s: string | null): string | null => (s === null ? null : clip(s, 64))
