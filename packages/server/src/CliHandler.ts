/**
 * Answers every CLI request (D10). `handle` turns one request into a stream of responses: one
 * response for most requests, a series of `TailChunk`s for `tail`. Whatever goes wrong becomes a
 * `CliError` carrying the request id: the stream itself never fails and never ends silently.
 */
import * as Messages from "@barto/domain/Messages"
import type { CliRequest, CliResponse, LineRow, RunRow } from "@barto/domain/Messages"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { Ingested } from "./Events.js"
import * as Operations from "./Operations.js"
import { fromStore, Refusal, refuse } from "./Operations.js"
import { Registry } from "./Registry.js"
import type { Schedules } from "./Schedules.js"
import { ServerInfo } from "./ServerInfo.js"
import { Store } from "./Store.js"
import * as Updates from "./Updates.js"

export interface HandlerContext {
  /** The CLI presented the admin key (checked by the session). */
  readonly admin: boolean
}

export type HandlerServices = Store | Registry | Schedules | Ingested | ServerInfo

export type CliErrorCode = typeof Messages.CliError.Type["code"]

export { MAX_RUNS, TAIL_PAGE_LINES, TAIL_POLL } from "./Operations.js"
/** Upper bound of the line data in one TailChunk, well under the default 1 MiB frame limit. */
export const TAIL_CHUNK_BYTES = 256 * 1024

const ADMIN_ONLY: Partial<Record<CliRequest["_tag"], string>> = {
  CleanupRequest: "cleanup",
  RunNowRequest: "run",
  CancelRequest: "cancel",
  PauseRequest: "pause",
  ResumeRequest: "resume"
}

/**
 * Answers one request. Requires the services of a running bartos; the stream never fails.
 */
export const handle = (
  request: CliRequest,
  ctx: HandlerContext
): Stream.Stream<CliResponse, never, HandlerServices> => {
  const id = request.id
  const adminName = ADMIN_ONLY[request._tag]
  const answer: Stream.Stream<CliResponse, Refusal, HandlerServices> = adminName !== undefined && !ctx.admin
    ? Stream.fail(new Refusal({ code: "forbidden", message: `${adminName} requires the admin key` }))
    : request._tag === "TailRequest"
    ? tail(request)
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
  request: Exclude<CliRequest, { readonly _tag: "TailRequest" }>
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
      case "ListRequest":
        return { _tag: "LinesResponse", id, lines: yield* fromStore(store.listLines(request.agent, request.cmd)) }
      case "CmdRequest":
        return { _tag: "CmdResponse", id, byAgent: yield* fromStore(store.cmdLines(request.cmd)) }
      case "FailedRequest":
        return { _tag: "FailedResponse", id, failed: yield* fromStore(store.failed()) }
      case "UpdatesRequest": {
        const lines = yield* fromStore(store.successfulLines(request.agent))
        return { _tag: "UpdatesResponse", id, result: Updates.parse(request.kind, lines) }
      }
      case "QueryRequest": {
        const info = yield* ServerInfo
        const result = yield* store.query(request.sql, { rowCap: info.queryRowCap, timeoutMs: info.queryTimeoutMs })
          .pipe(
            // The Store refuses writes, statements the database rejects and timeouts alike.
            Effect.catchTags({
              QueryRefused: (e) => refuse("refused", e.reason),
              StoreError: (e) => refuse("internal", `database error: ${e.message}`)
            })
          )
        return { _tag: "QueryResponse", id, columns: result.columns, rows: result.rows, truncated: result.truncated }
      }
      case "RunsRequest": {
        const runs = yield* Operations.runs({
          ...(request.agent !== undefined ? { agent: request.agent } : {}),
          ...(request.schedule !== undefined ? { schedule: request.schedule } : {}),
          ...(request.state !== undefined ? { state: request.state } : {}),
          ...(request.since !== undefined ? { since: request.since } : {}),
          limit: request.limit
        })
        return { _tag: "RunsResponse", id, runs }
      }
      case "SchedulesRequest":
        return { _tag: "SchedulesResponse", id, schedules: yield* Operations.scheduleRows(request.agent) }
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
// tail
// ---------------------------------------------------------------------------------------------

/** Splits lines into TailChunks of at most TAIL_PAGE_LINES lines and about TAIL_CHUNK_BYTES bytes. */
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
    const size = Buffer.byteLength(line.data, "utf8") + 200
    if (current.length > 0 && (current.length >= Operations.TAIL_PAGE_LINES || bytes + size > TAIL_CHUNK_BYTES)) flush()
    current.push(line)
    bytes += size
  }
  if (current.length > 0) flush()
  return out
}

/** `tail` as TailChunks: each part of `Operations.tail` cut to fit a frame. */
const tail = (request: typeof Messages.TailRequest.Type): Stream.Stream<CliResponse, Refusal, HandlerServices> =>
  Operations.tail(request).pipe(
    Stream.mapConcat((part): Array<CliResponse> =>
      part._tag === "Done"
        ? [{ _tag: "TailChunk", id: request.id, run: part.run, lines: [], done: true }]
        : part.lines.length === 0
        ? [{ _tag: "TailChunk", id: request.id, run: part.run, lines: [], done: false }]
        : toChunks(request.id, part.lines, part.run)
    )
  )
