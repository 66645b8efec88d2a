/**
 * Answers every CLI request (D10). `handle` turns one request into a stream of responses: one
 * response for most requests, a series of `TailChunk`s for `tail`. Whatever goes wrong becomes a
 * `CliError` carrying the request id: the stream itself never fails and never ends silently.
 */
import type * as Messages from "@barto/domain/Messages"
import type { CliRequest, CliResponse, FailedRow, LineRow, RunRow } from "@barto/domain/Messages"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { Ingested } from "./Events.js"
import * as Follow from "./Follow.js"
import * as AlertViews from "./internal/alerts/views.js"
import { rowBytes } from "./internal/store/render.js"
import * as Operations from "./Operations.js"
import { fromStore, Refusal, refuse } from "./Operations.js"
import { Registry } from "./Registry.js"
import type { Schedules } from "./Schedules.js"
import { ServerInfo } from "./ServerInfo.js"
import { Store, type StoreError } from "./Store.js"
import * as Updates from "./Updates.js"

export interface HandlerContext {
  /** The CLI presented the admin key (checked by the session). */
  readonly admin: boolean
  /** `query` is admin-only (`query_requires_admin`; stored commands and output may hold secrets). */
  readonly queryRequiresAdmin?: boolean
}

export type HandlerServices = Store | Registry | Schedules | Ingested | ServerInfo

export type CliErrorCode = typeof Messages.CliError.Type["code"]

export { MAX_RUNS, TAIL_PAGE_LINES, TAIL_POLL } from "./Operations.js"
/**
 * About how many bytes one answer frame carries (a TailChunk, a part of a paged answer): small
 * enough that no single frame takes long to build, encode or send, and well under the default
 * 1 MiB frame limit. One row larger than this (a query cell) still travels whole, in a frame of
 * its own.
 */
export const FRAME_BYTES = 256 * 1024

const ADMIN_ONLY: Partial<Record<CliRequest["_tag"], string>> = {
  CleanupRequest: "cleanup",
  RunNowRequest: "run",
  CancelRequest: "cancel",
  PauseRequest: "pause",
  ResumeRequest: "resume",
  NotifyTestRequest: "notify test"
}

/**
 * Answers one request. Requires the services of a running bartos; the stream never fails.
 */
export const handle = (
  request: CliRequest,
  ctx: HandlerContext
): Stream.Stream<CliResponse, never, HandlerServices> => {
  const id = request.id
  const adminName = ADMIN_ONLY[request._tag] ??
    (request._tag === "QueryRequest" && ctx.queryRequiresAdmin === true ? "query" : undefined)
  const answer: Stream.Stream<CliResponse, Refusal, HandlerServices> = adminName !== undefined && !ctx.admin
    ? Stream.fail(new Refusal({ code: "forbidden", message: `${adminName} requires the admin key` }))
    : request._tag === "TailRequest"
    ? tail(request)
    : isPagedRequest(request)
    ? paged(request)
    : Stream.fromEffect(single(request))
  return answer.pipe(
    Stream.catchAllCause((cause) => {
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure) && failure.value.code !== "internal") {
        return Stream.succeed<CliResponse>({
          _tag: "CliError",
          id,
          code: failure.value.code,
          message: failure.value.message
        })
      }
      const message = Option.isSome(failure) ? failure.value.message : "internal error"
      return Stream.fromEffect(
        Effect.logError(`${request._tag} failed`, cause).pipe(
          Effect.as<CliResponse>({ _tag: "CliError", id, code: "internal", message })
        )
      )
    }),
    Stream.withSpan(`CliHandler.${request._tag}`, { attributes: { requestId: id } })
  )
}

// ---------------------------------------------------------------------------------------------
// One-response requests
// ---------------------------------------------------------------------------------------------

const single = (
  request: Exclude<CliRequest, { readonly _tag: "TailRequest" } | PagedRequest>
): Effect.Effect<CliResponse, Refusal, HandlerServices> =>
  Effect.gen(function*() {
    const store = yield* Store
    const id = request.id
    switch (request._tag) {
      case "InfoRequest":
        return { _tag: "InfoResponse", id, ...(yield* Operations.info) }
      case "ClientsRequest": {
        const registry = yield* Registry
        return { _tag: "ClientsResponse", id, clients: yield* registry.list }
      }
      case "ListCommandsRequest":
        return { _tag: "ListCommandsResponse", id, commands: yield* fromStore(store.listCommands(request.agent)) }
      case "UpdatesRequest": {
        const lines = yield* fromStore(store.successfulLines(request.agent))
        return { _tag: "UpdatesResponse", id, result: Updates.parse(request.kind, lines) }
      }
      case "SchedulesRequest":
        return { _tag: "SchedulesResponse", id, schedules: yield* Operations.scheduleRows(request.agent) }
      case "AlertsRequest":
        return { _tag: "AlertsResponse", id, ...(yield* fromStore(AlertViews.alerts(store.alerts, request.limit))) }
      case "NotifyTestRequest":
        return {
          _tag: "NotifyTestResponse",
          id,
          ...(yield* fromStore(AlertViews.notifyTest(store.alerts, request.channel)))
        }
      case "StatusRequest":
        return { _tag: "StatusResponse", id, ...(yield* Operations.status) }
      case "CleanupRequest":
        return {
          _tag: "CleanupResponse",
          id,
          ...(yield* Operations.cleanup({ before: request.before, dryRun: request.dryRun }))
        }
      case "RunNowRequest":
        return { _tag: "RunNowResponse", id, ...(yield* Operations.runNow(request.agent, request.schedule)) }
      case "CancelRequest":
        return { _tag: "CancelResponse", id, ...(yield* Operations.cancel(request.runId)) }
      case "PauseRequest":
      case "ResumeRequest":
        return {
          _tag: "PauseResponse",
          id,
          ...(yield* Operations.setPaused(request.agent, request.schedule, request._tag === "PauseRequest"))
        }
    }
  })

// ---------------------------------------------------------------------------------------------
// Answers in parts (list, cmd, failed, runs, query)
// ---------------------------------------------------------------------------------------------

type PagedRequest = Extract<
  CliRequest,
  { readonly _tag: "ListRequest" | "CmdRequest" | "FailedRequest" | "RunsRequest" | "QueryRequest" }
>

const isPagedRequest = (r: CliRequest): r is PagedRequest =>
  r._tag === "ListRequest" || r._tag === "CmdRequest" || r._tag === "FailedRequest" || r._tag === "RunsRequest" ||
  r._tag === "QueryRequest"

/** What a value costs in a frame, roughly (JSON keys and punctuation included). */
const lineBytes = (l: LineRow): number => Buffer.byteLength(l.data, "utf8") + 200
const failedBytes = (f: FailedRow): number =>
  Buffer.byteLength(f.command, "utf8") + f.lines.reduce((n, l) => n + Buffer.byteLength(l, "utf8") + 4, 300)
const runBytes = (r: RunRow): number => r.runId.length + r.agent.length + r.schedule.length + 300

/**
 * `items` as frames of about FRAME_BYTES each, produced as the stream is read (never the whole
 * answer in memory): `build(items, last, truncated)` makes each part. Reading stops once
 * `maxTotal` bytes were taken; the last part then says `truncated`.
 */
const framed = <A, E, R>(
  items: Stream.Stream<A, E, R>,
  sizeOf: (a: A) => number,
  maxTotal: number,
  build: (items: ReadonlyArray<A>, last: boolean, truncated: boolean) => CliResponse
): Stream.Stream<CliResponse, E, R> =>
  Stream.suspend(() => {
    let total = 0
    let cut = false
    let current: Array<A> = []
    let bytes = 0
    const parts = items.pipe(
      Stream.takeWhile((a) => {
        total += sizeOf(a)
        cut = total > maxTotal
        return !cut
      }),
      Stream.mapConcat((a): Array<CliResponse> => {
        const n = sizeOf(a)
        if (current.length > 0 && bytes + n > FRAME_BYTES) {
          const full = current
          current = [a]
          bytes = n
          return [build(full, false, false)]
        }
        current.push(a)
        bytes += n
        return []
      })
    )
    return Stream.concat(parts, Stream.suspend(() => Stream.succeed(build(current, true, cut))))
  })

/** Largest `limit` of `list`, `cmd`, `failed` we honour (the newest are kept in memory). */
export const MAX_WINDOW = 100_000

interface Window<A> {
  /** The instant an item is placed at (null: no time, kept only without since/until). */
  readonly at: (a: A) => number | null
  /** Items with the same key are parts of one (a failed command split over rows). */
  readonly key: (a: A) => string
  /** The limit applies to each of these separately (`cmd`: per agent), keeping their order. */
  readonly per?: (a: A) => string
  readonly since: number | undefined
  readonly until: number | undefined
  readonly limit: number | undefined
}

type WindowRequest = {
  readonly since?: number | undefined
  readonly until?: number | undefined
  readonly limit?: number | undefined
}

const windowOf = <A>(at: Window<A>["at"], key: Window<A>["key"]) => (r: WindowRequest): Window<A> => ({
  at,
  key,
  since: r.since,
  until: r.until,
  limit: r.limit
})
const lineWindow = windowOf<LineRow>((l) => l.ts, (l) => `${l.runId}/${l.lineSeq}`)
const failedWindow = windowOf<FailedRow>((f) => f.finishedAt, (f) => `${f.runId}/${f.cmdUuid}`)

/**
 * The items of `items` (in time order) inside [since, until), and of those the last `limit`
 * (counting items that share a key once). Without a limit it stays a stream; with one, only the
 * newest `limit` are held while reading.
 */
const windowed = <A, R>(items: Stream.Stream<A, Refusal, R>, w: Window<A>): Stream.Stream<A, Refusal, R> => {
  const inside = w.since === undefined && w.until === undefined
    ? items
    : Stream.filter(items, (a) => {
      const at = w.at(a)
      return at !== null && (w.since === undefined || at >= w.since) && (w.until === undefined || at < w.until)
    })
  if (w.limit === undefined) return inside
  const limit = w.limit
  if (!Number.isInteger(limit) || limit < 1) {
    return Stream.fail(new Refusal({ code: "bad_request", message: `limit must be a positive integer, got ${limit}` }))
  }
  const keep = Math.min(limit, MAX_WINDOW)
  const per = w.per ?? (() => "")
  return Stream.unwrap(
    Stream.runFold(inside, new Map<string, Array<Array<A>>>(), (sections, a) => {
      const section = per(a)
      const groups = sections.get(section) ?? []
      sections.set(section, groups)
      const last = groups[groups.length - 1]
      if (last !== undefined && w.key(last[0]!) === w.key(a)) last.push(a)
      else {
        groups.push([a])
        // Trimmed in batches: shifting one at a time is quadratic in the window.
        if (groups.length >= 2 * keep) groups.splice(0, groups.length - keep)
      }
      return sections
    }).pipe(Effect.map((sections) => Stream.fromIterable([...sections.values()].flatMap((g) => g.slice(-keep).flat()))))
  )
}

/** `more`/`truncated` as the wire wants them: absent when false (a one-part answer looks as before). */
const partFlags = (last: boolean, truncated: boolean) => ({
  ...(last ? {} : { more: true }),
  ...(truncated ? { truncated: true } : {})
})

const paged = (request: PagedRequest): Stream.Stream<CliResponse, Refusal, HandlerServices> =>
  Stream.unwrap(Effect.gen(function*() {
    const store = yield* Store
    const info = yield* ServerInfo
    const id = request.id
    const cap = info.maxAnswerBytes
    const storeStream = <A>(s: Stream.Stream<A, StoreError>) =>
      Stream.mapError(s, (e) => new Refusal({ code: "internal", message: `database error: ${e.message}` }))
    switch (request._tag) {
      case "ListRequest":
        return framed(
          windowed(storeStream(store.listLines(request.agent, request.cmd)), lineWindow(request)),
          lineBytes,
          cap,
          (lines, last, cut) => ({
            _tag: "LinesResponse",
            id,
            lines,
            ...partFlags(last, cut)
          })
        )
      case "CmdRequest":
        return framed(
          windowed(storeStream(store.cmdLines(request.cmd)), { ...lineWindow(request), per: (l) => l.agent }),
          lineBytes,
          cap,
          (lines, last, cut) => {
            const byAgent: Array<{ agent: string; lines: Array<LineRow> }> = []
            for (const line of lines) {
              const group = byAgent[byAgent.length - 1]
              if (group !== undefined && group.agent === line.agent) group.lines.push(line)
              else byAgent.push({ agent: line.agent, lines: [line] })
            }
            return { _tag: "CmdResponse", id, byAgent, ...partFlags(last, cut) }
          }
        )
      case "FailedRequest":
        return framed(
          windowed(storeStream(store.failed(request)), failedWindow(request)),
          failedBytes,
          cap,
          (failed, last, cut) => ({
            _tag: "FailedResponse",
            id,
            failed,
            ...partFlags(last, cut)
          })
        )
      case "RunsRequest": {
        const runs = yield* Operations.runs({
          ...(request.runId !== undefined ? { runIdMatch: request.runId } : {}),
          ...(request.agent !== undefined ? { agent: request.agent } : {}),
          ...(request.schedule !== undefined ? { schedule: request.schedule } : {}),
          ...(request.state !== undefined ? { state: request.state } : {}),
          ...(request.since !== undefined ? { since: request.since } : {}),
          limit: request.limit
        })
        // MAX_RUNS bounds the answer; the frames keep each part small.
        return framed(Stream.fromIterable(runs), runBytes, Infinity, (part, last) => ({
          _tag: "RunsResponse",
          id,
          runs: part,
          ...partFlags(last, false)
        }))
      }
      case "QueryRequest": {
        const result = yield* store.query(request.sql, {
          rowCap: info.queryRowCap,
          maxBytes: info.queryMaxBytes,
          timeoutMs: info.queryTimeoutMs
        }).pipe(
          // The Store refuses writes, statements the database rejects, timeouts and a full house.
          Effect.catchTags({
            QueryRefused: (e) => refuse("refused", e.reason),
            StoreError: (e) => refuse("internal", `database error: ${e.message}`)
          })
        )
        // The byte cap bounds the answer already.
        return framed(Stream.fromIterable(result.rows), rowBytes, Infinity, (rows, last) => ({
          _tag: "QueryResponse",
          id,
          columns: result.columns,
          rows,
          truncated: last && result.truncated,
          ...(last ? {} : { more: true })
        }))
      }
    }
  }))

// ---------------------------------------------------------------------------------------------
// tail
// ---------------------------------------------------------------------------------------------

/** Splits lines into TailChunks of at most TAIL_PAGE_LINES lines and about FRAME_BYTES bytes. */
const toChunks = (
  id: number,
  lines: ReadonlyArray<LineRow>,
  run: RunRow | null
): Array<CliResponse> => {
  const out: Array<CliResponse> = []
  let current: Array<LineRow> = []
  let bytes = 0
  const flush = () => {
    out.push({ _tag: "TailChunk", id, run: out.length === 0 ? run : null, lines: current, done: false })
    current = []
    bytes = 0
  }
  for (const line of lines) {
    const size = lineBytes(line)
    if (current.length > 0 && (current.length >= Operations.TAIL_PAGE_LINES || bytes + size > FRAME_BYTES)) flush()
    current.push(line)
    bytes += size
  }
  if (current.length > 0) flush()
  return out
}

/**
 * `tail` as TailChunks: each part of `Operations.tail` (or, continuous, `Follow.follow`) cut to
 * fit a frame. A continuous tail never says `done`; it marks each run's end with `end`.
 */
const tail = (request: typeof Messages.TailRequest.Type): Stream.Stream<CliResponse, Refusal, HandlerServices> => {
  const continuous = request.continuous === true && request.follow && request.runId === undefined
  const parts: Stream.Stream<Follow.FollowPart, Refusal, HandlerServices> = continuous
    ? Follow.follow(request)
    : request.follow && request.runId === undefined && request.agent !== undefined && request.schedule !== undefined
    // An unknown schedule would be waited for forever: refuse it at once.
    ? Stream.unwrap(Effect.as(Operations.knownSchedule(request.agent, request.schedule), Operations.tail(request)))
    : Operations.tail(request)
  return parts.pipe(
    Stream.mapConcat((part): Array<CliResponse> =>
      part._tag === "Waiting"
        ? [{ _tag: "TailChunk", id: request.id, run: null, lines: [], done: false, waiting: part.waiting }]
        : part._tag === "Done"
        ? [
          continuous
            ? { _tag: "TailChunk", id: request.id, run: part.run, lines: [], done: false, end: true }
            : { _tag: "TailChunk", id: request.id, run: part.run, lines: [], done: true }
        ]
        : part._tag === "Beat"
        ? [{
          _tag: "TailChunk",
          id: request.id,
          run: null,
          lines: [],
          done: false,
          beat: { runId: part.run.runId, agent: part.run.agent, schedule: part.run.schedule, ...part.heartbeat }
        }]
        : part.lines.length === 0
        ? [{ _tag: "TailChunk", id: request.id, run: part.run, lines: [], done: false }]
        : toChunks(request.id, part.lines, part.run)
    )
  )
}
