/**
 * Answers every CLI request (D10). `handle` turns one request into a stream of responses: one
 * response for most requests, a series of `TailChunk`s for `tail`. Whatever goes wrong becomes a
 * `CliError` carrying the request id: the stream itself never fails and never ends silently.
 */
import * as Calendar from "@barto/scheduler/Calendar"
import { newRunId, uuidv4 } from "@barto/domain/Ids"
import * as Messages from "@barto/domain/Messages"
import type { AgentRecord, CliRequest, CliResponse, FailedRow, LineRow, RunRow, RunState } from "@barto/domain/Messages"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import { Ingested, type IngestedBatch } from "./Events.js"
import { Registry } from "./Registry.js"
import { Schedules } from "./Schedules.js"
import { ServerInfo } from "./ServerInfo.js"
import { rowBytes } from "./internal/store/render.js"
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

/** A request we answer with a `CliError`. */
class Refusal extends Data.TaggedError("Refusal")<{ readonly code: CliErrorCode; readonly message: string }> {}

const refuse = (code: CliErrorCode, message: string) => Effect.fail(new Refusal({ code, message }))

/** Database trouble is ours, not the user's: `internal`, with the driver's message (never a secret). */
const fromStore = <A, R>(effect: Effect.Effect<A, StoreError, R>): Effect.Effect<A, Refusal, R> =>
  Effect.mapError(effect, (e) => new Refusal({ code: "internal", message: `database error: ${e.message}` }))

/** Largest `runs --limit` we honour; bigger asks are clamped. */
export const MAX_RUNS = 10_000
/** Lines read from the Store per page while tailing. */
export const TAIL_PAGE_LINES = 500
/**
 * About how many bytes one answer frame carries (a TailChunk, a part of a paged answer): small
 * enough that no single frame takes long to build, encode or send, and well under the default
 * 1 MiB frame limit. One row larger than this (a query cell) still travels whole, in a frame of
 * its own.
 */
export const FRAME_BYTES = 256 * 1024
/** How often a follower re-reads its run, to notice an end no record announced (lost, cleanup). */
export const TAIL_POLL = "5 seconds"

const ADMIN_ONLY: Partial<Record<CliRequest["_tag"], string>> = {
  CleanupRequest: "cleanup",
  RunNowRequest: "run",
  CancelRequest: "cancel",
  PauseRequest: "pause",
  ResumeRequest: "resume"
}

const nowMicros = Effect.map(Clock.currentTimeMillis, (ms) => Messages.Micros.make(Math.floor(ms) * 1000))

const isFinal = (state: RunState): boolean => state !== "running"

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
      case "InfoRequest": {
        const info = yield* ServerInfo
        const registry = yield* Registry
        const now = yield* nowMicros
        const clients = yield* registry.list
        const reload = yield* (yield* Schedules).lastReload
        return {
          _tag: "InfoResponse",
          id,
          version: info.version,
          protocol: Messages.PROTOCOL_VERSION,
          startedAt: info.startedAt,
          uptimeSecs: Math.max(0, Math.floor((now - info.startedAt) / 1_000_000)),
          database: store.kind,
          databaseLocation: store.location,
          listeners: info.listeners,
          connectedAgents: clients.length,
          node: process.version,
          platform: `${process.platform} ${process.arch}`,
          configReload: {
            at: reload.at,
            result: reload.result,
            error: reload.error ?? null,
            lastSuccessAt: reload.lastSuccessAt
          }
        }
      }
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
        return { _tag: "SchedulesResponse", id, schedules: yield* scheduleRows(request.agent) }
      case "CleanupRequest": {
        const before = request.before ?? (yield* localMidnight)
        const counts = yield* fromStore(store.cleanup(before, request.dryRun))
        let agentsSignalled = 0
        if (!request.dryRun) {
          const registry = yield* Registry
          agentsSignalled = yield* registry.broadcast({ _tag: "AgentCleanup", before })
          yield* Effect.logInfo(
            `cleanup before ${before}: deleted ${counts.runs} runs, ${counts.commands} commands, ` +
              `${counts.lines} lines; signalled ${agentsSignalled} agents`
          )
        }
        return { _tag: "CleanupResponse", id, before, dryRun: request.dryRun, ...counts, agentsSignalled }
      }
      case "RunNowRequest": {
        yield* knownSchedule(request.agent, request.schedule)
        const registry = yield* Registry
        const runId = newRunId(yield* Clock.currentTimeMillis)
        const sent = yield* registry.send(request.agent, {
          _tag: "RunNow",
          requestId: uuidv4(),
          schedule: request.schedule,
          runId
        })
        if (!sent) return yield* refuse("not_connected", `agent '${request.agent}' is not connected`)
        yield* Effect.logInfo(`run now: ${request.agent}/${request.schedule} as run ${runId}`)
        return { _tag: "RunNowResponse", id, runId, agent: request.agent, schedule: request.schedule }
      }
      case "CancelRequest": {
        const found = yield* fromStore(store.getRun(request.runId))
        if (Option.isNone(found)) return yield* refuse("not_found", `unknown run ${request.runId}`)
        const run = found.value
        if (isFinal(run.state)) return yield* refuse("bad_request", `run ${run.runId} already ${run.state}`)
        const registry = yield* Registry
        const delivered = yield* registry.send(run.agent, { _tag: "CancelRun", requestId: uuidv4(), runId: run.runId })
        yield* Effect.logInfo(
          `cancel run ${run.runId} on ${run.agent}: ${delivered ? "delivered" : "agent not connected"}`
        )
        return { _tag: "CancelResponse", id, runId: run.runId, delivered }
      }
      case "PauseRequest":
      case "ResumeRequest": {
        const paused = request._tag === "PauseRequest"
        const schedules = yield* Schedules
        const known = yield* fromStore(schedules.setPaused(request.agent, request.schedule, paused))
        if (!known) {
          return yield* refuse("not_found", `unknown schedule '${request.schedule}' on agent '${request.agent}'`)
        }
        return { _tag: "PauseResponse", id, agent: request.agent, schedule: request.schedule, paused }
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
        return framed(storeStream(store.listLines(request.agent, request.cmd)), lineBytes, cap, (lines, last, cut) => ({
          _tag: "LinesResponse",
          id,
          lines,
          ...partFlags(last, cut)
        }))
      case "CmdRequest":
        return framed(storeStream(store.cmdLines(request.cmd)), lineBytes, cap, (lines, last, cut) => {
          const byAgent: Array<{ agent: string; lines: Array<LineRow> }> = []
          for (const line of lines) {
            const group = byAgent[byAgent.length - 1]
            if (group !== undefined && group.agent === line.agent) group.lines.push(line)
            else byAgent.push({ agent: line.agent, lines: [line] })
          }
          return { _tag: "CmdResponse", id, byAgent, ...partFlags(last, cut) }
        })
      case "FailedRequest":
        return framed(storeStream(store.failed()), failedBytes, cap, (failed, last, cut) => ({
          _tag: "FailedResponse",
          id,
          failed,
          ...partFlags(last, cut)
        }))
      case "RunsRequest": {
        if (!Number.isInteger(request.limit) || request.limit < 1) {
          return yield* refuse("bad_request", `limit must be a positive integer, got ${request.limit}`)
        }
        const runs = yield* fromStore(store.runs({
          ...(request.agent !== undefined ? { agent: request.agent } : {}),
          ...(request.schedule !== undefined ? { schedule: request.schedule } : {}),
          ...(request.state !== undefined ? { state: request.state } : {}),
          ...(request.since !== undefined ? { since: request.since } : {}),
          limit: Math.min(request.limit, MAX_RUNS)
        }))
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

/** Today's 00:00 in bartos' local time zone (reference `cleanup` meaning). */
const localMidnight = Effect.map(Clock.currentTimeMillis, (ms) => {
  const d = new Date(ms)
  d.setHours(0, 0, 0, 0)
  return Messages.Micros.make(d.getTime() * 1000)
})

/** Fails with `not_found` unless `agent` has a schedule called `schedule`. */
const knownSchedule = (agent: string, schedule: string) =>
  Effect.gen(function*() {
    const schedules = yield* Schedules
    const specs = yield* schedules.forAgent(agent)
    if (specs.length === 0) return yield* refuse("not_found", `unknown agent '${agent}' (no schedules configured)`)
    if (!specs.some((s) => s.name === schedule)) {
      return yield* refuse("not_found", `unknown schedule '${schedule}' on agent '${agent}'`)
    }
  })

/** Next fire time strictly after `nowMs`, in micros; null if it never fires again. */
const nextAt = (calendar: string, nowMs: number): Messages.Micros | null => {
  const parsed = Calendar.parse(calendar)
  if (Either.isLeft(parsed)) return null
  const next = Calendar.next(parsed.right, nowMs)
  return next === undefined ? null : Messages.Micros.make(next * 1000)
}

const scheduleRows = (agent: string | undefined) =>
  Effect.gen(function*() {
    const schedules = yield* Schedules
    const registry = yield* Registry
    const connected = new Set((yield* registry.list).map((c) => c.name))
    const table: ReadonlyMap<string, ReadonlyArray<Messages.ScheduleSpec>> = agent === undefined
      ? yield* schedules.all
      : new Map([[agent, yield* schedules.forAgent(agent)]])
    if (agent !== undefined && table.get(agent)!.length === 0 && !connected.has(agent)) {
      return yield* refuse("not_found", `unknown agent '${agent}'`)
    }
    const nowMs = yield* Clock.currentTimeMillis
    const rows: Array<Messages.ScheduleRow> = []
    for (const name of [...table.keys()].sort()) {
      for (const spec of table.get(name)!) {
        const at = nextAt(spec.calendar, nowMs)
        if (at === null && Either.isLeft(Calendar.parse(spec.calendar))) {
          yield* Effect.logWarning(`schedule ${name}/${spec.name}: stored calendar '${spec.calendar}' does not parse`)
        }
        rows.push(
          new Messages.ScheduleRow({
            agent: name,
            name: spec.name,
            onCalendar: spec.onCalendar,
            calendar: spec.calendar,
            cmds: spec.cmds,
            paused: spec.paused,
            connected: connected.has(name),
            nextAt: at
          })
        )
      }
    }
    return rows
  })

// ---------------------------------------------------------------------------------------------
// tail
// ---------------------------------------------------------------------------------------------

type TailRequest = typeof Messages.TailRequest.Type

type TailEvent = { readonly _tag: "Batch"; readonly batch: IngestedBatch } | { readonly _tag: "Tick" }

type TailState =
  /** Follow mode, no run yet: waiting for its RunStarted. */
  | { readonly _tag: "Waiting" }
  /**
   * Paging through the stored lines after `after`, a page per step (a follower far behind never
   * reads them all at once); `end`: the run is over, finish with the done chunk.
   */
  | { readonly _tag: "Reading"; readonly run: RunRow; readonly after: number; readonly first: boolean; readonly end: boolean }
  /** Live: lines come from Ingested batches. */
  | {
    readonly _tag: "Following"
    readonly run: RunRow
    readonly after: number
    readonly exits: ReadonlyMap<string, number | null>
  }
  | { readonly _tag: "Done" }

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
    if (current.length > 0 && (current.length >= TAIL_PAGE_LINES || bytes + size > FRAME_BYTES)) flush()
    current.push(line)
    bytes += size
  }
  if (current.length > 0) flush()
  return out
}

const doneChunk = (id: number, run: RunRow): CliResponse => ({ _tag: "TailChunk", id, run, lines: [], done: true })

const isStartOf = (request: TailRequest, batch: IngestedBatch, record: AgentRecord): boolean =>
  record._tag === "RunStarted" &&
  (request.runId !== undefined
    ? record.runId === request.runId
    : batch.agent === request.agent && record.schedule === request.schedule)

/**
 * `tail`: the stored lines of one run, then (with `follow`) its live lines until it ends. Ends
 * with a `done` chunk carrying the run row (final when following).
 *
 * Following subscribes to `Ingested` before the first read, so a batch committed between the
 * read and the subscription cannot be missed; lines are de-duplicated by `lineSeq`. A gap in
 * `lineSeq` (a dropped event) is filled from the Store, and a periodic re-read notices an end that
 * no record announces (the run marked lost, or deleted).
 */
const tail = (request: TailRequest): Stream.Stream<CliResponse, Refusal, HandlerServices> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const id = request.id
    const hasTarget = request.agent !== undefined && request.schedule !== undefined
    if (request.runId === undefined && !hasTarget) {
      return yield* refuse("bad_request", "tail needs a run id, or an agent and a schedule")
    }
    const store = yield* Store
    const ingested = yield* Ingested
    const events = request.follow
      ? yield* Stream.toPull(
        Stream.merge(
          Stream.fromQueue(yield* PubSub.subscribe(ingested)).pipe(
            Stream.map((batch): TailEvent => ({ _tag: "Batch", batch }))
          ),
          Stream.tick(TAIL_POLL).pipe(Stream.drop(1), Stream.as<TailEvent>({ _tag: "Tick" }))
        )
      ).pipe(Effect.map(Effect.catchAll(() => refuse("internal", "server is shutting down"))))
      : Effect.succeed(Chunk.empty<TailEvent>())

    const lookup = request.runId !== undefined
      ? store.getRun(request.runId)
      : store.latestRun(request.agent!, request.schedule!)
    const found = yield* fromStore(lookup)
    if (Option.isNone(found) && !request.follow) {
      return yield* refuse(
        "not_found",
        request.runId !== undefined
          ? `unknown run ${request.runId}`
          : `no runs of schedule '${request.schedule}' on agent '${request.agent}'`
      )
    }

    const step = (state: TailState) =>
      Effect.gen(function*() {
        switch (state._tag) {
          case "Done":
            return Option.none()
          case "Waiting": {
            let started: string | undefined
            let tick = false
            for (const ev of yield* events) {
              if (ev._tag === "Tick") tick = true
              else {
                for (const r of ev.batch.records) if (isStartOf(request, ev.batch, r)) started ??= r.runId
              }
            }
            // The event is only a hint; the Store is the truth (the batch committed before it was published).
            const run = started !== undefined
              ? yield* fromStore(store.getRun(started))
              : tick
              ? yield* fromStore(lookup)
              : Option.none<RunRow>()
            const next: TailState = Option.isSome(run)
              ? { _tag: "Reading", run: run.value, after: -1, first: true, end: false }
              : state
            return Option.some([Chunk.empty<CliResponse>(), next] as const)
          }
          case "Reading": {
            const { after, first, run } = state
            const page = yield* fromStore(store.runLines(run.runId, after, TAIL_PAGE_LINES))
            const last = page.length > 0 ? page[page.length - 1]!.lineSeq : after
            const chunks = toChunks(id, page, first ? run : null)
            if (page.length === TAIL_PAGE_LINES) {
              const more: TailState = { ...state, after: last, first: false }
              return Option.some([Chunk.fromIterable(chunks), more] as const)
            }
            if (state.end || !request.follow || isFinal(run.state)) {
              return Option.some([Chunk.fromIterable([...chunks, doneChunk(id, run)]), { _tag: "Done" }] as const)
            }
            // Tell the client which run it follows even before its first line.
            const head = first && chunks.length === 0
              ? [{ _tag: "TailChunk", id, run, lines: [], done: false } satisfies CliResponse]
              : chunks
            return Option.some(
              [Chunk.fromIterable(head), { _tag: "Following", run, after: last, exits: new Map() }] as const
            )
          }
          case "Following": {
            const { run } = state
            let after = state.after
            const exits = new Map(state.exits)
            const fresh: Array<LineRow> = []
            let gap = false
            let finished = false
            let tick = false
            for (const ev of yield* events) {
              if (ev._tag === "Tick") {
                tick = true
                continue
              }
              if (ev.batch.agent !== run.agent) continue
              for (const r of ev.batch.records) {
                if (r.runId !== run.runId) continue
                switch (r._tag) {
                  case "CommandExited":
                    exits.set(r.cmdUuid, r.exitCode)
                    break
                  case "RunFinished":
                    finished = true
                    break
                  case "OutputLine": {
                    if (gap || r.lineSeq <= after) break
                    if (r.lineSeq !== after + 1) {
                      gap = true
                      break
                    }
                    after = r.lineSeq
                    fresh.push(
                      new Messages.LineRow({
                        runId: r.runId,
                        agent: run.agent,
                        schedule: run.schedule,
                        cmdUuid: r.cmdUuid,
                        lineSeq: r.lineSeq,
                        stream: r.stream,
                        ts: r.ts,
                        data: r.data,
                        continuation: r.continuation,
                        exitCode: exits.get(r.cmdUuid) ?? null,
                        runState: "running"
                      })
                    )
                    break
                  }
                }
              }
            }
            let latest = Option.none<RunRow>()
            if (finished || tick) {
              latest = yield* fromStore(store.getRun(run.runId))
              finished ||= Option.isNone(latest) || isFinal(latest.value.state)
            }
            const chunks = Chunk.fromIterable(toChunks(id, fresh, null))
            // What the Store holds beyond the live lines (a gap, or the rest of a run that ended)
            // is read page by page; then the done chunk with the current row, or live again.
            if (finished) {
              const row = Option.getOrElse(latest, () => run)
              return Option.some([chunks, { _tag: "Reading", run: row, after, first: false, end: true }] as const)
            }
            if (gap) return Option.some([chunks, { _tag: "Reading", run, after, first: false, end: false }] as const)
            return Option.some([chunks, { _tag: "Following", run, after, exits }] as const)
          }
        }
      })

    const initial: TailState = Option.isSome(found)
      ? { _tag: "Reading", run: found.value, after: -1, first: true, end: false }
      : { _tag: "Waiting" }
    return Stream.unfoldChunkEffect(initial, step)
  }))
