/**
 * Every message of the three links (D6), as Effect Schemas. Types are derived from the schemas,
 * never written twice.
 *
 * Conventions:
 * - Instants are integers of **microseconds since the Unix epoch, UTC** (`Micros`). They fit in a
 *   double exactly until year 2255 and are stored as BIGINT as-is (D8).
 * - Every message is a tagged struct; one binary WebSocket frame carries one message, encoded by
 *   the codec of `Codec.ts` (JSON by default).
 * - A link opens with `Hello` both ways; `protocol` must equal `PROTOCOL_VERSION`.
 */
import * as Schema from "effect/Schema"

export const PROTOCOL_VERSION = 1

/** Microseconds since the Unix epoch (UTC). */
export const Micros = Schema.Int.pipe(Schema.brand("Micros"))
export type Micros = typeof Micros.Type

// Bounds the database can hold (D8), so a record that fits the Schema always fits its row: a
// value over a column's size failed the whole batch on MariaDB, unacked, and stalled the agent's
// outbox forever. Ids minted by agents are VARCHAR(64), names VARCHAR(255), counters INT.

/** Ids minted by agents: run ids, command ids, outbox ids (UUIDs are 36 characters). */
export const Id = Schema.String.pipe(Schema.maxLength(64))
/** Schedule names and other short text bartos stores as VARCHAR(255). */
export const ShortText = Schema.String.pipe(Schema.maxLength(255))
/** What an INT column holds. */
export const Int32 = Schema.Int.pipe(Schema.between(-2147483648, 2147483647))

export const RunId = Id.pipe(Schema.brand("RunId"))
export type RunId = typeof RunId.Type

/** Per-agent outbox sequence number: strictly increasing, never reused by one agent. */
export const Seq = Schema.Int.pipe(Schema.nonNegative())

export const Stream = Schema.Literal("stdout", "stderr")
export type Stream = typeof Stream.Type

export const Trigger = Schema.Literal("schedule", "catch_up", "manual")
export type Trigger = typeof Trigger.Type

/**
 * Final states a run that started can end in (D4). `interrupted`: bartoc stopped it or died while
 * it ran (the `RunFinished` says why: `shutdown`, `agent_restart`).
 */
export const FinalRunState = Schema.Literal("succeeded", "failed", "timed_out", "cancelled", "interrupted")
export type FinalRunState = typeof FinalRunState.Type

/**
 * Every state a run can be in as stored by bartos (D4): `running`, a final state, `missed` (an
 * occurrence that never started, with its reason) or `lost` (bartos gave up waiting for an agent
 * that vanished; reconciled when it reports).
 */
export const RunState = Schema.Literal(
  "running",
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "interrupted",
  "missed",
  "lost"
)
export type RunState = typeof RunState.Type

export const Overlap = Schema.Literal("allow", "forbid", "queue")
export type Overlap = typeof Overlap.Type

export const OnFailure = Schema.Literal("continue", "stop")

/**
 * How much lower than bartoc's own a schedule's commands run (`nice = N`: like `nice -n N`, so
 * `0` = the same as bartoc, `19` = the lowest), so that busy jobs never delay bartoc's dispatch.
 */
export const Nice = Schema.Int.pipe(Schema.between(0, 19))
/** `nice` when the schedule does not say (and when an older bartos sends no `nice` at all). */
export const DEFAULT_NICE = 10
export type OnFailure = typeof OnFailure.Type

export const MissedTick = Schema.Literal("Burst", "Delay", "Skip")
export type MissedTick = typeof MissedTick.Type

// ---------------------------------------------------------------------------------------------
// Shared structures
// ---------------------------------------------------------------------------------------------

/** What bartoc learns about its host (reference §2.4 `BartocInfo`). */
export class ClientInfo extends Schema.Class<ClientInfo>("ClientInfo")({
  osName: Schema.String,
  hostname: Schema.String,
  osVersion: Schema.String,
  kernel: Schema.String,
  agentVersion: Schema.String
}) {}

/**
 * One schedule as bartos pushes it to an agent. `calendar` is the normalised expression with
 * every `R` already resolved (stably, D2), so the agent never draws anything itself; `onCalendar`
 * is the text as the operator wrote it.
 */
export class ScheduleSpec extends Schema.Class<ScheduleSpec>("ScheduleSpec")({
  /** Bounded like the records that carry it back (`RunStarted.schedule`). */
  name: ShortText,
  onCalendar: Schema.String,
  calendar: Schema.String,
  cmds: Schema.Array(Schema.String),
  /** Seconds; absent = no timeout. */
  timeoutSecs: Schema.optional(Schema.Finite.pipe(Schema.positive())),
  overlap: Overlap,
  onFailure: OnFailure,
  paused: Schema.Boolean,
  /** Absent from an older bartos: `DEFAULT_NICE`. */
  nice: Schema.optional(Nice)
}) {}

// ---------------------------------------------------------------------------------------------
// Agent records (D4/D5): appended to the outbox first, then streamed, acked by sequence
// ---------------------------------------------------------------------------------------------

export const RunStarted = Schema.TaggedStruct("RunStarted", {
  seq: Seq,
  runId: RunId,
  schedule: ShortText,
  trigger: Trigger,
  scheduledAt: Micros,
  startedAt: Micros
})

export const CommandStarted = Schema.TaggedStruct("CommandStarted", {
  seq: Seq,
  runId: RunId,
  cmdUuid: Id,
  /** Position of the command in the schedule's `cmds`. */
  cmdIndex: Int32,
  command: Schema.String,
  startedAt: Micros
})

export const OutputLine = Schema.TaggedStruct("OutputLine", {
  seq: Seq,
  runId: RunId,
  cmdUuid: Id,
  /** One sequence per run across stdout and stderr: the exact interleaving. */
  lineSeq: Int32,
  stream: Stream,
  ts: Micros,
  data: Schema.String,
  /** True when this part continues the previous line (a line over 64 KiB is split, D4). */
  continuation: Schema.Boolean
})

export const CommandExited = Schema.TaggedStruct("CommandExited", {
  seq: Seq,
  runId: RunId,
  cmdUuid: Id,
  /** Null when killed by a signal. */
  exitCode: Schema.NullOr(Int32),
  signal: Schema.NullOr(Schema.String.pipe(Schema.maxLength(64))),
  finishedAt: Micros
})

export const RunFinished = Schema.TaggedStruct("RunFinished", {
  seq: Seq,
  runId: RunId,
  state: FinalRunState,
  finishedAt: Micros,
  /** Why the run ended so, for `interrupted`: "shutdown", "agent_restart" (README, run states). */
  reason: Schema.optionalWith(ShortText, { exact: true })
})

/**
 * An occurrence that never started, or (with `until`) every occurrence of the schedule from
 * `scheduledAt` to `until` inclusive, `count` of them: one record for a gap too long to list
 * (README, run states).
 */
export const RunMissed = Schema.TaggedStruct("RunMissed", {
  seq: Seq,
  runId: RunId,
  schedule: ShortText,
  scheduledAt: Micros,
  /** Why: "catch_up_limit", "missed_tick:Skip", "overlap", "paused", "agent_restart"… (README, run states). */
  reason: ShortText,
  /** A range: its last occurrence. Absent: this one occurrence. */
  until: Schema.optionalWith(Micros, { exact: true }),
  /** A range: how many occurrences it stands for (`scheduledAt` and `until` included). */
  count: Schema.optionalWith(Int32.pipe(Schema.positive()), { exact: true }),
  /** The trigger the run would have had; absent: `schedule`. */
  trigger: Schema.optionalWith(Trigger, { exact: true })
})

/**
 * A job said it is alive (issue 14): a line it wrote to `BARTO_HEARTBEAT` (README "Heartbeats").
 * Resets bartos' stall timer; the last one is shown with the run. Wire compatibility: a bartos
 * older than this record refuses a batch holding one, so upgrade bartos before the agents whose
 * jobs beat (bartos advertises the capability `heartbeat`).
 */
export const Heartbeat = Schema.TaggedStruct("Heartbeat", {
  seq: Seq,
  runId: RunId,
  ts: Micros,
  /** `done/total`, e.g. "40/100". */
  progress: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(32)), { exact: true }),
  status: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(64)), { exact: true }),
  message: Schema.optionalWith(ShortText, { exact: true })
})

export const AgentRecord = Schema.Union(
  RunStarted,
  CommandStarted,
  OutputLine,
  CommandExited,
  RunFinished,
  RunMissed,
  Heartbeat
)
export type AgentRecord = typeof AgentRecord.Type

// ---------------------------------------------------------------------------------------------
// Worker link: bartoc -> bartos
// ---------------------------------------------------------------------------------------------

export const AgentHello = Schema.TaggedStruct("AgentHello", {
  protocol: Schema.Int,
  agentVersion: Schema.String,
  capabilities: Schema.Array(Schema.String),
  /**
   * Random id minted when the agent's outbox file is created. Idempotency is keyed by
   * (agent, outboxId, seq), so an agent whose state file was wiped restarts at seq 0 without
   * its new records being mistaken for duplicates. It is also the agent instance's identity: a
   * second instance (another outbox) claiming a name that is live is refused.
   */
  outboxId: Id,
  /** Highest outbox sequence the agent has assigned so far (-1 if none). */
  lastSeq: Schema.Int,
  /**
   * The agent's effective `missed_tick` policy and `catch_up_limit` (bartoc.toml), shown by
   * `barto-cli schedules` and `status`. Optional, so no protocol version bump: an agent before
   * them sends neither (bartos shows the setting as unknown), and a bartos before them ignores
   * them (unknown keys are dropped when decoding).
   */
  missedTick: Schema.optionalWith(MissedTick, { exact: true }),
  /** A limit above the INT range is sent as its largest value (2147483647). */
  catchUpLimit: Schema.optionalWith(Int32.pipe(Schema.nonNegative()), { exact: true })
})

export const AgentInfo = Schema.TaggedStruct("AgentInfo", { info: ClientInfo })

export const Ping = Schema.TaggedStruct("Ping", { id: Schema.Int, sentAt: Micros })
export const Pong = Schema.TaggedStruct("Pong", { id: Schema.Int, sentAt: Micros })

/**
 * Wire form of consecutive output lines of one command (D6): each line's `seq` and `lineSeq` are
 * one more than the line before, so only the first ones travel, and the rest goes in columns.
 * This is what bartoc's batches are made of (a batch of 500 lines is a quarter of the row form's
 * bytes, and decoding it costs a sixth); it only exists on the wire, `RecordBatch` turns it into
 * `OutputLine`s.
 */
export const OutputLines = Schema.TaggedStruct("OutputLines", {
  /** `seq` of the first line. */
  seq: Seq,
  runId: RunId,
  cmdUuid: Id,
  /** `lineSeq` of the first line (each line's is checked again once expanded). */
  lineSeq: Int32,
  /** Each line's `ts` minus the previous line's (the first line's: its `ts`). */
  ts: Schema.Array(Schema.Int),
  /** One character per line: "0" stdout, "1" stderr, "2" stdout continuation, "3" stderr continuation. */
  flags: Schema.String,
  data: Schema.Array(Schema.String)
}).pipe(
  Schema.filter((g) =>
    (g.data.length > 0 && g.ts.length === g.data.length && g.flags.length === g.data.length &&
      LINE_FLAGS.test(g.flags)) ||
    `${g.data.length} lines need as many ts and flags (0-3), got ${g.ts.length} ts and flags "${g.flags.slice(0, 16)}"`
  )
)
const LINE_FLAGS = /^[0-3]+$/

type OutputLineType = typeof OutputLine.Type
type OutputLinesType = typeof OutputLines.Type

const expandLines = (g: OutputLinesType, out: Array<unknown>): void => {
  let ts = 0
  for (let i = 0; i < g.data.length; i++) {
    ts += g.ts[i]
    const flag = g.flags.charCodeAt(i) - 48
    out.push({
      _tag: "OutputLine",
      seq: g.seq + i,
      runId: g.runId,
      cmdUuid: g.cmdUuid,
      lineSeq: g.lineSeq + i,
      stream: (flag & 1) === 0 ? "stdout" : "stderr",
      ts,
      data: g.data[i],
      continuation: (flag & 2) !== 0
    })
  }
}

/** Maximal runs of lines that can share one `OutputLines` (see there). */
const compactLines = (records: ReadonlyArray<AgentRecord>): Array<AgentRecord | OutputLinesType> => {
  const out: Array<AgentRecord | OutputLinesType> = []
  let i = 0
  while (i < records.length) {
    const first = records[i]
    if (first._tag !== "OutputLine") {
      out.push(first)
      i++
      continue
    }
    const ts: Array<number> = [first.ts]
    const data: Array<string> = [first.data]
    let flags = String.fromCharCode(48 + (first.stream === "stderr" ? 1 : 0) + (first.continuation ? 2 : 0))
    let prev: OutputLineType = first
    let j = i + 1
    for (; j < records.length; j++) {
      const r = records[j]
      if (
        r._tag !== "OutputLine" || r.runId !== first.runId || r.cmdUuid !== first.cmdUuid || r.seq !== prev.seq + 1 ||
        r.lineSeq !== prev.lineSeq + 1 || !Number.isSafeInteger(r.ts - prev.ts)
      ) break
      ts.push(r.ts - prev.ts)
      data.push(r.data)
      flags += String.fromCharCode(48 + (r.stream === "stderr" ? 1 : 0) + (r.continuation ? 2 : 0))
      prev = r
    }
    out.push({
      _tag: "OutputLines",
      seq: first.seq,
      runId: first.runId,
      cmdUuid: first.cmdUuid,
      lineSeq: first.lineSeq,
      ts,
      flags,
      data
    })
    i = j
  }
  return out
}

/**
 * Records in seq order. On the wire, runs of output lines travel as `OutputLines`; single
 * `OutputLine` records are accepted too (the row form of earlier agents).
 */
export const RecordBatch = Schema.transform(
  Schema.TaggedStruct("RecordBatch", {
    records: Schema.Array(
      Schema.Union(
        RunStarted,
        CommandStarted,
        OutputLine,
        CommandExited,
        RunFinished,
        RunMissed,
        Heartbeat,
        OutputLines
      )
    )
  }),
  Schema.TaggedStruct("RecordBatch", { records: Schema.Array(AgentRecord) }),
  {
    strict: true,
    decode: (wire) => {
      const records: Array<unknown> = []
      for (const r of wire.records) {
        if (r._tag === "OutputLines") expandLines(r, records)
        else records.push(r)
      }
      return { _tag: "RecordBatch" as const, records: records as Array<AgentRecord> }
    },
    // Without transformations inside, a record's encoded form is its value (brands aside).
    encode: (batch) => ({
      _tag: "RecordBatch" as const,
      records: compactLines(batch.records as ReadonlyArray<AgentRecord>)
    })
  }
)

/**
 * A `RecordBatch`'s wire value straight from records in their encoded form (as bartoc's outbox
 * stores them): the same value `RecordBatch` encodes to, without decoding the records first.
 */
export const recordBatchWire = (
  records: ReadonlyArray<typeof AgentRecord.Encoded>
): typeof RecordBatch.Encoded => ({
  _tag: "RecordBatch",
  // The encoded form of a record is its value, brands aside (see RecordBatch.encode).
  records: compactLines(records as ReadonlyArray<AgentRecord>) as typeof RecordBatch.Encoded["records"]
})

/** The agent's answer to RunNow / Cancel when it cannot do what was asked. */
export const CommandRejected = Schema.TaggedStruct("CommandRejected", {
  requestId: Schema.String,
  reason: Schema.String
})

export const AgentMessage = Schema.Union(AgentHello, AgentInfo, Ping, Pong, RecordBatch, CommandRejected)
export type AgentMessage = typeof AgentMessage.Type

// ---------------------------------------------------------------------------------------------
// Worker link: bartos -> bartoc
// ---------------------------------------------------------------------------------------------

export const ServerHello = Schema.TaggedStruct("ServerHello", {
  protocol: Schema.Int,
  serverVersion: Schema.String,
  capabilities: Schema.Array(Schema.String),
  /** Fresh per connection. */
  sessionId: Schema.String,
  /** Highest sequence bartos has stored for this agent's outboxId (`agent_offsets`), or -1. */
  ackedUpTo: Schema.Int
})

export const ScheduleTable = Schema.TaggedStruct("ScheduleTable", {
  /** Content hash of the table; equal tables have equal versions. */
  version: Schema.String,
  schedules: Schema.Array(ScheduleSpec)
})

/** Every record with `seq <= upTo` is durably stored by bartos; the agent may delete them. */
export const Ack = Schema.TaggedStruct("Ack", { upTo: Schema.Int })

export const RunNow = Schema.TaggedStruct("RunNow", {
  requestId: Schema.String,
  schedule: ShortText,
  /** Minted by bartos so the CLI can print it before the agent starts the run. */
  runId: RunId
})

export const CancelRun = Schema.TaggedStruct("CancelRun", {
  requestId: Schema.String,
  runId: RunId
})

/** Reference `Cleanup`: the agent may compact its local state. */
export const AgentCleanup = Schema.TaggedStruct("AgentCleanup", { before: Micros })

/** Protocol-level complaint about a frame the peer sent (D6). Both directions. */
export const ProtocolError = Schema.TaggedStruct("ProtocolError", {
  code: Schema.Literal(
    "frame_too_large",
    "undecodable",
    "unknown_tag",
    "bad_envelope",
    "protocol_version",
    "unexpected"
  ),
  message: Schema.String
})
export type ProtocolError = typeof ProtocolError.Type

export const ServerMessage = Schema.Union(
  ServerHello,
  ScheduleTable,
  Ack,
  Ping,
  Pong,
  RunNow,
  CancelRun,
  AgentCleanup,
  ProtocolError
)
export type ServerMessage = typeof ServerMessage.Type

/** Agent -> server also may carry a ProtocolError. */
export const AgentToServer = Schema.Union(AgentMessage, ProtocolError)
export type AgentToServer = typeof AgentToServer.Type

// ---------------------------------------------------------------------------------------------
// CLI link: barto-cli <-> bartos (D10). Every request carries an `id` echoed by its response.
// ---------------------------------------------------------------------------------------------

export const CliHello = Schema.TaggedStruct("CliHello", {
  protocol: Schema.Int,
  cliVersion: Schema.String,
  /** The admin key, when the user configured one; checked with a constant-time compare. */
  adminKey: Schema.optional(Schema.String)
})

export const UpdateKind = Schema.Literal("garuda", "pacman", "cachyos", "apt")
export type UpdateKind = typeof UpdateKind.Type

const Req = <Tag extends string, F extends Schema.Struct.Fields>(tag: Tag, fields: F) =>
  Schema.TaggedStruct(tag, { id: Schema.Int, ...fields })

export const InfoRequest = Req("InfoRequest", {})
export const ClientsRequest = Req("ClientsRequest", {})
export const ListCommandsRequest = Req("ListCommandsRequest", { agent: Schema.String })
/**
 * The window of `list`, `cmd` and `failed` (each field optional; none = everything, as before):
 * lines (failed commands: their end) at or after `since` and before `until`, and of those the
 * newest `limit` (lines; failed commands).
 */
const window = {
  since: Schema.optional(Micros),
  until: Schema.optional(Micros),
  limit: Schema.optional(Schema.Int)
}
export const ListRequest = Req("ListRequest", { agent: Schema.String, cmd: Schema.String, ...window })
export const FailedRequest = Req("FailedRequest", { ...window })
export const CmdRequest = Req("CmdRequest", { cmd: Schema.String, ...window })
export const UpdatesRequest = Req("UpdatesRequest", { agent: Schema.String, kind: UpdateKind })
export const QueryRequest = Req("QueryRequest", { sql: Schema.String })
export const CleanupRequest = Req("CleanupRequest", {
  /** Delete everything strictly before this instant; absent = bartos' local midnight today. */
  before: Schema.optional(Micros),
  dryRun: Schema.Boolean
})
export const RunsRequest = Req("RunsRequest", {
  /** Runs whose id starts or ends with this (a prefix, or the short form tables show; `Ids.isRunIdInput`). */
  runId: Schema.optional(Schema.String),
  agent: Schema.optional(Schema.String),
  schedule: Schema.optional(Schema.String),
  state: Schema.optional(RunState),
  since: Schema.optional(Micros),
  limit: Schema.Int
})
/**
 * `follow`: keep streaming until the run ends. With agent+schedule: the latest (or next) run.
 * `continuous` (with `follow`, no run id): never end — follow run after run of the schedule, of
 * every schedule of `agent` (no schedule), or of the whole fleet (neither), like `journalctl -f`.
 */
export const TailRequest = Req("TailRequest", {
  runId: Schema.optional(RunId),
  agent: Schema.optional(Schema.String),
  schedule: Schema.optional(Schema.String),
  follow: Schema.Boolean,
  continuous: Schema.optional(Schema.Boolean)
})
export const RunNowRequest = Req("RunNowRequest", { agent: Schema.String, schedule: Schema.String })
export const CancelRequest = Req("CancelRequest", { runId: RunId })
export const PauseRequest = Req("PauseRequest", { agent: Schema.String, schedule: Schema.String })
export const ResumeRequest = Req("ResumeRequest", { agent: Schema.String, schedule: Schema.String })
export const SchedulesRequest = Req("SchedulesRequest", { agent: Schema.optional(Schema.String) })
/** Open incidents and the newest `limit` deliveries (`barto-cli alerts`). */
export const AlertsRequest = Req("AlertsRequest", { limit: Schema.Int })
/** Queues a test notification to `[notify.<channel>]` (`barto-cli notify test`; admin). */
export const NotifyTestRequest = Req("NotifyTestRequest", { channel: Schema.String })
/** The fleet at a glance (`barto-cli status`). */
export const StatusRequest = Req("StatusRequest", {})

export const CliRequest = Schema.Union(
  InfoRequest,
  ClientsRequest,
  ListCommandsRequest,
  ListRequest,
  FailedRequest,
  CmdRequest,
  UpdatesRequest,
  QueryRequest,
  CleanupRequest,
  RunsRequest,
  TailRequest,
  RunNowRequest,
  CancelRequest,
  PauseRequest,
  ResumeRequest,
  SchedulesRequest,
  AlertsRequest,
  NotifyTestRequest,
  StatusRequest
)
export type CliRequest = typeof CliRequest.Type

export const CliToServer = Schema.Union(CliHello, CliRequest, Ping)
export type CliToServer = typeof CliToServer.Type

// --- result rows -------------------------------------------------------------------------------

/** Connections refused because another live agent instance held the name (issue 12 §2). */
export const DuplicateAttempts = Schema.Struct({
  count: Schema.Int,
  lastIp: Schema.String,
  lastAt: Micros
})
export type DuplicateAttempts = typeof DuplicateAttempts.Type

export class ClientRow extends Schema.Class<ClientRow>("ClientRow")({
  name: Schema.String,
  ip: Schema.String,
  sessionId: Schema.String,
  connectedAt: Micros,
  info: Schema.NullOr(ClientInfo),
  /** Its `missed_tick` and `catch_up_limit` (`AgentHello`); absent when it did not report them (or from an older bartos). */
  missedTick: Schema.optional(MissedTick),
  catchUpLimit: Schema.optional(Schema.Int),
  /** Other instances refused under this name since bartos started; absent when none (or from an older bartos). */
  refused: Schema.optional(DuplicateAttempts)
}) {}

/** One output line with the state of the run it belongs to (fixes reference `list` quirk). */
export class LineRow extends Schema.Class<LineRow>("LineRow")({
  runId: RunId,
  agent: Schema.String,
  schedule: Schema.String,
  cmdUuid: Schema.String,
  lineSeq: Schema.Int,
  stream: Stream,
  ts: Micros,
  data: Schema.String,
  continuation: Schema.Boolean,
  exitCode: Schema.NullOr(Schema.Int),
  runState: RunState
}) {}

/** The last heartbeat of a run (issue 14, `Heartbeat` record). */
export const RunHeartbeat = Schema.Struct({
  at: Micros,
  progress: Schema.NullOr(Schema.String),
  status: Schema.NullOr(Schema.String),
  message: Schema.NullOr(Schema.String)
})
export type RunHeartbeat = typeof RunHeartbeat.Type

export class RunRow extends Schema.Class<RunRow>("RunRow")({
  runId: RunId,
  agent: Schema.String,
  schedule: Schema.String,
  trigger: Trigger,
  state: RunState,
  scheduledAt: Micros,
  startedAt: Schema.NullOr(Micros),
  finishedAt: Schema.NullOr(Micros),
  /**
   * The exit status that decided the run: the first failing command's (non-zero code or signal),
   * else the last command's. Null when no command exited or one was killed by a signal.
   */
  exitCode: Schema.NullOr(Schema.Int),
  signal: Schema.NullOr(Schema.String),
  /** Why it was missed or interrupted (null for the other states). */
  reason: Schema.NullOr(Schema.String),
  /** A missed range: its last occurrence (`scheduledAt` is its first); null for one occurrence. */
  scheduledUntil: Schema.NullOr(Micros),
  /** How many occurrences of the calendar this row accounts for: 1, or a missed range's count. */
  occurrences: Schema.Int,
  /** The job's last heartbeat while it ran; absent when it never beat (or from an older bartos). */
  heartbeat: Schema.optionalWith(RunHeartbeat, { exact: true })
}) {}

/** A failed command (exit code != 0, signal, timeout) with its output lines. */
export class FailedRow extends Schema.Class<FailedRow>("FailedRow")({
  runId: RunId,
  agent: Schema.String,
  schedule: Schema.String,
  cmdUuid: Schema.String,
  command: Schema.String,
  state: RunState,
  exitCode: Schema.NullOr(Schema.Int),
  signal: Schema.NullOr(Schema.String),
  finishedAt: Schema.NullOr(Micros),
  lines: Schema.Array(Schema.String)
}) {}

export class ScheduleRow extends Schema.Class<ScheduleRow>("ScheduleRow")({
  agent: Schema.String,
  name: Schema.String,
  onCalendar: Schema.String,
  calendar: Schema.String,
  cmds: Schema.Array(Schema.String),
  paused: Schema.Boolean,
  connected: Schema.Boolean,
  /** Next fire time after now, null if the expression never fires again. */
  nextAt: Schema.NullOr(Micros),
  /** The effective settings (absent from an older bartos): timeout in seconds (null = none). */
  timeoutSecs: Schema.optional(Schema.NullOr(Schema.Finite)),
  overlap: Schema.optional(Overlap),
  onFailure: Schema.optional(OnFailure),
  /** The zone the calendar is evaluated in (the schedule's `timezone`, else bartos' own). */
  timezone: Schema.optional(Schema.String),
  /**
   * The agent's `missed_tick` and `catch_up_limit` as it last reported them (`AgentHello`): while
   * connected, else from its last session; null when unknown (never connected, or a bartoc before
   * the report). Absent from an older bartos.
   */
  missedTick: Schema.optional(Schema.NullOr(MissedTick)),
  catchUpLimit: Schema.optional(Schema.NullOr(Schema.Int)),
  /** The newest run (by scheduled time, a missed one included); null: it never ran. */
  lastRun: Schema.optional(Schema.NullOr(RunRow))
}) {}

export const GarudaUpdate = Schema.Struct({
  channel: Schema.String,
  package: Schema.String,
  oldVersion: Schema.String,
  newVersion: Schema.String,
  sizeChange: Schema.String,
  downloadSize: Schema.String
})
export const PacmanSummary = Schema.Struct({
  updateCount: Schema.Int,
  packages: Schema.Array(Schema.String),
  installSize: Schema.Finite,
  netSize: Schema.Finite,
  downloadSize: Schema.Finite
})
export const UpdatesResult = Schema.Union(
  Schema.TaggedStruct("Garuda", { updates: Schema.Array(GarudaUpdate) }),
  Schema.TaggedStruct("Pacman", { summary: PacmanSummary }),
  Schema.TaggedStruct("Cachyos", { summary: PacmanSummary }),
  Schema.TaggedStruct("Apt", { packages: Schema.Array(Schema.String) })
)
export type UpdatesResult = typeof UpdatesResult.Type

// --- responses -------------------------------------------------------------------------------

const Res = <Tag extends string, F extends Schema.Struct.Fields>(tag: Tag, fields: F) =>
  Schema.TaggedStruct(tag, { id: Schema.Int, ...fields })

/** The last load of bartos' configuration; its start is the first (`bartos_config_last_reload_*` on /metrics). */
export const ConfigReload = Schema.Struct({
  at: Micros,
  result: Schema.Literal("loaded", "applied", "unchanged", "rejected"),
  /** A rejected reload's problems, one per line (file:line:column: key: reason); null otherwise. */
  error: Schema.NullOr(Schema.String),
  /** The last accepted load: the schedule table in use comes from it. */
  lastSuccessAt: Micros
})
export type ConfigReload = typeof ConfigReload.Type

export const InfoResponse = Res("InfoResponse", {
  version: Schema.String,
  protocol: Schema.Int,
  startedAt: Micros,
  uptimeSecs: Schema.Finite,
  database: Schema.Literal("mariadb", "sqlite"),
  /** Where the data lives, without secrets (sqlite path, or mariadb host:port/db). */
  databaseLocation: Schema.String,
  listeners: Schema.Array(Schema.String),
  connectedAgents: Schema.Int,
  node: Schema.String,
  platform: Schema.String,
  configReload: ConfigReload
})
/**
 * Answers that can be large (`list`, `cmd`, `failed`, `runs`, `query`) come in parts: every part
 * but the last has `more: true`, all carry the request's id, and the receiver appends them in
 * order (`appendPart`). `truncated` on the last part: bartos stopped at its answer cap.
 */
const paged = {
  more: Schema.optional(Schema.Boolean),
  truncated: Schema.optional(Schema.Boolean)
}

export const ClientsResponse = Res("ClientsResponse", { clients: Schema.Array(ClientRow) })
export const ListCommandsResponse = Res("ListCommandsResponse", { commands: Schema.Array(Schema.String) })
export const LinesResponse = Res("LinesResponse", { lines: Schema.Array(LineRow), ...paged })
/** A command with many lines may span parts: consecutive rows of the same (runId, cmdUuid). */
export const FailedResponse = Res("FailedResponse", { failed: Schema.Array(FailedRow), ...paged })
/** An agent's lines may span parts: consecutive groups of the same agent. */
export const CmdResponse = Res("CmdResponse", {
  byAgent: Schema.Array(Schema.Struct({ agent: Schema.String, lines: Schema.Array(LineRow) })),
  ...paged
})
export const UpdatesResponse = Res("UpdatesResponse", { result: UpdatesResult })
export const QueryResponse = Res("QueryResponse", {
  /** In the first part (later parts repeat it). */
  columns: Schema.Array(Schema.String),
  /** Every cell rendered as text; SQL NULL is null. */
  rows: Schema.Array(Schema.Array(Schema.NullOr(Schema.String))),
  /** The row cap or the byte cap cut the result (meaningful on the last part). */
  truncated: Schema.Boolean,
  more: Schema.optional(Schema.Boolean)
})
export const CleanupResponse = Res("CleanupResponse", {
  before: Micros,
  dryRun: Schema.Boolean,
  runs: Schema.Int,
  commands: Schema.Int,
  lines: Schema.Int,
  agentsSignalled: Schema.Int
})
export const RunsResponse = Res("RunsResponse", { runs: Schema.Array(RunRow), more: Schema.optional(Schema.Boolean) })
/** A continuous tail has no run of this schedule to show: the next one is due at `nextAt`. */
export const TailWaiting = Schema.Struct({
  agent: Schema.String,
  schedule: Schema.String,
  /** Null when the calendar never fires again. */
  nextAt: Schema.NullOr(Micros),
  paused: Schema.Boolean
})
export type TailWaiting = typeof TailWaiting.Type

/** A heartbeat of the run being tailed (issue 14): whose, and the beat as `RunHeartbeat`. */
export const TailBeat = Schema.Struct({
  runId: RunId,
  agent: Schema.String,
  schedule: Schema.String,
  ...RunHeartbeat.fields
})
export type TailBeat = typeof TailBeat.Type

/**
 * One chunk of a tail; `done` with the final run row when the run is over. A continuous tail is
 * never `done`: `end` marks the chunk whose `run` just finished, `waiting` what it waits for next.
 */
export const TailChunk = Res("TailChunk", {
  run: Schema.NullOr(RunRow),
  lines: Schema.Array(LineRow),
  done: Schema.Boolean,
  end: Schema.optional(Schema.Boolean),
  waiting: Schema.optional(TailWaiting),
  /** A heartbeat arrived (absent from older servers; an older CLI ignores it). */
  beat: Schema.optionalWith(TailBeat, { exact: true })
})
export const RunNowResponse = Res("RunNowResponse", { runId: RunId, agent: Schema.String, schedule: Schema.String })
export const CancelResponse = Res("CancelResponse", { runId: RunId, delivered: Schema.Boolean })
export const PauseResponse = Res("PauseResponse", {
  agent: Schema.String,
  schedule: Schema.String,
  paused: Schema.Boolean
})
export const SchedulesResponse = Res("SchedulesResponse", { schedules: Schema.Array(ScheduleRow) })

/** An agent of the fleet: configured (it has schedules), ever seen, or connected now. */
export const AgentStatus = Schema.Struct({
  name: Schema.String,
  online: Schema.Boolean,
  /** Connected since (online), else null. */
  connectedAt: Schema.NullOr(Micros),
  /** The last time bartos heard from it (null: never connected). */
  lastSeenAt: Schema.NullOr(Micros),
  agentVersion: Schema.NullOr(Schema.String),
  schedules: Schema.Int
})
export type AgentStatus = typeof AgentStatus.Type

export const StatusResponse = Res("StatusResponse", {
  agents: Schema.Array(AgentStatus),
  /** Runs in progress, newest first (at most 100). */
  running: Schema.Array(RunRow),
  /** Runs that ended failed, timed_out or lost in the last 24 hours: how many, and the newest few. */
  failures24h: Schema.Int,
  recentFailures: Schema.Array(RunRow),
  schedules: Schema.Array(ScheduleRow),
  configReload: ConfigReload
})
export const CliError = Res("CliError", {
  code: Schema.Literal(
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "not_connected",
    "refused",
    "timeout",
    "internal"
  ),
  message: Schema.String
})

export const ServerHelloCli = Schema.TaggedStruct("ServerHelloCli", {
  protocol: Schema.Int,
  serverVersion: Schema.String,
  admin: Schema.Boolean,
  /**
   * bartos' `[limits] query_timeout_ms`: the CLI waits longer than this for an answer, so the
   * user hears bartos' own "exceeded the time limit" (absent from older servers).
   */
  statementTimeoutMs: Schema.optionalWith(Schema.Int, { exact: true })
})

export class IncidentView extends Schema.Class<IncidentView>("IncidentView")({
  incidentId: Schema.String,
  agent: Schema.String,
  /** null: the agent itself (agent_down). */
  schedule: Schema.NullOr(Schema.String),
  firstKind: Schema.String,
  openedAt: Micros,
  badEvents: Schema.Int,
  notifiedAt: Schema.NullOr(Micros),
  reminders: Schema.Int
}) {}

export class DeliveryView extends Schema.Class<DeliveryView>("DeliveryView")({
  deliveryId: Schema.String,
  eventId: Schema.String,
  /** The event's kind ("test" for `notify test`). */
  kind: Schema.String,
  agent: Schema.NullOr(Schema.String),
  schedule: Schema.NullOr(Schema.String),
  channel: Schema.String,
  state: Schema.Literal("pending", "delivered", "failed"),
  attempts: Schema.Int,
  createdAt: Micros,
  updatedAt: Micros,
  lastError: Schema.NullOr(Schema.String)
}) {}

export const AlertsResponse = Res("AlertsResponse", {
  incidents: Schema.Array(IncidentView),
  deliveries: Schema.Array(DeliveryView)
})
export const NotifyTestResponse = Res("NotifyTestResponse", { eventId: Schema.String, deliveryId: Schema.String })

export const CliResponse = Schema.Union(
  InfoResponse,
  ClientsResponse,
  ListCommandsResponse,
  LinesResponse,
  FailedResponse,
  CmdResponse,
  UpdatesResponse,
  QueryResponse,
  CleanupResponse,
  RunsResponse,
  TailChunk,
  RunNowResponse,
  CancelResponse,
  PauseResponse,
  SchedulesResponse,
  AlertsResponse,
  NotifyTestResponse,
  StatusResponse,
  CliError
)
export type CliResponse = typeof CliResponse.Type

export const ServerToCli = Schema.Union(ServerHelloCli, CliResponse, Pong, ProtocolError)
export type ServerToCli = typeof ServerToCli.Type

// --- answers in parts ----------------------------------------------------------------------------

/** A response that may come in parts (`more: true` on all but the last). */
export type PagedResponse = Extract<
  CliResponse,
  { readonly _tag: "LinesResponse" | "CmdResponse" | "FailedResponse" | "RunsResponse" | "QueryResponse" }
>

export const isPaged = (r: CliResponse): r is PagedResponse =>
  r._tag === "LinesResponse" || r._tag === "CmdResponse" || r._tag === "FailedResponse" ||
  r._tag === "RunsResponse" || r._tag === "QueryResponse"

/** Joins the last element of `a` and the first of `b` when `same` says they are one item split in two. */
const joinEdge = <A>(
  a: ReadonlyArray<A>,
  b: ReadonlyArray<A>,
  same: (x: A, y: A) => boolean,
  join: (x: A, y: A) => A
): Array<A> => {
  const last = a[a.length - 1]
  const first = b[0]
  if (last === undefined || first === undefined || !same(last, first)) return [...a, ...b]
  return [...a.slice(0, -1), join(last, first), ...b.slice(1)]
}

/**
 * `acc` followed by the next part of the same answer: the whole answer once the last part is in
 * (its `more` and `truncated` are the last part's). A part of another kind returns `acc` unchanged.
 */
export const appendPart = (acc: PagedResponse, part: PagedResponse): PagedResponse => {
  if (acc._tag === "LinesResponse" && part._tag === "LinesResponse") {
    return { ...acc, more: part.more, truncated: part.truncated, lines: [...acc.lines, ...part.lines] }
  }
  if (acc._tag === "RunsResponse" && part._tag === "RunsResponse") {
    return { ...acc, more: part.more, runs: [...acc.runs, ...part.runs] }
  }
  if (acc._tag === "QueryResponse" && part._tag === "QueryResponse") {
    return { ...acc, more: part.more, truncated: part.truncated, rows: [...acc.rows, ...part.rows] }
  }
  if (acc._tag === "CmdResponse" && part._tag === "CmdResponse") {
    const byAgent = joinEdge(acc.byAgent, part.byAgent, (x, y) => x.agent === y.agent, (x, y) => ({
      agent: x.agent,
      lines: [...x.lines, ...y.lines]
    }))
    return { ...acc, more: part.more, truncated: part.truncated, byAgent }
  }
  if (acc._tag === "FailedResponse" && part._tag === "FailedResponse") {
    const failed = joinEdge(
      acc.failed,
      part.failed,
      (x, y) => x.runId === y.runId && x.cmdUuid === y.cmdUuid,
      (x, y) => new FailedRow({ ...x, lines: [...x.lines, ...y.lines] }, true)
    )
    return { ...acc, more: part.more, truncated: part.truncated, failed }
  }
  return acc
}
