/**
 * Rows read back from the store's tables, decoded through Schema into the domain's row classes.
 *
 * Each row schema is a `Schema.transform` from the row as the driver returns it (column names,
 * BIGINT as a number on SQLite and as a string on MariaDB, which mysql2 gives as strings with
 * `bigNumberStrings`, style.md §5.3; booleans as 0/1) to the row class, so every value is checked
 * on the way out of the database (a `state` outside `RunState`, a fractional instant, a NULL
 * where none belongs all fail as a `ParseError` that the caller turns into a `StoreError`).
 */
import * as Decoder from "@barto/domain/Decoder"
import { FailedRow, LineRow, RunRow, RunState, Stream, Trigger } from "@barto/domain/Messages"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as SchemaAST from "effect/SchemaAST"
import type { Row } from "./common.js"

const toNumber = (v: number | string, ast: SchemaAST.AST) => {
  if (typeof v === "number") return ParseResult.succeed(v)
  const n = v.trim() === "" ? NaN : Number(v)
  return Number.isNaN(n) ? ParseResult.fail(new ParseResult.Type(ast, v, "not a number")) : ParseResult.succeed(n)
}

/** A numeric column: a number, or the decimal string mysql2 returns for BIGINT and COUNT(*). */
const DbNumber = Schema.transformOrFail(Schema.Union(Schema.Number, Schema.String), Schema.Number, {
  strict: true,
  decode: (v, _, ast) => toNumber(v, ast),
  encode: ParseResult.succeed
})
/**
 * The same, NULL allowed: one transformation rather than `NullOr(DbNumber)`, so that the compiled
 * parser covers it (it compiles a union only of plain values or of tagged structs).
 */
const DbNullableNumber = Schema.transformOrFail(
  Schema.Union(Schema.Number, Schema.String, Schema.Null),
  Schema.NullOr(Schema.Number),
  {
    strict: true,
    decode: (v, _, ast) => (v === null ? ParseResult.succeed(null) : toNumber(v, ast)),
    encode: ParseResult.succeed
  }
)
/** A 0/1 column. */
const DbBoolean = Schema.transform(DbNumber, Schema.Boolean, {
  strict: true,
  decode: (n) => n !== 0,
  encode: (b) => (b ? 1 : 0)
})

/**
 * A row decoder for a row class: the DB row is decoded to the class's fields by the compiled
 * parser (`Decoder.make`; a class itself is not compiled) with `transformation`, then the instance
 * is built without checking its fields again, exactly as the class's own decoding does after its
 * fields have decoded. `full` is the same transformation to the class, the schema of record.
 */
const classRows = <Self, E, Db extends Schema.Schema.AnyNoContext>(
  db: Db,
  cls: Schema.Schema<Self, E> & {
    readonly fields: Schema.Struct.Fields
    new(props: any, disableValidation?: boolean): Self
  },
  transformation: {
    readonly decode: (row: Schema.Schema.Type<Db>) => E
    readonly encode: (value: E) => Schema.Schema.Type<Db>
  }
) => {
  // The class's encoded form and its fields' encoded form are the same type (`E`).
  const full: Schema.Schema<Self, Schema.Schema.Encoded<Db>> = Schema.transform(db, cls, {
    strict: false,
    ...transformation
  }) as any
  const fields: Schema.Schema<unknown, Schema.Schema.Encoded<Db>> = Schema.transform(db, Schema.Struct(cls.fields), {
    strict: false,
    decode: transformation.decode as (row: Schema.Schema.Type<Db>) => any,
    encode: transformation.encode as (value: any) => Schema.Schema.Type<Db>
  }) as any
  const decodeFields = Decoder.make(fields)
  const decode = (row: unknown): Either.Either<Self, ParseResult.ParseError> =>
    Either.map(decodeFields(row), (props) => new cls(props, true))
  return { full, fields, decode }
}

export const RUN_COLUMNS = "r.run_id, r.agent, r.schedule, r.run_trigger, r.state, r.scheduled_at, r.started_at, r.finished_at, " +
  "r.exit_code, r.exit_signal, r.reason, r.scheduled_until, r.occurrences"

/** A `runs` row as `RUN_COLUMNS` selects it. */
const runRows = classRows(
  Schema.Struct({
    run_id: Schema.String,
    agent: Schema.String,
    schedule: Schema.String,
    run_trigger: Trigger,
    state: RunState,
    scheduled_at: DbNumber,
    started_at: DbNullableNumber,
    finished_at: DbNullableNumber,
    exit_code: DbNullableNumber,
    exit_signal: Schema.NullOr(Schema.String),
    reason: Schema.NullOr(Schema.String),
    scheduled_until: DbNullableNumber,
    // NULL in rows written before migration 18 gave every row its count.
    occurrences: DbNullableNumber
  }),
  RunRow,
  {
    decode: (r) => ({
      runId: r.run_id,
      agent: r.agent,
      schedule: r.schedule,
      trigger: r.run_trigger,
      state: r.state,
      scheduledAt: r.scheduled_at,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      exitCode: r.exit_code,
      signal: r.exit_signal,
      reason: r.reason,
      scheduledUntil: r.scheduled_until,
      occurrences: r.occurrences ?? 1
    }),
    encode: (r) => ({
      run_id: r.runId,
      agent: r.agent,
      schedule: r.schedule,
      run_trigger: r.trigger,
      state: r.state,
      scheduled_at: r.scheduledAt,
      started_at: r.startedAt,
      finished_at: r.finishedAt,
      exit_code: r.exitCode,
      exit_signal: r.signal,
      reason: r.reason,
      scheduled_until: r.scheduledUntil,
      occurrences: r.occurrences
    })
  }
)

/** `RunRow` from its DB row: the schema of record (`decodeRunRow` decodes the same way, faster). */
export const RunRowFromDb = runRows.full
export const decodeRunRow = runRows.decode

// A line carries its run's state and exit code (what `list`/`cmd` head each run with), not the
// exit code of the command that printed it: a run whose printing command exited 0 and whose
// silent last command exited 3 is "failed (exit 3)", as `runs` says.
export const LINE_SELECT = `SELECT ol.run_id, r.agent, r.schedule, ol.cmd_uuid, ol.line_seq, ol.stream, ol.ts, ol.data,
  ol.continuation, r.exit_code, r.state
FROM output_lines ol
JOIN runs r ON r.run_id = ol.run_id`

/** An `output_lines` row joined with its run, as `LINE_SELECT` selects it. */
const lineRows = classRows(
  Schema.Struct({
    run_id: Schema.String,
    agent: Schema.String,
    schedule: Schema.String,
    cmd_uuid: Schema.String,
    line_seq: DbNumber,
    stream: Stream,
    ts: DbNumber,
    data: Schema.String,
    continuation: DbBoolean,
    exit_code: DbNullableNumber,
    state: RunState
  }),
  LineRow,
  {
    decode: (r) => ({
      runId: r.run_id,
      agent: r.agent,
      schedule: r.schedule,
      cmdUuid: r.cmd_uuid,
      lineSeq: r.line_seq,
      stream: r.stream,
      ts: r.ts,
      data: r.data,
      continuation: r.continuation,
      exitCode: r.exit_code,
      runState: r.state
    }),
    encode: (l) => ({
      run_id: l.runId,
      agent: l.agent,
      schedule: l.schedule,
      cmd_uuid: l.cmdUuid,
      line_seq: l.lineSeq,
      stream: l.stream,
      ts: l.ts,
      data: l.data,
      continuation: l.continuation,
      exit_code: l.exitCode,
      state: l.runState
    })
  }
)

/** `LineRow` from its DB row: the schema of record (`decodeLineRow` decodes the same way, faster). */
export const LineRowFromDb = lineRows.full
export const decodeLineRow = lineRows.decode

/** A row of the `failed` listing (a failed command, or a run that failed without one) and its lines. */
const failedRows = classRows(
  Schema.Struct({
    run_id: Schema.String,
    agent: Schema.String,
    schedule: Schema.String,
    cmd_uuid: Schema.String,
    command: Schema.String,
    state: RunState,
    exit_code: DbNullableNumber,
    exit_signal: Schema.NullOr(Schema.String),
    fin: DbNullableNumber,
    lines: Schema.Array(Schema.String)
  }),
  FailedRow,
  {
    decode: (r) => ({
      runId: r.run_id,
      agent: r.agent,
      schedule: r.schedule,
      cmdUuid: r.cmd_uuid,
      command: r.command,
      state: r.state,
      exitCode: r.exit_code,
      signal: r.exit_signal,
      finishedAt: r.fin,
      lines: r.lines
    }),
    encode: (f) => ({
      run_id: f.runId,
      agent: f.agent,
      schedule: f.schedule,
      cmd_uuid: f.cmdUuid,
      command: f.command,
      state: f.state,
      exit_code: f.exitCode,
      exit_signal: f.signal,
      fin: f.finishedAt,
      lines: f.lines
    })
  }
)

/** `FailedRow` from its DB row: the schema of record (`decodeFailedRow` decodes the same way, faster). */
export const FailedRowFromDb = failedRows.full
export const decodeFailedRow = failedRows.decode

/** Decodes every row of a result, failing on the first that does not decode. */
export const decodeRows = <A>(decode: (row: unknown) => Either.Either<A, ParseResult.ParseError>) =>
(rows: ReadonlyArray<Row>): Effect.Effect<Array<A>, ParseResult.ParseError> => {
  const out: Array<A> = new Array(rows.length)
  for (let i = 0; i < rows.length; i++) {
    const result = decode(rows[i])
    if (Either.isLeft(result)) return Effect.fail(result.left)
    out[i] = result.right
  }
  return Effect.succeed(out)
}

/** A single row (or none). */
export const decodeFirst = <A>(decode: (row: unknown) => Either.Either<A, ParseResult.ParseError>) =>
(rows: ReadonlyArray<Row>): Effect.Effect<Option.Option<A>, ParseResult.ParseError> =>
  rows.length === 0 ? Effect.succeed(Option.none()) : Effect.map(Either.match(decode(rows[0]), {
    onLeft: Effect.fail,
    onRight: Effect.succeed
  }), Option.some)

/** The compiled halves of the row decoders (tests pin that they compile). */
export const compiledRowSchemas = { run: runRows.fields, line: lineRows.fields, failed: failedRows.fields } as const
