/**
 * What the store's modules share: the statement runner bound to the client (`StoreSql`), value
 * readers for columns (MariaDB may return BIGINT as strings, style.md §5.3; booleans are 0/1),
 * `IN` lists, chunking, the error mapping and the page sizes.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import type * as ParseResult from "effect/ParseResult"
import { StoreError } from "./errors.js"

export type Row = Record<string, unknown>

export const num = (v: unknown): number => (typeof v === "number" ? v : Number(v))
export const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v))
export const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))

/** VARCHAR(n) counts characters; cut by code point so no surrogate pair is split. */
export const clip = (s: string, max = 255): string => (s.length <= max ? s : Array.from(s).slice(0, max).join(""))

/** MariaDB: `affectedRows`; SQLite: `changes`. */
export const affected = (raw: unknown): number => {
  const r = raw as { affectedRows?: unknown; changes?: unknown } | null
  return num(r?.affectedRows ?? r?.changes ?? 0)
}

/** The rows a `sql` template statement changed. */
export const changes = (statement: Statement.Statement<unknown>): Effect.Effect<number, SqlError> =>
  Effect.map(statement.raw, affected)

/**
 * `IN (?, …)` lists padded to a power of two by repeating the last value: MariaDB keeps one
 * prepared statement per distinct text, and padding bounds how many a connection collects.
 */
export const inList = <A extends string | number>(
  values: ReadonlyArray<A>
): { readonly text: string; readonly params: Array<A> } => {
  let size = 1
  while (size < values.length) size *= 2
  const params = values.slice()
  while (params.length < size) params.push(values[values.length - 1])
  return { text: `(${params.map(() => "?").join(", ")})`, params }
}

/**
 * `items` cut into runs whose lengths are powers of two, largest first (300 → 256, 32, 8, 4):
 * a multi-row statement then has one of a few texts, which both drivers prepare once and reuse.
 */
export const powerChunks = <A>(items: ReadonlyArray<A>): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  let start = 0
  for (let left = items.length; left > 0;) {
    let size = 1
    while (size * 2 <= left) size *= 2
    out.push(items.slice(start, start + size))
    start += size
    left -= size
  }
  return out
}

/**
 * `items` cut into parts whose lengths come from a small fixed set, for multi-row statements whose
 * row count follows the data (a batch's output lines): up to `max` rows per part, then what is
 * left rounded down to a multiple of `step`, then the rest in powers of two below `step` (937 with
 * max 1,000 and step 32: 928, 8, 1). A line insert then has at most `max / step` + log2(`step`)
 * texts instead of one per batch size: a new text costs a prepare (1.7 ms for 1,000 rows of 8
 * values on SQLite, more than running it) and, past the driver's cache size, evicts the others.
 */
export const steppedChunks = <A>(items: ReadonlyArray<A>, max: number, step: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  let start = 0
  while (items.length - start >= max) {
    out.push(items.slice(start, start + max))
    start += max
  }
  const stepped = Math.floor((items.length - start) / step) * step
  if (stepped > 0) {
    out.push(items.slice(start, start + stepped))
    start += stepped
  }
  for (const part of powerChunks(items.slice(start))) out.push(part)
  return out
}

/**
 * `head VALUES (?, …), … tail` for `rows` rows of `columns` values, each text built once (with
 * `powerChunks`, a multi-row statement has a few texts, not one per group size).
 */
export const multiRow = (head: string, columns: number, tail: string): (rows: number) => string => {
  const texts = new Map<number, string>()
  const row = `(${Array.from({ length: columns }, () => "?").join(", ")})`
  return (rows) => {
    let text = texts.get(rows)
    if (text === undefined) {
      text = `${head} VALUES ${Array.from({ length: rows }, () => row).join(", ")} ${tail}`
      texts.set(rows, text)
    }
    return text
  }
}

/** Most rows of one `writeRows` statement on MariaDB. */
export const MAX_TEXT_ROWS = 512

/**
 * `items` written by the multi-row statement `text(rows)` (`multiRow`), `columns(item)` each:
 * - MariaDB: one statement per `MAX_TEXT_ROWS` items, whatever their count, sent unprepared
 *   (mysql2 quotes the values into the text): a prepared text per row count would be prepared
 *   again for every new count, so counts were kept to powers of two (`powerChunks`), which cut a
 *   group of 52 session rows into 3 statements, each a round trip and a socket write (issue 18).
 * - SQLite: `powerChunks` runs of prepared statements (no round trips; the prepared texts reused).
 */
export const writeRows = <A>(
  ctx: Pick<StoreSql, "sql" | "mysql">,
  text: (rows: number) => string,
  items: ReadonlyArray<A>,
  columns: (item: A) => ReadonlyArray<unknown>
): Effect.Effect<void, SqlError> =>
  ctx.mysql
    ? Effect.forEach(
      chunk(items, MAX_TEXT_ROWS),
      (part) => ctx.sql.unsafe(text(part.length), part.flatMap(columns)).unprepared,
      { discard: true }
    )
    : Effect.forEach(
      powerChunks(items),
      (part) => ctx.sql.unsafe(text(part.length), part.flatMap(columns)).raw,
      { discard: true }
    )

/**
 * `SELECT ? AS a, ? AS b UNION ALL SELECT ?, ? …`: `rows` rows of parameters as a derived table
 * (for an UPDATE joined with many rows' new values; both dialects read it).
 */
export const derivedRows = (columns: ReadonlyArray<string>, rows: number): string => {
  const first = `SELECT ${columns.map((c) => `? AS ${c}`).join(", ")}`
  const rest = ` UNION ALL SELECT ${columns.map(() => "?").join(", ")}`
  return first + rest.repeat(Math.max(0, rows - 1))
}

export const chunk = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** Runs (or failed commands) per page of `list`, `cmd` and `failed`. */
export const PAGE_RUNS = 256
/** Output lines per page: one query reads at most this many (plus what arrives meanwhile). */
export const PAGE_LINES = 500

/** One turn of the event loop (I/O included), between pages of a large read. */
export const breathe = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** Run ids per delete transaction in cleanup and retention. */
export const DELETE_CHUNK = 256
/**
 * Output lines per delete transaction in cleanup and retention (a few ms on either database),
 * with a turn of the event loop after each: what bounds how long ingest can wait for them.
 */
export const DELETE_LINES = 2000

/** What a read fails with before it becomes a `StoreError`: the driver's error, or a stored row that does not decode. */
export type ReadError = SqlError | ParseResult.ParseError

export const storeError = (what: string) => (e: ReadError | StoreError): StoreError => {
  if (e._tag === "StoreError") return e // already says what failed (a stale leader fence)
  if (e._tag === "ParseError") {
    return new StoreError({ message: `${what}: a stored row does not decode: ${e.message}`, cause: e })
  }
  const cause = e.cause as { message?: unknown } | undefined
  const detail = typeof cause?.message === "string" ? cause.message : e.message
  return new StoreError({ message: `${what}: ${detail}`, cause: e })
}

/**
 * Worth retrying: MariaDB deadlock (1213) or lock wait timeout (1205), e.g. gap locks of two
 * agents' inserts meeting in `output_lines`; SQLite busy (another process holds the file).
 */
export const isTransient = (e: SqlError): boolean => {
  const cause = e.cause as { errno?: unknown; code?: unknown } | undefined
  return cause?.errno === 1213 || cause?.errno === 1205 || cause?.code === "SQLITE_BUSY"
}

export const clipSignal = (s: string | null): string | null => (s === null ? null : clip(s, 64))

/**
 * The client and the dialect, with the statement runners every module uses: `run` for rows,
 * `exec` for the affected-row count, `count` for a `COUNT(*) AS n`.
 */
export interface StoreSql {
  readonly sql: SqlClient.SqlClient
  readonly mysql: boolean
  /** `INSERT … <ignore duplicate key>`: MariaDB has no ON CONFLICT; a no-op update ignores only duplicates (unlike INSERT IGNORE, which also hides truncation). */
  readonly ignoreDup: (pkColumn: string, conflictTarget: string) => string
  readonly run: (text: string, params?: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<Row>, SqlError>
  readonly exec: (text: string, params?: ReadonlyArray<unknown>) => Effect.Effect<number, SqlError>
  readonly count: (text: string, params: ReadonlyArray<unknown>) => Effect.Effect<number, SqlError>
  /** What ingest has done so far in this store, for retention to pace itself by (`maintenance.ts`). */
  readonly ingestActivity: IngestActivity
}

/** Counted by ingest, read by retention: whether agents' records arrived since retention last looked. */
export interface IngestActivity {
  /** Record batches ingested (attempted) since the store was made. */
  batches: number
}

export const makeStoreSql: Effect.Effect<StoreSql, never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const mysql = sql.onDialectOrElse({ mysql: () => true, orElse: () => false })
  const ignoreDup = (pkColumn: string, conflictTarget: string) =>
    mysql ? `ON DUPLICATE KEY UPDATE ${pkColumn} = ${pkColumn}` : `ON CONFLICT (${conflictTarget}) DO NOTHING`
  const run = (text: string, params: ReadonlyArray<unknown> = []) => sql.unsafe<Row>(text, params)
  const exec = (text: string, params: ReadonlyArray<unknown> = []) => Effect.map(sql.unsafe(text, params).raw, affected)
  const count = (text: string, params: ReadonlyArray<unknown>) =>
    Effect.map(run(text, params), (rows) => num(rows[0]?.n ?? 0))
  return { sql, mysql, ignoreDup, run, exec, count, ingestActivity: { batches: 0 } }
})
