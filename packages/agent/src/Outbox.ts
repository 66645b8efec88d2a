/**
 * The agent's durable outbox and state store (D5): one SQLite file in WAL mode.
 *
 * Every record the agent produces (run start, output line, command exit, run end, missed run) is
 * appended here first with a per-agent sequence number, and only deleted once bartos acks it.
 * The same file keeps the agent's state: the cached schedule table (so an agent restarted while
 * bartos is down still runs its jobs, D3), the last occurrence run per schedule (so a clock
 * stepped backwards never re-runs one), the outbox id, the runs started but not yet finished
 * (so a bartoc killed mid-run learns, when it starts again, which runs it can no longer finish),
 * and the scheduled runs about to start ("intents", written ahead so that the start itself needs
 * no write: see `arm`).
 *
 * Durability: WAL with synchronous = NORMAL, so a commit is a write into the WAL and no fsync; it
 * survives a kill of the process at any moment. The fsyncs happen when the WAL is checkpointed
 * into the database file. SQLite would do that inside whichever commit crosses its threshold,
 * blocking the event loop there for two fsyncs (milliseconds on a slow disk), possibly right at a
 * job's start; the outbox checkpoints when the caller says the moment is quiet (`checkpoint`)
 * and leaves SQLite's own automatic checkpoint only as a far-away backstop.
 */
import * as Codec from "@barto/domain/Codec"
import { uuidv4 } from "@barto/domain/Ids"
import { AgentRecord, ScheduleTable, type Trigger } from "@barto/domain/Messages"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as fs from "node:fs"
import * as path from "node:path"
import * as CrashPoint from "./internal/crashPoint.js"
import * as Sqlite from "./internal/outbox/Sqlite.js"

type DistributiveOmit<T, K extends keyof any> = T extends unknown ? Omit<T, K> : never

/** A record before the outbox stamps its sequence number. */
export type RecordDraft = DistributiveOmit<AgentRecord, "seq">

export class OutboxError extends Data.TaggedError("OutboxError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A scheduled run about to start, recorded durably before its instant: the start then writes
 * nothing before the spawn, and a process that dies around the start leaves the intent behind
 * for its successor to account for.
 */
export interface Intent {
  readonly runId: string
  readonly schedule: string
  /** Epoch ms of the occurrence. */
  readonly scheduledAt: number
  readonly trigger: Trigger
}

/**
 * State changes that commit in the same transaction as an append: a late wake-up's plan (its
 * missed records, the intents of the runs it will start, the schedule's new last run) is one
 * transaction, so a crash leaves either all of it or none of it.
 */
export interface AppendAlso {
  readonly arm?: ReadonlyArray<Intent>
  readonly disarm?: ReadonlyArray<string>
  /** Raises the schedule's last run to `at` (never lowers it). */
  readonly lastRun?: { readonly schedule: string; readonly at: number }
}

export interface OutboxStats {
  readonly pending: number
  readonly bytes: number
  readonly dropped: number
}

export interface OutboxShape {
  /** Random, minted when the file is created, persisted. */
  readonly outboxId: string
  /**
   * Runs that had a `RunStarted` but no `RunFinished` when this file was opened: a previous
   * process died while running them (kill -9, crash, power loss), and nobody will ever finish them.
   */
  readonly orphanedRuns: ReadonlyArray<{ readonly runId: string; readonly schedule: string }>
  /**
   * Intents present when this file was opened: a previous process armed them and never started
   * (nor recorded as missed) their runs. The Runner accounts for them at start-up.
   */
  readonly leftoverIntents: ReadonlyArray<Intent>
  /**
   * Assigns consecutive seqs and durably appends (one transaction, with `also`) before returning
   * the stamped records. A `RunStarted` or `RunMissed` whose run id has an intent consumes it in
   * the same transaction and, unless it is a manual run's, advances that schedule's last run to
   * the intent's occurrence.
   */
  readonly append: (
    drafts: ReadonlyArray<RecordDraft>,
    also?: AppendAlso
  ) => Effect.Effect<ReadonlyArray<AgentRecord>, OutboxError>
  /** Unacked records with seq > afterSeq, ascending, at most `limit`. */
  readonly pending: (afterSeq: number, limit: number) => Effect.Effect<ReadonlyArray<AgentRecord>, OutboxError>
  /**
   * `pending` in the encoded form the records were stored in (what goes on the wire), without
   * decoding them again: the sender's path (`Messages.recordBatchWire`).
   */
  readonly pendingEncoded: (
    afterSeq: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<typeof AgentRecord.Encoded>, OutboxError>
  /** Deletes every record with seq <= upTo. */
  readonly ack: (upTo: number) => Effect.Effect<void, OutboxError>
  /** Highest seq ever assigned (-1 if none); changes on every append — subscribe to wake the sender. */
  readonly lastSeq: SubscriptionRef.SubscriptionRef<number>
  readonly stats: Effect.Effect<OutboxStats, OutboxError>
  // durable agent state in the same file
  readonly saveTable: (table: typeof ScheduleTable.Type) => Effect.Effect<void, OutboxError>
  readonly loadTable: Effect.Effect<Option.Option<typeof ScheduleTable.Type>, OutboxError>
  /** Epoch ms of the last occurrence run for this schedule. */
  readonly lastRun: (schedule: string) => Effect.Effect<Option.Option<number>, OutboxError>
  readonly setLastRun: (schedule: string, occurrenceMs: number) => Effect.Effect<void, OutboxError>
  /** Durably records intents (one transaction). */
  readonly arm: (intents: ReadonlyArray<Intent>) => Effect.Effect<void, OutboxError>
  /** Removes intents whose runs will not start after all (table change, shutdown). */
  readonly disarm: (runIds: ReadonlyArray<string>) => Effect.Effect<void, OutboxError>
  /** The intents recorded right now, oldest occurrence first. */
  readonly intents: Effect.Effect<ReadonlyArray<Intent>, OutboxError>
  /**
   * Checkpoints the WAL into the database file if enough was written since the last one. Call it
   * at a quiet moment (the Ticker does, well before its next due instant): it blocks on fsync.
   */
  readonly checkpoint: Effect.Effect<void, OutboxError>
}

export class Outbox extends Context.Tag("@barto/agent/Outbox")<Outbox, OutboxShape>() {}

export interface Options {
  /** File path, or ":memory:" (tests). Parent directories are created. */
  readonly path: string
  /** Cap on the bytes of pending records (`outbox_max_mb`); oldest output lines go first. */
  readonly maxBytes: number
  /**
   * The agent's name: the cached schedule table is saved with it and loaded only under it, so a
   * table bartos gave another name never runs here (a renamed agent, a copied state file).
   */
  readonly agentName?: string | undefined
}

// ---------------------------------------------------------------------------------------------

const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS records (
  seq   INTEGER PRIMARY KEY,
  kind  TEXT    NOT NULL,
  body  TEXT    NOT NULL,
  bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_kind_seq ON records (kind, seq);
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS last_runs (
  schedule      TEXT PRIMARY KEY,
  occurrence_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS open_runs (
  run_id   TEXT PRIMARY KEY,
  schedule TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS intents (
  run_id        TEXT PRIMARY KEY,
  schedule      TEXT NOT NULL,
  occurrence_ms INTEGER NOT NULL,
  run_trigger   TEXT NOT NULL
);
`

/**
 * WAL pages (estimated from what the transactions wrote) after which `checkpoint` does one.
 * Small on purpose: a small checkpoint is short, and it runs at a moment chosen by the caller.
 */
const CHECKPOINT_AFTER_PAGES = 256
/**
 * SQLite's own automatic checkpoint (pages), far above what `checkpoint` lets the WAL reach:
 * only a backstop for a process that never calls `checkpoint` (no schedules, manual runs only).
 */
const AUTO_CHECKPOINT_PAGES = 4000

// Compiled, Schema as the fallback: every record is encoded on append and decoded on send.
const encodeRecord = Codec.fastEncodeSync(AgentRecord)
const decodeRecord = Codec.fastDecodeUnknownSync(AgentRecord)
const encodeTable = Schema.encodeSync(ScheduleTable)
const decodeTable = Schema.decodeUnknownSync(ScheduleTable)

/** Rows dropped per statement while enforcing the cap; keeps each step bounded. */
const DROP_CHUNK = 1000

const attempt = <A>(message: string, f: () => A): Effect.Effect<A, OutboxError> =>
  Effect.try({ try: f, catch: (cause) => new OutboxError({ message: `${message}: ${describe(cause)}`, cause }) })

const describe = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

interface Opened {
  readonly db: Sqlite.Database
  readonly outboxId: string
  readonly lastSeq: number
  readonly pendingBytes: number
  readonly orphanedRuns: ReadonlyArray<{ readonly runId: string; readonly schedule: string }>
  readonly leftoverIntents: ReadonlyArray<Intent>
}

const openDatabase = (options: Options): Effect.Effect<Opened, OutboxError> =>
  attempt(`cannot open outbox ${options.path}`, () => {
    if (options.path !== ":memory:" && !options.path.startsWith("file:")) {
      fs.mkdirSync(path.dirname(path.resolve(options.path)), { recursive: true })
    }
    const db = Sqlite.open(options.path)
    try {
      // WAL + NORMAL: a committed append survives a process kill; only an OS crash can lose the
      // last few transactions, which is the trade D5 accepts for append throughput.
      db.pragma("journal_mode = WAL")
      db.pragma("synchronous = NORMAL")
      db.pragma(`wal_autocheckpoint = ${AUTO_CHECKPOINT_PAGES}`)
      db.exec(SCHEMA_SQL)
      const init = db.transaction(() => {
        const getMeta = db.prepare("SELECT value FROM meta WHERE key = ?")
        const idRow = getMeta.get("outbox_id") as { value: string } | undefined
        let outboxId = idRow?.value
        if (outboxId === undefined) {
          outboxId = uuidv4()
          db.prepare("INSERT INTO meta (key, value) VALUES ('outbox_id', ?)").run(outboxId)
        }
        const seqRow = getMeta.get("last_seq") as { value: string } | undefined
        const maxRow = db.prepare("SELECT MAX(seq) AS m FROM records").get() as { m: number | null }
        // last_seq is written in every append transaction; the MAX is a belt for a file written
        // by something else.
        const lastSeq = Math.max(seqRow === undefined ? -1 : Number(seqRow.value), maxRow.m ?? -1)
        const bytesRow = db.prepare("SELECT COALESCE(SUM(bytes), 0) AS b FROM records").get() as { b: number }
        // Nothing of this process has started yet: every open run is a dead process's.
        const orphanedRuns = (db.prepare("SELECT run_id, schedule FROM open_runs ORDER BY run_id").all() as Array<{
          run_id: string
          schedule: string
        }>).map((r) => ({ runId: r.run_id, schedule: r.schedule }))
        const leftoverIntents = readIntents(db)
        return { outboxId, lastSeq, pendingBytes: bytesRow.b, orphanedRuns, leftoverIntents }
      })
      return { db, ...init() }
    } catch (e) {
      db.close()
      throw e
    }
  })

const readIntents = (db: Sqlite.Database): Array<Intent> =>
  (db.prepare(
    "SELECT run_id, schedule, occurrence_ms, run_trigger FROM intents ORDER BY occurrence_ms, run_id"
  ).all() as Array<{ run_id: string; schedule: string; occurrence_ms: number; run_trigger: string }>).map((r) => ({
    runId: r.run_id,
    schedule: r.schedule,
    scheduledAt: Number(r.occurrence_ms),
    trigger: r.run_trigger as Trigger
  }))

/** Pages a transaction that wrote `bytes` of records is assumed to add to the WAL (generous). */
const pagesFor = (bytes: number): number => 3 + Math.ceil(bytes / 1024)

/** Builds the service over an open database. Exposed for tests that need two handles on one file. */
export const make = (options: Options): Effect.Effect<OutboxShape, OutboxError, Scope.Scope> =>
  Effect.gen(function*() {
    const opened = yield* Effect.acquireRelease(
      openDatabase(options),
      ({ db }) => Effect.sync(() => db.open && db.close())
    )
    const { db, outboxId } = opened
    const lastSeq = yield* SubscriptionRef.make(opened.lastSeq)

    // In-memory mirrors of what the file holds, so an append does not scan the table.
    let nextSeq = opened.lastSeq + 1
    let pendingBytes = opened.pendingBytes

    const stmt = {
      insert: db.prepare("INSERT INTO records (seq, kind, body, bytes) VALUES (?, ?, ?, ?)"),
      setMeta: db.prepare(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
      ),
      getMeta: db.prepare("SELECT value FROM meta WHERE key = ?"),
      pending: db.prepare("SELECT body FROM records WHERE seq > ? ORDER BY seq LIMIT ?"),
      ackSum: db.prepare("SELECT COALESCE(SUM(bytes), 0) AS b FROM records WHERE seq <= ?"),
      ackDelete: db.prepare("DELETE FROM records WHERE seq <= ?"),
      oldestLines: db.prepare("SELECT seq, bytes FROM records WHERE kind = 'OutputLine' ORDER BY seq LIMIT ?"),
      deleteOne: db.prepare("DELETE FROM records WHERE seq = ?"),
      stats: db.prepare("SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM records"),
      getLastRun: db.prepare("SELECT occurrence_ms FROM last_runs WHERE schedule = ?"),
      setLastRun: db.prepare(
        "INSERT INTO last_runs (schedule, occurrence_ms) VALUES (?, ?) " +
          "ON CONFLICT (schedule) DO UPDATE SET occurrence_ms = excluded.occurrence_ms"
      ),
      openRun: db.prepare("INSERT INTO open_runs (run_id, schedule) VALUES (?, ?) ON CONFLICT (run_id) DO NOTHING"),
      closeRun: db.prepare("DELETE FROM open_runs WHERE run_id = ?"),
      insertIntent: db.prepare(
        "INSERT INTO intents (run_id, schedule, occurrence_ms, run_trigger) VALUES (?, ?, ?, ?) " +
          "ON CONFLICT (run_id) DO UPDATE SET schedule = excluded.schedule, " +
          "occurrence_ms = excluded.occurrence_ms, run_trigger = excluded.run_trigger"
      ),
      getIntent: db.prepare("SELECT schedule, occurrence_ms, run_trigger FROM intents WHERE run_id = ?"),
      deleteIntent: db.prepare("DELETE FROM intents WHERE run_id = ?"),
      // Never moves a last run backwards: a slower path may already have stored a later one.
      raiseLastRun: db.prepare(
        "INSERT INTO last_runs (schedule, occurrence_ms) VALUES (?, ?) " +
          "ON CONFLICT (schedule) DO UPDATE SET occurrence_ms = MAX(occurrence_ms, excluded.occurrence_ms)"
      )
    }

    /**
     * WAL pages written since the last checkpoint (an estimate; see `pagesFor`). Starts full: the
     * WAL a previous process left is checkpointed at the first chance.
     */
    let walPages = CHECKPOINT_AFTER_PAGES

    /**
     * The run's intent, if it has one, is settled: gone, and its occurrence handled. A manual
     * run stands for no occurrence (its "occurrence" is when it was asked for): it moves nothing.
     */
    const consumeIntent = (runId: string) => {
      const intent = stmt.getIntent.get(runId) as
        | { schedule: string; occurrence_ms: number; run_trigger: string }
        | undefined
      if (intent === undefined) return
      stmt.deleteIntent.run(runId)
      if (intent.run_trigger !== "manual") stmt.raiseLastRun.run(intent.schedule, intent.occurrence_ms)
    }

    const readDropped = (): number => {
      const row = stmt.getMeta.get("dropped") as { value: string } | undefined
      return row === undefined ? 0 : Number(row.value)
    }

    /** Drops the oldest output lines until under the cap; runs inside the append transaction. */
    const enforceCap = (): number => {
      let dropped = 0
      while (pendingBytes > options.maxBytes) {
        const victims = stmt.oldestLines.all(DROP_CHUNK) as Array<{ seq: number; bytes: number }>
        if (victims.length === 0) break
        for (const v of victims) {
          if (pendingBytes <= options.maxBytes) break
          stmt.deleteOne.run(v.seq)
          pendingBytes -= v.bytes
          dropped++
        }
      }
      if (dropped > 0) stmt.setMeta.run("dropped", String(readDropped() + dropped))
      return dropped
    }

    const appendTx = db.transaction((drafts: ReadonlyArray<RecordDraft>, also: AppendAlso | undefined) => {
      const startSeq = nextSeq
      const startBytes = pendingBytes
      try {
        // A plan never arms, disarms and records the same run id, so the order does not matter.
        for (const i of also?.arm ?? []) {
          stmt.insertIntent.run(i.runId, i.schedule, Math.floor(i.scheduledAt), i.trigger)
        }
        for (const id of also?.disarm ?? []) stmt.deleteIntent.run(id)
        if (also?.lastRun !== undefined) stmt.raiseLastRun.run(also.lastRun.schedule, Math.floor(also.lastRun.at))
        const out: Array<AgentRecord> = []
        let seq = nextSeq
        for (const draft of drafts) {
          const record = { ...draft, seq } as AgentRecord
          const body = JSON.stringify(encodeRecord(record))
          const bytes = Buffer.byteLength(body, "utf8")
          stmt.insert.run(seq, record._tag, body, bytes)
          // In the same transaction as the record: the set of open runs never disagrees with it.
          if (record._tag === "RunStarted") {
            stmt.openRun.run(record.runId, record.schedule)
            consumeIntent(record.runId)
          } else if (record._tag === "RunFinished") {
            stmt.closeRun.run(record.runId)
          } else if (record._tag === "RunMissed") {
            consumeIntent(record.runId)
          }
          pendingBytes += bytes
          out.push(record)
          seq++
        }
        nextSeq = seq
        if (out.length > 0) stmt.setMeta.run("last_seq", String(nextSeq - 1))
        const dropped = enforceCap()
        walPages += pagesFor(Math.max(0, pendingBytes - startBytes))
        return { records: out, dropped }
      } catch (e) {
        // The transaction rolls back; so must the mirrors.
        nextSeq = startSeq
        pendingBytes = startBytes
        throw e
      }
    })

    /** The crash points a committed append passed (see `internal/crashPoint.ts`). */
    const pointsOf = (records: ReadonlyArray<AgentRecord>, also: AppendAlso | undefined): Array<string> => {
      const points = new Set<string>()
      if (also?.lastRun !== undefined) points.add("watermark")
      if ((also?.arm?.length ?? 0) > 0) points.add("arm")
      for (const r of records) {
        points.add(r._tag)
        if (r._tag === "RunStarted") points.add(`${r._tag}:${r.trigger}`)
        else if (r._tag === "RunFinished") points.add(`${r._tag}:${r.state}`)
        else if (r._tag === "RunMissed") points.add(`${r._tag}:${r.reason}`)
      }
      return [...points]
    }

    const isEmpty = (also: AppendAlso | undefined) =>
      also === undefined ||
      ((also.arm?.length ?? 0) === 0 && (also.disarm?.length ?? 0) === 0 && also.lastRun === undefined)

    const append = (
      drafts: ReadonlyArray<RecordDraft>,
      also?: AppendAlso
    ): Effect.Effect<ReadonlyArray<AgentRecord>, OutboxError> =>
      drafts.length === 0 && isEmpty(also) ? Effect.succeed([]) : Effect.gen(function*() {
        const { dropped, records } = yield* attempt("outbox append failed", () => appendTx(drafts, also))
        if (CrashPoint.enabled) CrashPoint.passed(pointsOf(records, also))
        if (records.length === 0) return records
        const last = records[records.length - 1]!.seq
        yield* SubscriptionRef.update(lastSeq, (current) => Math.max(current, last))
        if (dropped > 0) {
          yield* Effect.logError(
            `OUTBOX FULL: pending records exceed outbox_max_mb (${options.maxBytes} bytes); ` +
              `dropped ${dropped} oldest output line(s) (${readDropped()} dropped in total)`
          )
        } else if (pendingBytes > options.maxBytes) {
          yield* Effect.logError(
            `OUTBOX FULL: ${pendingBytes} bytes pending exceed outbox_max_mb (${options.maxBytes} bytes) ` +
              `and no output lines are left to drop; keeping run records`
          )
        }
        return records
      })

    const pending = (afterSeq: number, limit: number) =>
      attempt("outbox read failed", () =>
        (stmt.pending.all(afterSeq, Math.max(0, Math.floor(limit))) as Array<{ body: string }>).map((row) =>
          decodeRecord(JSON.parse(row.body))
        ))
    // This file's own writing (`encodeRecord` at append): parsed, not decoded and encoded again.
    const pendingEncoded = (afterSeq: number, limit: number) =>
      attempt("outbox read failed", () =>
        (stmt.pending.all(afterSeq, Math.max(0, Math.floor(limit))) as Array<{ body: string }>).map((row) =>
          JSON.parse(row.body) as typeof AgentRecord.Encoded
        ))

    const ackTx = db.transaction((upTo: number) => {
      const { b } = stmt.ackSum.get(upTo) as { b: number }
      stmt.ackDelete.run(upTo)
      pendingBytes -= b
      walPages += pagesFor(b)
    })

    const ack = (upTo: number) =>
      attempt("outbox ack failed", () =>
        ackTx(upTo))

    const stats = attempt("outbox stats failed", (): OutboxStats => {
      const row = stmt.stats.get() as { n: number; b: number }
      return { pending: row.n, bytes: row.b, dropped: readDropped() }
    })

    const saveTable = (table: typeof ScheduleTable.Type) =>
      attempt("saving the schedule table failed", () => {
        const text = JSON.stringify({ agent: options.agentName ?? null, table: encodeTable(table) })
        stmt.setMeta.run("schedule_table", text)
        walPages += pagesFor(text.length)
      })

    const loadTable = attempt("loading the schedule table failed", () => {
      const row = stmt.getMeta.get("schedule_table") as { value: string } | undefined
      if (row === undefined) {
        return { table: Option.none(), savedFor: undefined }
      }
      const saved = JSON.parse(row.value) as { readonly agent?: unknown; readonly table?: unknown }
      // A cache from before the name was saved with it has no owner: it is not run either.
      const savedFor = typeof saved.agent === "string" ? saved.agent : undefined
      return savedFor === (options.agentName ?? undefined) && "table" in saved
        ? { table: Option.some(decodeTable(saved.table)), savedFor }
        : { table: Option.none<typeof ScheduleTable.Type>(), savedFor: savedFor ?? "" }
    }).pipe(
      Effect.tap(({ savedFor, table }) =>
        Option.isNone(table) && savedFor !== undefined
          ? Effect.logWarning(
            `${
              savedFor === ""
                ? "the cached schedule table has no agent name (an older bartoc saved it)"
                : `the cached schedule table belongs to agent '${savedFor}'`
            }, this is '${options.agentName}': not running it; waiting for bartos to send this agent's table`
          )
          : Effect.void
      ),
      Effect.map(({ table }) =>
        table
      )
    )

    const lastRun = (schedule: string) =>
      attempt("reading the last run failed", () => {
        const row = stmt.getLastRun.get(schedule) as { occurrence_ms: number } | undefined
        return row === undefined ? Option.none() : Option.some(Number(row.occurrence_ms))
      })

    const setLastRun = (schedule: string, occurrenceMs: number) =>
      attempt("saving the last run failed", () => {
        stmt.setLastRun.run(schedule, Math.floor(occurrenceMs))
        walPages += pagesFor(0)
      })

    const armTx = db.transaction((intents: ReadonlyArray<Intent>) => {
      for (const i of intents) {
        stmt.insertIntent.run(i.runId, i.schedule, Math.floor(i.scheduledAt), i.trigger)
      }
      walPages += pagesFor(0)
    })
    const arm = (intents: ReadonlyArray<Intent>) =>
      intents.length === 0 ? Effect.void : attempt("recording the runs about to start failed", () => {
        armTx(intents)
        if (CrashPoint.enabled) {
          CrashPoint.passed(["arm"])
        }
      })

    const disarmTx = db.transaction((runIds: ReadonlyArray<string>) => {
      for (const id of runIds) {
        stmt.deleteIntent.run(id)
      }
      walPages += pagesFor(0)
    })
    const disarm = (runIds: ReadonlyArray<string>) =>
      runIds.length === 0 ? Effect.void : attempt("removing intents failed", () =>
        disarmTx(runIds))

    const intents = attempt("reading intents failed", () => readIntents(db))

    const checkpoint = attempt("checkpointing the outbox failed", () => {
      if (walPages < CHECKPOINT_AFTER_PAGES) return
      // PASSIVE: never waits for anything; this process is the only one writing the file.
      db.pragma("wal_checkpoint(PASSIVE)")
      walPages = 0
    })

    return {
      outboxId,
      orphanedRuns: opened.orphanedRuns,
      leftoverIntents: opened.leftoverIntents,
      append,
      pending,
      pendingEncoded,
      ack,
      lastSeq,
      stats,
      saveTable,
      loadTable,
      lastRun,
      setLastRun,
      arm,
      disarm,
      intents,
      checkpoint
    } satisfies OutboxShape
  })

/** `path: ":memory:"` for tests. */
export const layer = (options: Options): Layer.Layer<Outbox, OutboxError> => Layer.scoped(Outbox, make(options))
