/**
 * The reads: runs and their lines for the CLI and the web console (paged streams for the large
 * ones), agents, and the sandboxed `query`.
 *
 * Fixed statements are `sql` templates. Statements put together from a filter (`runs`, the
 * keyset pages, padded `IN` lists) stay text with `?` placeholders through `run`: their shape
 * (which conditions, how many `?`) is decided at run time, and padding keeps MariaDB's
 * per-connection prepared statements few (`inList`).
 */
import * as Decoder from "@barto/domain/Decoder"
import { type FailedRow, type LineRow, type Micros, MissedTick, RunState } from "@barto/domain/Messages"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Stream from "effect/Stream"
import {
  type FailedWindow,
  type QueryCaps,
  recentKey,
  type RecentRuns,
  type RunsFilter,
  type StoreShape
} from "../../Store.js"
import {
  breathe,
  chunk,
  inList,
  num,
  numOrNull,
  PAGE_LINES,
  PAGE_RUNS,
  type ReadError,
  type Row,
  storeError,
  type StoreSql,
  strOrNull
} from "./common.js"
import { QueryRefused, type StoreError } from "./errors.js"
import { checkReadOnly } from "./guard.js"
import type { MakeOptions } from "./make.js"
import {
  decodeFailedRow,
  decodeFirst,
  decodeLineRow,
  decodeRows,
  decodeRunRow,
  LINE_SELECT,
  RUN_COLUMNS
} from "./rows.js"

const LOST_OR_FAILED = "('failed', 'timed_out', 'interrupted', 'lost')"

const decodeRunState = Decoder.make(RunState)
/** A value another version wrote that this one does not know is unknown (null), not an error. */
const decodeMissedTick = Decoder.make(MissedTick)

export type ReadsShape = Pick<
  StoreShape,
  | "listCommands"
  | "listLines"
  | "cmdLines"
  | "failed"
  | "successfulLines"
  | "runs"
  | "countRuns"
  | "recentRuns"
  | "getRun"
  | "runCommands"
  | "agents"
  | "latestRun"
  | "runLines"
  | "query"
>

export const makeReads = (ctx: StoreSql, options: MakeOptions): Effect.Effect<ReadsShape> =>
  Effect.gen(function*() {
    const { count, mysql, run, sql } = ctx
    const runColumns = sql.literal(RUN_COLUMNS)
    const lineSelect = sql.literal(LINE_SELECT)
    // --- reads -----------------------------------------------------------------------------------

    const listCommands = (agent: string) =>
      sql<Row>`SELECT DISTINCT schedule FROM runs WHERE agent = ${agent} ORDER BY schedule`.pipe(
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
      fetchMany: (
        runIds: ReadonlyArray<string>
      ) => Effect.Effect<ReadonlyArray<{ readonly runId: string; readonly line: L }>, ReadError>,
      fetchAfter: (
        item: A,
        afterLineSeq: number
      ) => Effect.Effect<ReadonlyArray<{ readonly lineSeq: number; readonly line: L }>, ReadError>,
      emit: (
        item: A,
        lines: ReadonlyArray<L>,
        first: boolean
      ) => Either.Either<ReadonlyArray<unknown>, ParseResult.ParseError>
    ): Stream.Stream<unknown, ReadError> => {
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
          return Stream.fromIterableEffect(
            Effect.gen(function*() {
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
              const out: Array<unknown> = []
              for (const c of group.items) out.push(...(yield* emit(c.item, byRun.get(c.runId) ?? [], true)))
              return out
            }).pipe(Effect.zipLeft(breathe))
          )
        }
        const item = group.items[0]!.item
        return Stream.paginateChunkEffect({ after: -1, first: true }, (state) =>
          fetchAfter(item, state.after).pipe(
            Effect.zipLeft(breathe),
            Effect.flatMap((rows) =>
              Either.map(
                rows.length === 0 && !state.first ? Either.right([]) : emit(item, rows.map((r) => r.line), state.first),
                (emitted) =>
                  [
                    Chunk.fromIterable(emitted),
                    rows.length < PAGE_LINES
                      ? Option.none()
                      : Option.some({ after: rows[rows.length - 1]!.lineSeq, first: false })
                  ] as const
              )
            )
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
      ).pipe(
        Effect.map((rows) => new Map(rows.map((r) => [`${String(r.run_id)}\u0000${String(r.cmd_uuid)}`, num(r.n)])))
      )
    }
    const countKey = (runId: string, cmdUuid = "") => `${runId}\u0000${cmdUuid}`

    /**
     * Pages of rows along a keyset cursor: `fetch(after)` reads the page after `after` (the first
     * when undefined); a page shorter than PAGE_RUNS is the last. Yields between pages.
     */
    const keysetPages = (
      fetch: (after: ReadonlyArray<unknown> | undefined) => Effect.Effect<ReadonlyArray<Row>, ReadError>,
      cursorOf: (last: Row) => ReadonlyArray<unknown>
    ): Stream.Stream<ReadonlyArray<Row>, ReadError> =>
      Stream.paginateEffect(undefined as ReadonlyArray<unknown> | undefined | null, (after) =>
        after === null
          ? Effect.succeed([[] as ReadonlyArray<Row>, Option.none()] as const)
          : Effect.map(
            Effect.zipLeft(fetch(after), breathe),
            (rows) => [rows, Option.some(rows.length < PAGE_RUNS ? null : cursorOf(rows[rows.length - 1]!))] as const
          )).pipe(
          Stream.takeWhile((rows) => rows.length > 0)
        )

    /** `select … WHERE <column> IN (runIds) ORDER BY <column>, line_seq`, each row with its run id. */
    const rowsOfRuns = <L>(
      select: string,
      column: string,
      toLine: (r: Row) => Either.Either<L, ParseResult.ParseError>
    ) =>
    (runIds: ReadonlyArray<string>) => {
      const list = inList(runIds)
      return Effect.flatMap(
        run(`${select} WHERE ${column} IN ${list.text} ORDER BY ${column}, line_seq`, list.params),
        decodeRows((r) => Either.map(toLine(r as Row), (line) => ({ runId: String((r as Row).run_id), line })))
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
          Effect.map(
            countLines(rows.map((r) => String(r.run_id)), false),
            (counts) =>
              rows.map((r): Counted<string> => ({
                item: String(r.run_id),
                runId: String(r.run_id),
                lines: counts.get(countKey(String(r.run_id))) ?? 0
              }))
          )
        ),
        Stream.flatMap((page) =>
          linesOfPage(
            page,
            rowsOfRuns(LINE_SELECT, "ol.run_id", decodeLineRow),
            (runId, after) =>
              Effect.flatMap(
                run(`${LINE_SELECT} WHERE ol.run_id = ? AND ol.line_seq > ? ORDER BY ol.line_seq LIMIT ?`, [
                  runId,
                  after,
                  PAGE_LINES
                ]),
                decodeRows((r) => Either.map(decodeLineRow(r), (line) => ({ lineSeq: line.lineSeq, line })))
              ),
            (_runId, lines) => Either.right(lines)
          ) as Stream.Stream<LineRow, ReadError>
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
    // "Without any command" is a LEFT JOIN … IS NULL, a lookup per run: MariaDB turned NOT EXISTS
    // into a materialized anti-join that read all of run_commands_run_id (EXPLAIN, issue 18).
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
      FROM runs r LEFT JOIN run_commands c0 ON c0.run_id = r.run_id
      WHERE r.state IN ${LOST_OR_FAILED} AND c0.run_id IS NULL`
    const FAILED_KEY = {
      commands: ["COALESCE(c.finished_at, r.finished_at, r.started_at, r.scheduled_at)", "c.run_id", "c.cmd_index"],
      runs: ["COALESCE(r.finished_at, r.started_at, r.scheduled_at)", "r.run_id", "-1"]
    }

    // A window (`barto-cli failed`, by default the last 24 h and the newest 50) is read in parts
    // whose key is a plain column, so that its range, ORDER BY and LIMIT follow an index
    // (EXPLAIN in bench/suites/history.ts; the two halves above sort every failure ever). A
    // command that reported its exit ends at its own finished_at (run_commands_finished); one
    // that never did (exit code and signal NULL: CommandExited sets them with finished_at) fails
    // only in a run that ended badly, at that run's finished_at (runs_state_finished), as do
    // runs without commands. Failures with no end at all (lost runs) count only without
    // since/until, keyed by start as above: few, read whole.
    interface FailedPart {
      readonly where: string
      /** The sort key `k`, then run id (and command index). */
      readonly key: readonly [string, string, string]
      /** ORDER BY columns, ascending. */
      readonly order: ReadonlyArray<string>
    }
    const FAILED_PARTS: ReadonlyArray<FailedPart & { readonly ended: boolean }> = [
      {
        where: `${FAILED_COMMANDS} AND c.finished_at IS NOT NULL`,
        key: ["c.finished_at", "c.run_id", "c.cmd_index"],
        order: ["c.finished_at", "c.run_id", "c.cmd_index"],
        ended: true
      },
      {
        where:
          `${FAILED_COMMANDS} AND c.finished_at IS NULL AND r.state IN ${LOST_OR_FAILED} AND r.finished_at IS NOT NULL`,
        key: ["r.finished_at", "c.run_id", "c.cmd_index"],
        order: ["r.finished_at", "c.run_id", "c.cmd_index"],
        ended: true
      },
      {
        where: `${FAILED_RUNS} AND r.finished_at IS NOT NULL`,
        key: ["r.finished_at", "r.run_id", "-1"],
        order: ["r.finished_at", "r.run_id"],
        ended: true
      },
      {
        where: `${FAILED_COMMANDS} AND c.finished_at IS NULL AND r.finished_at IS NULL`,
        key: ["COALESCE(r.started_at, r.scheduled_at)", "c.run_id", "c.cmd_index"],
        order: ["COALESCE(r.started_at, r.scheduled_at)", "c.run_id", "c.cmd_index"],
        ended: false
      },
      {
        where: `${FAILED_RUNS} AND r.finished_at IS NULL`,
        key: ["COALESCE(r.started_at, r.scheduled_at)", "r.run_id", "-1"],
        order: ["COALESCE(r.started_at, r.scheduled_at)", "r.run_id"],
        ended: false
      }
    ]
    const descending = (order: ReadonlyArray<string>) => order.map((c) => `${c} DESC`).join(", ")

    /** The parts of `window` with their bounds (text and parameters). */
    const windowParts = (window: FailedWindow) => {
      const bounded = window.since !== undefined || window.until !== undefined
      return FAILED_PARTS.filter((p) => p.ended || !bounded).map((p) => {
        const conds: Array<string> = []
        const params: Array<unknown> = []
        if (window.since !== undefined) {
          conds.push(`${p.key[0]} >= ?`)
          params.push(window.since)
        }
        if (window.until !== undefined) {
          conds.push(`${p.key[0]} < ?`)
          params.push(window.until)
        }
        return { ...p, where: `${p.where}${conds.map((c) => ` AND ${c}`).join("")}`, params }
      })
    }

    /** The key of the `limit`-th newest failure of the window (each part gives its newest `limit`). */
    /**
     * `members` UNION ALLed, then `outer` (ORDER BY … LIMIT on the columns k, run_id, idx). On
     * MariaDB each member in parentheses: as derived tables each was materialized in a temporary
     * table, on disk when it holds `command` (MEDIUMTEXT), which made a page cost ~40 ms (issue
     * 18); SQLite takes no parenthesized SELECT in a compound.
     */
    const unionOf = (members: ReadonlyArray<string>, outer: string) =>
      mysql
        ? `${members.map((m) => `(${m})`).join(" UNION ALL ")} ${outer}`
        : `SELECT * FROM (${members.map((m, i) => `SELECT * FROM (${m}) AS p${i}`).join(" UNION ALL ")}) f ${outer}`

    /** A part's newest `limit` keys, at or after `floor` (its key column) when given. */
    const partKeys = (p: ReturnType<typeof windowParts>[number], limit: number, floor: unknown) =>
      `SELECT ${p.key[0]} AS k, ${p.key[1]} AS run_id, ${p.key[2]} AS idx ${p.where.slice(p.where.search(/\sFROM\s/))}${
        floor === undefined ? "" : ` AND ${p.key[0]} >= ?`
      } ORDER BY ${descending(p.order)} LIMIT ${limit}`

    /**
     * The key of the `limit`-th newest failure of the window (each part gives its newest `limit`,
     * keys only). The first part (commands that exited, along `run_commands_finished`) is read
     * first: when it has `limit` failures, the answer is at or after its `limit`-th key, which then
     * bounds the other parts too. Without that bound, the runs-without-commands part looked up every
     * failed run of the window in `run_commands` (1,636 lookups, ~8 ms of ~9, for a day of
     * 1,000,000 runs on MariaDB; issue 18), and found none.
     */
    const windowStart = (parts: ReturnType<typeof windowParts>, limit: number) =>
      Effect.gen(function*() {
        const first = parts[0]!
        const firstKeys = yield* run(partKeys(first, limit, undefined), first.params)
        const floor = firstKeys.length === limit ? firstKeys[limit - 1]!.k : undefined
        const rows = yield* run(
          unionOf(
            parts.map((p, i) => partKeys(p, limit, i === 0 ? undefined : floor)),
            `ORDER BY k DESC, run_id DESC, idx DESC LIMIT 1 OFFSET ${limit - 1}`
          ),
          parts.flatMap((p, i) => i === 0 || floor === undefined ? p.params : [...p.params, floor])
        )
        return rows.length === 0 ? undefined : [num(rows[0]!.k), String(rows[0]!.run_id), num(rows[0]!.idx)] as const
      })

    const failedPages = (window: FailedWindow) => {
      const limit = window.limit === undefined ? undefined : Math.max(1, Math.floor(window.limit))
      if (window.since === undefined && window.until === undefined && limit === undefined) {
        const page = (after: ReadonlyArray<unknown> | undefined) => {
          // The cursor condition goes into both halves, so that neither is read whole per page.
          const cond = (columns: ReadonlyArray<string>) =>
            after === undefined ? "" : ` AND (${columns.join(", ")}) > (?, ?, ?)`
          return run(
            `SELECT * FROM (${FAILED_COMMANDS}${cond(FAILED_KEY.commands)} UNION ALL ${FAILED_RUNS}${
              cond(FAILED_KEY.runs)
            }) f
             ORDER BY f.k, f.run_id, f.idx LIMIT ?`,
            [...(after ?? []), ...(after ?? []), PAGE_RUNS]
          )
        }
        return keysetPages(page, (last) => [num(last.k), String(last.run_id), num(last.idx)])
      }
      const parts = windowParts(window)
      // From the window's start (inclusive) or after a page's last row, each part along its index.
      const page = (from: { readonly key: ReadonlyArray<unknown>; readonly inclusive: boolean } | undefined) =>
        run(
          unionOf(
            parts.map((p) =>
              `${p.where}${
                from === undefined
                  ? ""
                  : ` AND ${p.key[0]} >= ? AND (${p.key.join(", ")}) ${from.inclusive ? ">=" : ">"} (?, ?, ?)`
              } ORDER BY ${p.order.join(", ")} LIMIT ${PAGE_RUNS}`
            ),
            `ORDER BY k, run_id, idx LIMIT ${PAGE_RUNS}`
          ),
          parts.flatMap((p) => [...p.params, ...(from === undefined ? [] : [from.key[0], ...from.key])])
        )
      return Stream.unwrap(Effect.map(
        limit === undefined ? Effect.succeed(undefined) : windowStart(parts, limit),
        (start) =>
          keysetPages(
            (after) =>
              page(
                after !== undefined
                  ? { key: after, inclusive: false }
                  : start === undefined
                  ? undefined
                  : { key: start, inclusive: true }
              ),
            (last) => [num(last.k), String(last.run_id), num(last.idx)]
          )
      ))
    }

    const failed = (window: FailedWindow = {}) => {
      return failedPages(window).pipe(
        Stream.mapEffect((rows) =>
          Effect.map(countLines(Array.from(new Set(rows.map((r) => String(r.run_id)))), true), (counts) => {
            // What one fetch of a run's lines returns: every command's lines of that run.
            const perRun = new Map<string, number>()
            for (const [key, n] of counts) {
              const runId = key.slice(0, key.indexOf("\u0000"))
              perRun.set(runId, (perRun.get(runId) ?? 0) + n)
            }
            return rows.map((r): Counted<Row> => {
              const own = String(r.cmd_uuid) === ""
                ? 0
                : counts.get(countKey(String(r.run_id), String(r.cmd_uuid))) ?? 0
              // A command with many lines is read on its own; else its run's lines come together.
              return {
                item: r,
                runId: String(r.run_id),
                lines: own > PAGE_LINES ? own : own === 0 ? 0 : perRun.get(String(r.run_id)) ?? 0
              }
            })
          })
        ),
        Stream.flatMap((page) =>
          linesOfPage(
            page,
            rowsOfRuns("SELECT run_id, cmd_uuid, data FROM output_lines", "run_id", (l) =>
              Either.right({
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
                (rows) =>
                  rows.map((l) => ({
                    lineSeq: num(l.line_seq),
                    line: { cmdUuid: String(l.cmd_uuid), data: String(l.data) }
                  }))
              ),
            (r, lines, first) => {
              const cmd = String(r.cmd_uuid)
              const own = cmd === "" ? [] : lines.filter((l) => l.cmdUuid === cmd).map((l) => l.data)
              return first || own.length > 0
                ? Either.map(decodeFailedRow({ ...r, lines: own }), (row) => [row])
                : Either.right([])
            }
          ) as Stream.Stream<FailedRow, ReadError>
        ),
        Stream.mapError(storeError("failed"))
      )
    }

    const successfulLines = (agent: string) =>
      sql<Row>`SELECT ol.data FROM runs r
         JOIN output_lines ol ON ol.run_id = r.run_id
         JOIN run_commands c ON c.cmd_uuid = ol.cmd_uuid
         WHERE r.agent = ${agent} AND c.exit_code = 0
         ORDER BY ol.ts, ol.run_id, ol.line_seq`.pipe(
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
        Effect.flatMap(decodeRows(decodeRunRow)),
        Effect.mapError(storeError("runs"))
      )
    }

    // One statement of UNION ALLed per-schedule subqueries (each an index range scan with its own
    // LIMIT): one round trip instead of one per schedule. SQLite takes no parenthesized SELECT in
    // a compound, so there each is `SELECT * FROM (…) AS t`; MariaDB materializes every such
    // derived table in a temporary table, on disk since `heartbeat` is MEDIUMTEXT: 64 schedules
    // took 170 ms that way and 5 ms as `(SELECT … LIMIT n) UNION ALL (…)` (issue 18).
    const RECENT_CHUNK = 64
    const recentRuns = (
      schedules: ReadonlyArray<{ readonly agent: string; readonly schedule: string }>,
      perSchedule: number
    ) =>
      Effect.gen(function*() {
        const out = new Map<string, RecentRuns>()
        const limit = Math.max(0, Math.floor(perSchedule))
        if (limit === 0) return out
        if (mysql && limit === 1 && schedules.length > RECENT_CHUNK) {
          // The schedule view (every schedule's newest run) on MariaDB: one loose index scan of
          // runs_agent_schedule_scheduled ("Using index for group-by": one dive per agent and
          // schedule ever run) and a lookup of each newest row, ~10 ms for 1,000 schedules where
          // 16 statements of 64 subqueries took ~80 ms (issue 18). Ties on scheduled_at: the
          // highest run id, as `runs` orders them.
          const wanted = new Set(schedules.map((s) => recentKey(s.agent, s.schedule)))
          const newest = new Map<string, Row>()
          for (
            const row of yield* run(
              `SELECT ${RUN_COLUMNS} FROM (SELECT agent, schedule, MAX(scheduled_at) AS m FROM runs GROUP BY agent, schedule) g
               JOIN runs r ON r.agent = g.agent AND r.schedule = g.schedule AND r.scheduled_at = g.m`
            )
          ) {
            const key = recentKey(String(row.agent), String(row.schedule))
            const seen = newest.get(key)
            if (wanted.has(key) && (seen === undefined || String(row.run_id) > String(seen.run_id))) {
              newest.set(key, row)
            }
          }
          for (const [key, row] of newest) {
            out.set(key, { last: yield* decodeRunRow(row), states: [yield* decodeRunState(row.state)] })
          }
          return out
        }
        for (const part of chunk(schedules, RECENT_CHUNK)) {
          // `k` numbers the subquery, `n` the row within it: rows come back in that order.
          const text = part.map((_, k) => {
            const one = `SELECT ${k} AS k, ${RUN_COLUMNS} FROM runs r WHERE r.agent = ? AND r.schedule = ?
             ORDER BY r.scheduled_at DESC, r.run_id DESC LIMIT ${limit}`
            return mysql ? `(${one})` : `SELECT * FROM (${one}) AS t${k}`
          }).join(" UNION ALL ")
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
            const last = yield* decodeRunRow(list[0]!)
            const states: Array<RunState> = []
            for (const r of list) states.push(yield* decodeRunState(r.state))
            out.set(recentKey(agent, schedule), { last, states })
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
      return count(`SELECT COUNT(*) AS n FROM runs r ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}`, params)
        .pipe(
          Effect.mapError(storeError("countRuns"))
        )
    }

    const getRun = (runId: string) =>
      sql<Row>`SELECT ${runColumns} FROM runs r WHERE r.run_id = ${runId}`.pipe(
        Effect.flatMap(decodeFirst(decodeRunRow)),
        Effect.mapError(storeError("getRun"))
      )

    const runCommands = (runId: string) =>
      sql<Row>`SELECT cmd_uuid, cmd_index, command, started_at, finished_at, exit_code, exit_signal
         FROM run_commands WHERE run_id = ${runId} ORDER BY cmd_index, started_at`.pipe(
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
      sql<Row>`SELECT name, first_seen_at, last_seen_at, last_ip, os_name, hostname, os_version, kernel, agent_version,
           missed_tick, catch_up_limit
         FROM agents ORDER BY name`.pipe(
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
            agentVersion: strOrNull(r.agent_version),
            missedTick: Either.getOrNull(decodeMissedTick(r.missed_tick)),
            catchUpLimit: numOrNull(r.catch_up_limit)
          }))
        ),
        Effect.mapError(storeError("agents"))
      )

    // The latest run that actually started: a missed occurrence has nothing to show or tail.
    const latestRun = (agent: string, schedule: string) =>
      sql<Row>`SELECT ${runColumns} FROM runs r
         WHERE r.agent = ${agent} AND r.schedule = ${schedule} AND r.started_at IS NOT NULL
         ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1`.pipe(
        Effect.flatMap(decodeFirst(decodeRunRow)),
        Effect.mapError(storeError("latestRun"))
      )

    const runLines = (runId: string, afterLineSeq: number, limit: number) => {
      const n = Math.max(0, Math.floor(limit))
      if (n === 0) return Effect.succeed([])
      return sql<Row>`${lineSelect} WHERE ol.run_id = ${runId} AND ol.line_seq > ${Math.floor(afterLineSeq)}
        ORDER BY ol.line_seq LIMIT ${n}`.pipe(
        Effect.flatMap(decodeRows(decodeLineRow)),
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

    return {
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
      query
    } satisfies ReadsShape
  })
