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
import { FailedRow, LineRow, RunHeartbeat, RunRow, RunState, Stream, Trigger } from "@barto/domain/Messages"
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

/** A run's occurrence count; NULL in rows written before migration 18 gave every row its count. */
const DbOccurrences = Schema.transformOrFail(Schema.Union(Schema.Number, Schema.String, Schema.Null), Schema.Number, {
  strict: true,
  decode: (v, _, ast) => (v === null ? ParseResult.succeed(1) : toNumber(v, ast)),
  encode: ParseResult.succeed
})

const decodeHeartbeatJson = Schema.decodeUnknownEither(Schema.parseJson(RunHeartbeat))
/**
 * `runs.heartbeat` (issue 14): the run's last beat as JSON, written by ingest; NULL (never beat,
 * or a row from before migration 28) is an absent field. The JSON is checked here; its type is
 * `Unknown` so that the compiled parser covers the column (the row class checks the field again
 * on the schema-of-record path).
 */
const DbHeartbeat = Schema.transformOrFail(Schema.Union(Schema.String, Schema.Null), Schema.Unknown, {
  strict: true,
  decode: (v, _, ast) =>
    v === null ? ParseResult.succeed(undefined) : Either.mapLeft(
      decodeHeartbeatJson(v),
      (e) => new ParseResult.Type(ast, v, `not a heartbeat: ${e.message}`)
    ),
  encode: (v) => ParseResult.succeed(v === undefined ? null : JSON.stringify(v))
})

/**
 * A row decoder for a row class, from the DB row schema and the column of each field: the DB row
 * is decoded to the class's fields by the compiled parser (`Decoder.make`; a class itself is not
 * compiled), then the instance is built without checking its fields again, exactly as the
 * class's own decoding does after its fields have decoded. `full` is the same transformation to
 * the class, the schema of record.
 */
const classRows = <Self, E, Db extends Schema.Schema.AnyNoContext>(
  db: Db,
  cls: Schema.Schema<Self, E> & {
    readonly fields: Schema.Struct.Fields
    new(props: any, disableValidation?: boolean): Self
  },
  columns: { readonly [K in keyof E]-?: keyof Schema.Schema.Type<Db> & string }
) => {
  const pairs = Object.entries(columns) as Array<[string, string]>
  const decodeRow = (row: any): any => {
    const out: Record<string, unknown> = {}
    for (const [field, column] of pairs) if (row[column] !== undefined) out[field] = row[column]
    return out
  }
  const encodeRow = (value: any): any => {
    const out: Record<string, unknown> = {}
    for (const [field, column] of pairs) if (value[field] !== undefined) out[column] = value[field]
    return out
  }
  // The class's encoded form and its fields' encoded form are the same type (`E`).
  const full: Schema.Schema<Self, Schema.Schema.Encoded<Db>> = Schema.transform(db, cls, {
    strict: false,
    decode: decodeRow,
    encode: encodeRow
  }) as any
  const fields: Schema.Schema<unknown, Schema.Schema.Encoded<Db>> = Schema.transform(db, Schema.Struct(cls.fields), {
    strict: false,
    decode: decodeRow,
    encode: encodeRow
  }) as any
  const decodeFields = Decoder.make(fields)
  const decode = (row: unknown): Either.Either<Self, ParseResult.ParseError> =>
    Either.map(decodeFields(row), (props) => new cls(props, true))
  return { full, fields, decode }
}

/** The columns every row here starts with: its run, and the run's agent and schedule. */
const RUN_KEY_COLUMNS = { run_id: Schema.String, agent: Schema.String, schedule: Schema.String }
const RUN_KEY_FIELDS = { runId: "run_id", agent: "agent", schedule: "schedule" } as const

export const RUN_COLUMNS =
  "r.run_id, r.agent, r.schedule, r.run_trigger, r.state, r.scheduled_at, r.started_at, r.finished_at, " +
  "r.exit_code, r.exit_signal, r.reason, r.scheduled_until, r.occurrences, r.heartbeat"

/** A `runs` row as `RUN_COLUMNS` selects it. */
const runRows = classRows(
  Schema.Struct({
    ...RUN_KEY_COLUMNS,
    run_trigger: Trigger,
    state: RunState,
    scheduled_at: DbNumber,
    started_at: DbNullableNumber,
    finished_at: DbNullableNumber,
    exit_code: DbNullableNumber,
    exit_signal: Schema.NullOr(Schema.String),
    reason: Schema.NullOr(Schema.String),
    scheduled_until: DbNullableNumber,
    occurrences: DbOccurrences,
    heartbeat: Schema.optionalWith(DbHeartbeat, { exact: true })
  }),
  RunRow,
  {
    ...RUN_KEY_FIELDS,
    trigger: "run_trigger",
    state: "state",
    scheduledAt: "scheduled_at",
    startedAt: "started_at",
    finishedAt: "finished_at",
    exitCode: "exit_code",
    signal: "exit_signal",
    reason: "reason",
    scheduledUntil: "scheduled_until",
    occurrences: "occurrences",
    heartbeat: "heartbeat"
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
    ...RUN_KEY_COLUMNS,
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
    ...RUN_KEY_FIELDS,
    cmdUuid: "cmd_uuid",
    lineSeq: "line_seq",
    stream: "stream",
    ts: "ts",
    data: "data",
    continuation: "continuation",
    exitCode: "exit_code",
    runState: "state"
  }
)

/** `LineRow` from its DB row: the schema of record (`decodeLineRow` decodes the same way, faster). */
export const LineRowFromDb = lineRows.full
export const decodeLineRow = lineRows.decode

/** A row of the `failed` listing (a failed command, or a run that failed without one) and its lines. */
const failedRows = classRows(
  Schema.Struct({
    ...RUN_KEY_COLUMNS,
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
    ...RUN_KEY_FIELDS,
    cmdUuid: "cmd_uuid",
    command: "command",
    state: "state",
    exitCode: "exit_code",
    signal: "exit_signal",
    finishedAt: "fin",
    lines: "lines"
  }
)

/** `FailedRow` from its DB row: the schema of record (`decodeFailedRow` decodes the same way, faster). */
export const FailedRowFromDb = failedRows.full
export const decodeFailedRow = failedRows.decode

/** Decodes every row of a result, failing on the first that does not decode. */
export const decodeRows =
  <A>(decode: (row: unknown) => Either.Either<A, ParseResult.ParseError>) =>
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
export const decodeFirst =
  <A>(decode: (row: unknown) => Either.Either<A, ParseResult.ParseError>) =>
  (rows: ReadonlyArray<Row>): Effect.Effect<Option.Option<A>, ParseResult.ParseError> =>
    rows.length === 0 ? Effect.succeed(Option.none()) : Effect.map(
      Either.match(decode(rows[0]), {
        onLeft: Effect.fail,
        onRight: Effect.succeed
      }),
      Option.some
    )

/** The compiled halves of the row decoders (tests pin that they compile). */
export const compiledRowSchemas = { run: runRows.fields, line: lineRows.fields, failed: failedRows.fields } as const
