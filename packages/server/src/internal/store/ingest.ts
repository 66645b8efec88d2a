/**
 * What the worker link writes: a batch of agent records (`ingest`, with the offset it acks), and
 * the session bookkeeping (`sessionStarted`, `sessionInfo`, `sessionEnded`, `markLost`).
 *
 * The session statements are `sql` templates. The batch's statements stay plain text with `?`
 * placeholders, the same on both drivers (one exception: SQLite's line insert binds the shared
 * run/agent/command as `@r`, `@a`, `@c`): the ingest program below yields statement texts that
 * one driver runs synchronously on better-sqlite3 and the other on the transaction's connection,
 * and a template compiles only through the client's Effect pipeline, which cost as much as the
 * inserts themselves (see "ingest" below).
 */
import type { AgentRecord, ClientInfo, Micros } from "@barto/domain/Messages"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type Sqlite from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { IngestResult, LineConflict, RefusedRecord, SessionEnd, SessionInfo, StoreShape } from "../../Store.js"
import {
  affected,
  changes,
  chunk,
  clip,
  clipSignal,
  DELETE_CHUNK,
  derivedRows,
  inList,
  isTransient,
  MAX_TEXT_ROWS,
  multiRow,
  num,
  numOrNull,
  type Row,
  steppedChunks,
  storeError,
  type StoreSql,
  writeRows
} from "./common.js"
import * as Fence from "./fence.js"
import { SqliteDirect } from "./sqliteClient.js"

/** Agents per acked-offset query of a reconnect group (an `IN` list, padded to a power of two). */
const ACKED_READ_AGENTS = 512

/**
 * Line inserts are split into chunks of at most this many rows (8 parameters each;
 * SQLite allows 32,766 parameters, and on SQLite every statement saved counts) and about this many
 * bytes of line data (MariaDB refuses a packet over `max_allowed_packet`, 16 MiB by default, and
 * 500 lines of 64 KiB would be 32 MiB).
 */
export const LINE_CHUNK_ROWS = { mysql: 500, sqlite: 1000 } as const
export const LINE_CHUNK_BYTES = 4 * 1024 * 1024
/** Below `LINE_CHUNK_ROWS`, a line insert's row count is a multiple of this, or a power of two below it. */
export const LINE_CHUNK_STEP = 32

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
    case "Heartbeat":
      return r.ts
  }
}

export type IngestShape = Pick<
  StoreShape,
  | "ingest"
  | "ackedUpTo"
  | "ackedUpToMany"
  | "sessionStarted"
  | "sessionsStarted"
  | "sessionOpened"
  | "sessionInfo"
  | "sessionEnded"
  | "sessionsEnded"
  | "markLost"
>

export const makeIngest = (ctx: StoreSql): Effect.Effect<IngestShape> =>
  Effect.gen(function*() {
    const { exec, ignoreDup, mysql, run, sql } = ctx
    // --- dialect-specific statement texts ------------------------------------------------------
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

    const insertPlaceholderRun =
      `INSERT INTO runs (run_id, agent, schedule, run_trigger, state, scheduled_at, started_at)
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

    // Session starts are written many rows per statement (`writeRows`). A name twice in one
    // statement: the later row's values win, as one by one.
    // The missed-tick settings are the latest session's, NULL when it did not report them.
    const upsertAgentsSeen = multiRow(
      "INSERT INTO agents (name, first_seen_at, last_seen_at, last_ip, missed_tick, catch_up_limit)",
      6,
      mysql
        ? "ON DUPLICATE KEY UPDATE last_seen_at = VALUES(last_seen_at), last_ip = VALUES(last_ip), " +
          "missed_tick = VALUES(missed_tick), catch_up_limit = VALUES(catch_up_limit)"
        : "ON CONFLICT (name) DO UPDATE SET last_seen_at = excluded.last_seen_at, last_ip = excluded.last_ip, " +
          "missed_tick = excluded.missed_tick, catch_up_limit = excluded.catch_up_limit"
    )
    const insertSessions = multiRow(
      "INSERT INTO agent_sessions (session_id, agent, ip, connected_at)",
      4,
      ignoreDup("session_id", "session_id")
    )

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

    const rowsOf = function*(
      text: string,
      params: ReadonlyArray<unknown>
    ): Generator<IngestStep, ReadonlyArray<Row>, any> {
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
     * Parts of a few fixed row counts (`steppedChunks`: every size of batch would otherwise be a
     * statement text of its own), cut first where the data would make one statement too large.
     */
    const lineChunks = (lines: ReadonlyArray<OutputLine>): Array<ReadonlyArray<OutputLine>> => {
      const parts: Array<ReadonlyArray<OutputLine>> = []
      let start = 0
      let bytes = 0
      for (let i = 0; i < lines.length; i++) {
        // UTF-16 length x3 bounds the UTF-8 size without encoding.
        const b = lines[i].data.length * 3
        if (i > start && bytes + b > LINE_CHUNK_BYTES) {
          parts.push(...steppedChunks(lines.slice(start, i), lineChunkRows, LINE_CHUNK_STEP))
          start = i
          bytes = 0
        }
        bytes += b
      }
      parts.push(...steppedChunks(start === 0 ? lines : lines.slice(start), lineChunkRows, LINE_CHUNK_STEP))
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
        for (const row of rows) {
          stored.set(String(row.run_id), { agent: String(row.agent), lastLine: numOrNull(row.last_line) })
        }
      }
      return stored
    }

    /** The run each already stored command belongs to, for the commands this batch starts or ends. */
    const storedCommands = function*(records: ReadonlyArray<AgentRecord>) {
      const ids = new Set<string>()
      for (const r of records) {
        if (r._tag === "CommandStarted" || r._tag === "CommandExited") ids.add(r.cmdUuid)
      }
      const stored = new Map<string, string>()
      for (const part of chunk(Array.from(ids), DELETE_CHUNK)) {
        const list = inList(part)
        const rows = yield* rowsOf(
          `SELECT cmd_uuid, run_id FROM run_commands WHERE cmd_uuid IN ${list.text}`,
          list.params
        )
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
    const ensureRuns = function*(
      agent: string,
      records: ReadonlyArray<AgentRecord>,
      runs: Map<string, StoredRun>,
      notes: IngestNotes
    ) {
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
          if (
            !(first.data === l.data && first.stream === l.stream && first.cmdUuid === l.cmdUuid && first.ts === l.ts &&
              first.continuation === l.continuation)
          ) notes.lineConflicts.push({ seq: l.seq, runId: l.runId, lineSeq: l.lineSeq })
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
        case "Heartbeat":
          // Only the last beat is kept, and only while the run runs (a late one cannot undo its end).
          return yield* execOf(`UPDATE runs SET heartbeat = ? WHERE run_id = ? AND state = 'running'`, [
            JSON.stringify({
              at: r.ts,
              progress: r.progress ?? null,
              status: r.status ?? null,
              message: r.message ?? null
            }),
            r.runId
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
      if (insert.length > 0) {
        yield* (sharedLines
          ? insertLinesShared(agent, insert)
          : insertLinesPositional(agent, insert))
      }
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
    const insertOffsetRow = `INSERT INTO agent_offsets (agent, outbox_id, last_seq) VALUES (?, ?, -1) ${
      ignoreDup("last_seq", "agent, outbox_id")
    }`

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
        Effect.suspend(() => {
          ctx.ingestActivity.batches++
          return Option.isSome(direct)
            ? ingestDirect(direct.value, agent, outboxId, records)
            : ingestStatements(agent, outboxId, records)
        }),
        ({ notes, upTo }): Effect.Effect<IngestResult> =>
          Effect.as(logNotes(agent, notes), { upTo, refused: notes.refused, lineConflicts: notes.lineConflicts })
      )
      // The transaction rolled back, so running the batch again is safe.
      return once.pipe(
        Effect.retry({ times: 3, while: isTransient }),
        Effect.mapError(storeError(`ingest (agent ${agent})`)),
        Effect.withSpan("Store.ingest", {
          attributes: { agent, outboxId, records: records.length },
          captureStackTrace: false
        })
      )
    }

    const ackedUpTo = (agent: string, outboxId: string) =>
      sql<Row>`SELECT last_seq FROM agent_offsets WHERE agent = ${agent} AND outbox_id = ${outboxId}`.pipe(
        Effect.map((rows) => (rows.length > 0 ? num(rows[0].last_seq) : -1)),
        Effect.mapError(storeError("ackedUpTo"))
      )

    // By agent only (the primary key's prefix): an agent has one row per outbox it ever had.
    const ackedUpToMany = (keys: ReadonlyArray<{ readonly agent: string; readonly outboxId: string }>) =>
      Effect.gen(function*() {
        const offsets = new Map<string, number>()
        for (const part of chunk([...new Set(keys.map((k) => k.agent))], ACKED_READ_AGENTS)) {
          const list = inList(part)
          const rows = yield* run(
            `SELECT agent, outbox_id, last_seq FROM agent_offsets WHERE agent IN ${list.text}`,
            list.params
          )
          for (const r of rows) offsets.set(offsetKey(String(r.agent), String(r.outbox_id)), num(r.last_seq))
        }
        return keys.map((k) => offsets.get(offsetKey(k.agent, k.outboxId)) ?? -1)
      }).pipe(Effect.mapError(storeError("ackedUpToMany")))

    // --- sessions ------------------------------------------------------------------------------

    const sessionsStarted = (sessions: ReadonlyArray<SessionInfo>) =>
      Effect.zipRight(
        writeRows(ctx, upsertAgentsSeen, sessions, (s) => [
          s.agent,
          s.connectedAt,
          s.connectedAt,
          clip(s.ip),
          s.missedTick ?? null,
          s.catchUpLimit ?? null
        ]),
        writeRows(ctx, insertSessions, sessions, (s) => [s.sessionId, s.agent, clip(s.ip), s.connectedAt])
      ).pipe(Effect.mapError(storeError("sessionStarted")))

    const sessionStarted = (s: SessionInfo) => sessionsStarted([s])

    const sessionOpened = (s: SessionInfo, outboxId: string) =>
      Effect.all({ started: Effect.either(sessionStarted(s)), acked: Effect.either(ackedUpTo(s.agent, outboxId)) }, {
        concurrency: 2
      })

    const sessionInfo = (agent: string, sessionId: string, info: ClientInfo) => {
      const values = sql.update({
        os_name: clip(info.osName),
        hostname: clip(info.hostname),
        os_version: clip(info.osVersion),
        kernel: clip(info.kernel),
        agent_version: clip(info.agentVersion)
      })
      return Effect.all([
        changes(sql`UPDATE agent_sessions SET ${values} WHERE session_id = ${sessionId} AND agent = ${agent}`),
        changes(sql`UPDATE agents SET ${values} WHERE name = ${agent}`)
      ], { discard: true }).pipe(Effect.mapError(storeError("sessionInfo")))
    }

    const endSession = `UPDATE agent_sessions SET disconnected_at = ? WHERE session_id = ? AND agent = ?`
    const agentLastSeen = `UPDATE agents SET last_seen_at = ? WHERE name = ?`
    const sessionEnded = (agent: string, sessionId: string, at: Micros) =>
      Effect.all([
        changes(
          sql`UPDATE agent_sessions SET disconnected_at = ${at} WHERE session_id = ${sessionId} AND agent = ${agent}`
        ),
        changes(sql`UPDATE agents SET last_seen_at = ${at} WHERE name = ${agent}`)
      ], { discard: true }).pipe(Effect.mapError(storeError("sessionEnded")))

    /**
     * The agents' last sight is each one's latest end among `ends`.
     * - SQLite: an UPDATE per session and per agent, in the caller's transaction (no round trips).
     * - MariaDB: two multi-table UPDATEs per `MAX_TEXT_ROWS` ends, joined with the new values as a
     *   derived table (sent unprepared, as `writeRows`): two statements and their round trips per
     *   end were the bulk of a mass disconnect.
     */
    const sessionsEnded = (ends: ReadonlyArray<SessionEnd>) =>
      Effect.forEach(chunk(ends, MAX_TEXT_ROWS), (part) => {
        const latest = new Map<string, Micros>()
        for (const e of part) latest.set(e.agent, Math.max(latest.get(e.agent) ?? 0, e.at) as Micros)
        if (!mysql) {
          return Effect.zipRight(
            Effect.forEach(part, (e) => exec(endSession, [e.at, e.sessionId, e.agent]), { discard: true }),
            Effect.forEach(latest, ([agent, at]) => exec(agentLastSeen, [at, agent]), { discard: true })
          )
        }
        return Effect.zipRight(
          sql.unsafe(
            `UPDATE agent_sessions s JOIN (${derivedRows(["session_id", "agent", "at"], part.length)}) v
             ON s.session_id = v.session_id AND s.agent = v.agent SET s.disconnected_at = v.at`,
            part.flatMap((e) => [e.sessionId, e.agent, e.at])
          ).unprepared,
          sql.unsafe(
            `UPDATE agents a JOIN (${derivedRows(["name", "at"], latest.size)}) v
             ON a.name = v.name SET a.last_seen_at = v.at`,
            [...latest].flat()
          ).unprepared
        )
      }, { discard: true }).pipe(Effect.mapError(storeError("sessionsEnded")))

    // Fence.fenced: lost-run marking is leader work; a stale leader's update is refused (issue 18).
    const markLost = (agent: string, startedBefore: Micros) =>
      Fence.fenced(
        sql,
        changes(
          sql`UPDATE runs SET state = 'lost' WHERE agent = ${agent} AND state = 'running' AND started_at < ${startedBefore}`
        )
      ).pipe(Effect.mapError(storeError("markLost")))

    return {
      ingest,
      ackedUpTo,
      ackedUpToMany,
      sessionStarted,
      sessionsStarted,
      sessionOpened,
      sessionInfo,
      sessionEnded,
      sessionsEnded,
      markLost
    } satisfies IngestShape
  })
