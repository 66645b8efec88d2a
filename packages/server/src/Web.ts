/**
 * The HTTP side of the console: the handlers of `Api.ts`, the auth middleware, and the static
 * console assets, mounted on bartos' own listeners by `Hub` (same TLS/mTLS, same ports).
 *
 * Mounting: `HttpApiBuilder.httpApp` turned into a Node `(req, res)` handler by
 * `@effect/platform-node`'s `NodeHttpServer.makeHandler`, which adapts Node's request and
 * response objects directly (no Web `Request`/`Response` copy as `toWebHandler` would need), so
 * Hub keeps its raw listeners (it needs `ws` options, request headers and the peer certificate
 * for the worker link) and only hands `/v1/api/…` and the console paths to it. Measured on this
 * machine (2 cores, loopback, 2,000 sequential `fetch`es): `GET /healthz` (raw Node) 1.20 ms,
 * `GET /v1/api/info` through the adapter, routing, auth and Schema encoding 1.27 ms per request:
 * the Effect layer costs about 0.07 ms a request.
 *
 * Every reply carries `X-Content-Type-Options: nosniff`; API replies are `no-store`. The console
 * page has a strict Content-Security-Policy (scripts and styles from our origin only, nothing
 * inline) and its hashed assets are immutable for a year.
 */
import * as Messages from "@barto/domain/Messages"
import type { RunRow, RunState } from "@barto/domain/Messages"
import * as Calendar from "@barto/scheduler/Calendar"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as IncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import type * as http from "node:http"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Api from "./Api.js"
import type { Ingested } from "./Events.js"
import * as AlertViews from "./internal/alerts/views.js"
import * as Forwarded from "./internal/forwarded.js"
import * as Auth from "./internal/web/auth.js"
import { Metrics } from "./Metrics.js"
import * as Operations from "./Operations.js"
import { Registry } from "./Registry.js"
import { Schedules } from "./Schedules.js"
import { ServerInfo, type ServerInfoShape } from "./ServerInfo.js"
import { recentKey, type RecentRuns, Store } from "./Store.js"

export interface Options {
  readonly apiKey: Redacted.Redacted<string> | undefined
  readonly adminKey: Redacted.Redacted<string> | undefined
  /** Serve the console page and assets (the API is served either way). */
  readonly consoleEnabled: boolean
  readonly sessionTtlSecs: number
  /** Where the built console lives (default: packages/console/dist beside this package). */
  readonly consoleDir?: string | undefined
  /** The facts `info` reports; Hub completes them once it listens. */
  readonly serverInfo: Effect.Effect<ServerInfoShape>
  /** The client behind trusted proxies (`internal/forwarded.ts`); default: the peer. */
  readonly clientAddress?: Forwarded.ClientAddress | undefined
}

export type Requirements = Store | Registry | Schedules | Ingested | Metrics

/** A Node request handler that answers what it recognises and returns false for anything else. */
export type NodeHandler = (req: http.IncomingMessage, res: http.ServerResponse) => boolean

/** The largest request body the API reads (a login or a cleanup is a few dozen bytes). */
export const MAX_BODY_BYTES = 64 * 1024
/** States the failures page and the dashboard count as failures. */
export const FAILED_STATES: ReadonlyArray<RunState> = ["failed", "timed_out", "interrupted", "lost"]
/** Run states shown per schedule in the dashboard's strip. */
export const RECENT_RUNS = 12
const DAY_MICROS = 86_400_000_000
/** Comment lines keep an idle event stream open through proxies and notice a gone client. */
const SSE_HEARTBEAT = "15 seconds"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

type ActionError = Api.BadRequest | Api.NotFound | Api.Conflict | Api.Forbidden | Api.ServerError

/** A Refusal as the HTTP error of the same meaning; our own failures are logged and stay vague. */
const fromRefusal = (r: Operations.Refusal): Effect.Effect<never, ActionError> => {
  switch (r.code) {
    case "bad_request":
    case "refused":
      return Effect.fail(new Api.BadRequest({ message: r.message }))
    case "not_found":
      return Effect.fail(new Api.NotFound({ message: r.message }))
    case "not_connected":
      return Effect.fail(new Api.Conflict({ message: r.message }))
    case "forbidden":
    case "unauthorized":
      return Effect.fail(new Api.Forbidden({ message: r.message }))
    case "timeout":
    case "internal":
      return Effect.logError(`API request failed: ${r.message}`).pipe(
        Effect.zipRight(Effect.fail(new Api.ServerError({ message: r.message })))
      )
  }
}

/** Reads cannot be refused for a connection or a role: only bad input, unknown names or our own errors. */
const readFailure = (r: Operations.Refusal) =>
  fromRefusal(r).pipe(
    Effect.catchTags({
      Conflict: (e) => Effect.fail(new Api.ServerError({ message: e.message })),
      Forbidden: (e) => Effect.fail(new Api.ServerError({ message: e.message }))
    })
  )

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

const cursorOf = (run: RunRow) => Buffer.from(`${run.scheduledAt}:${run.runId}`, "utf8").toString("base64url")

const parseCursor = (cursor: string | undefined) => {
  if (cursor === undefined) return Effect.succeed(undefined)
  const text = Buffer.from(cursor, "base64url").toString("utf8")
  const colon = text.indexOf(":")
  const at = Number(text.slice(0, colon))
  return colon > 0 && Number.isSafeInteger(at)
    ? Effect.succeed({ scheduledAt: Messages.Micros.make(at), runId: text.slice(colon + 1) })
    : Effect.fail(new Api.BadRequest({ message: "invalid cursor" }))
}

const parseStates = (text: string | undefined) => {
  if (text === undefined || text === "") return Effect.succeed(undefined)
  const states = text.split(",").map((s) => s.trim())
  const bad = states.find((s) => !Schema.is(Messages.RunState)(s))
  return bad === undefined
    ? Effect.succeed(states as Array<RunState>)
    : Effect.fail(
      new Api.BadRequest({ message: `unknown state '${bad}' (one of ${Messages.RunState.literals.join(", ")})` })
    )
}

const runsPage = (filter: Parameters<typeof Operations.runs>[0]) =>
  Operations.runs({ ...filter, limit: filter.limit + 1 }).pipe(
    Effect.map((rows): Api.RunsPage => {
      const more = rows.length > filter.limit
      const runs = more ? rows.slice(0, filter.limit) : rows
      return { runs, nextCursor: more ? cursorOf(runs[runs.length - 1]!) : null }
    })
  )

const agentViews = Effect.gen(function*() {
  const store = yield* Store
  const registry = yield* Registry
  const schedules = yield* Schedules
  const connected = new Map((yield* registry.list).map((c) => [c.name, c]))
  const known = new Map((yield* Operations.fromStore(store.agents())).map((a) => [a.name, a]))
  const table = yield* schedules.all
  const names = new Set([
    ...connected.keys(),
    ...known.keys(),
    ...[...table].filter(([, s]) => s.length > 0).map(([a]) => a)
  ])
  return [...names].sort().map((name): Api.AgentView => {
    const live = connected.get(name)
    const stored = known.get(name)
    const info = live?.info ??
      (stored?.agentVersion != null
        ? new Messages.ClientInfo({
          osName: stored.osName ?? "",
          hostname: stored.hostname ?? "",
          osVersion: stored.osVersion ?? "",
          kernel: stored.kernel ?? "",
          agentVersion: stored.agentVersion
        })
        : null)
    return {
      name,
      online: live !== undefined,
      ip: live?.ip ?? stored?.lastIp ?? null,
      connectedAt: live?.connectedAt ?? null,
      firstSeenAt: stored?.firstSeenAt ?? null,
      lastSeenAt: live !== undefined ? null : stored?.lastSeenAt ?? null,
      info,
      schedules: table.get(name)?.length ?? 0
    }
  })
})

/** Schedules sorted by agent then name, filtered, one page of them with next/last/recent. */
const schedulesPage = (params: {
  readonly agent?: string | undefined
  readonly q?: string | undefined
  readonly offset: number
  readonly limit: number
}) =>
  Effect.gen(function*() {
    const schedules = yield* Schedules
    const registry = yield* Registry
    const table = yield* schedules.all
    const connected = new Set((yield* registry.list).map((c) => c.name))
    const needle = params.q?.trim().toLowerCase() ?? ""
    const all: Array<readonly [string, Messages.ScheduleSpec]> = []
    for (const agent of [...table.keys()].sort()) {
      if (params.agent !== undefined && agent !== params.agent) continue
      for (const spec of table.get(agent)!) {
        if (needle !== "" && !agent.toLowerCase().includes(needle) && !spec.name.toLowerCase().includes(needle)) {
          continue
        }
        all.push([agent, spec])
      }
    }
    const page = all.slice(params.offset, params.offset + params.limit)
    const store = yield* Store
    const recent = yield* Operations.fromStore(
      store.recentRuns(page.map(([agent, spec]) => ({ agent, schedule: spec.name })), RECENT_RUNS)
    )
    const nowMs = yield* Clock.currentTimeMillis
    const items = page.map(([agent, spec]) =>
      scheduleView(agent, spec, connected.has(agent), recent.get(recentKey(agent, spec.name)), nowMs)
    )
    return { total: all.length, offset: params.offset, limit: params.limit, items }
  })

/**
 * Parsed calendars by their normalised text: a page of 50 schedules would otherwise parse 50
 * expressions per request. Bounded; cleared whole when full (tables change rarely).
 */
const parsedCalendars = new Map<string, Either.Either<Calendar.Calendar, Calendar.CalendarParseError>>()
const parseCached = (calendar: string) => {
  let parsed = parsedCalendars.get(calendar)
  if (parsed === undefined) {
    if (parsedCalendars.size >= 50_000) parsedCalendars.clear()
    parsed = Calendar.parse(calendar)
    parsedCalendars.set(calendar, parsed)
  }
  return parsed
}

const scheduleView = (
  agent: string,
  spec: Messages.ScheduleSpec,
  connected: boolean,
  recent: RecentRuns | undefined,
  nowMs: number
): Api.ScheduleView => {
  const parsed = parseCached(spec.calendar)
  return {
    agent,
    name: spec.name,
    onCalendar: spec.onCalendar,
    calendar: spec.calendar,
    zone: Either.isRight(parsed) ? parsed.right.tz : "UTC",
    cmds: spec.cmds,
    paused: spec.paused,
    connected,
    nextAt: Either.isRight(parsed) ? nextOf(parsed.right, nowMs) : null,
    lastRun: recent?.last ?? null,
    recent: recent?.states ?? []
  }
}

const nextOf = (cal: Calendar.Calendar, nowMs: number) => {
  const next = Calendar.next(cal, nowMs)
  return next === undefined ? null : Messages.Micros.make(next * 1000)
}

const findSchedule = (agent: string, schedule: string) =>
  Effect.gen(function*() {
    const specs = yield* (yield* Schedules).forAgent(agent)
    const spec = specs.find((s) => s.name === schedule)
    if (spec === undefined) {
      return yield* new Api.NotFound({ message: `unknown schedule '${schedule}' on agent '${agent}'` })
    }
    const online = Option.isSome(yield* (yield* Registry).get(agent))
    const store = yield* Store
    const recent = yield* Operations.fromStore(store.recentRuns([{ agent, schedule }], RECENT_RUNS))
    return scheduleView(agent, spec, online, recent.get(recentKey(agent, schedule)), yield* Clock.currentTimeMillis)
  })

/** The `lines` event data: Schema-encoded, so one JSON line per event whatever the output holds. */
const encodeLinesEvent = Schema.encodeSync(
  Schema.parseJson(Schema.Struct({ run: Schema.NullOr(Messages.RunRow), lines: Schema.Array(Messages.LineRow) }))
)
const encodeDoneEvent = Schema.encodeSync(Schema.parseJson(Schema.Struct({ run: Messages.RunRow })))
const encodeBeatEvent = Schema.encodeSync(Schema.parseJson(Messages.RunHeartbeat))

/**
 * `tail -f` as Server-Sent Events: `lines` events with `id` = the last lineSeq, `heartbeat` events
 * (no id: a reconnect resumes by lines only) when the job beats, then `done`.
 */
const followOutput = (runId: string, after: number) =>
  Effect.gen(function*() {
    const context = yield* Effect.context<Store | Ingested>()
    const encoder = new TextEncoder()
    let last = after
    const events = Operations.tail({ runId, follow: true, after }).pipe(
      Stream.map((part) => {
        if (part._tag === "Done") return `event: done\ndata: ${encodeDoneEvent({ run: part.run })}\n\n`
        if (part._tag === "Beat") return `event: heartbeat\ndata: ${encodeBeatEvent(part.heartbeat)}\n\n`
        if (part.lines.length > 0) last = part.lines[part.lines.length - 1]!.lineSeq
        return `id: ${last}\nevent: lines\ndata: ${encodeLinesEvent({ run: part.run, lines: part.lines })}\n\n`
      }),
      Stream.catchAll((e) => Stream.succeed(`event: error\ndata: ${JSON.stringify({ message: e.message })}\n\n`)),
      Stream.merge(Stream.tick(SSE_HEARTBEAT).pipe(Stream.drop(1), Stream.as(": keepalive\n\n")), {
        haltStrategy: "left"
      }),
      Stream.map((text) => encoder.encode(text)),
      Stream.provideContext(context)
    )
    return HttpServerResponse.stream(events, {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
    })
  })

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

const requireAdmin = Effect.gen(function*() {
  const caller = yield* Api.Caller
  if (caller.role !== "admin") {
    return yield* new Api.Forbidden({
      message: "this action needs the admin key (or, without one configured, a loopback connection)"
    })
  }
})

const isTls = (req: HttpServerRequest.HttpServerRequest) =>
  (req.source as { readonly socket?: { readonly encrypted?: boolean } }).socket?.encrypted === true

const bearerOf = (req: HttpServerRequest.HttpServerRequest) => {
  const header = req.headers.authorization
  if (header === undefined) return undefined
  return header.startsWith("Bearer ") ? header.slice("Bearer ".length) : ""
}

const makeApiHandler = (options: Options) =>
  Effect.gen(function*() {
    const keys: Auth.Keys = { apiKey: options.apiKey, adminKey: options.adminKey }
    const clientAddress = options.clientAddress ?? Forwarded.make([])
    // The peer, or the client behind a trusted proxy: what loopback admin and the login limit see.
    const peerIp = (req: HttpServerRequest.HttpServerRequest) =>
      clientAddress(Option.getOrElse(req.remoteAddress, () => "unknown"), req.headers)
    const sessions = Auth.makeSessions()
    const logins = Auth.makeRateLimiter()
    const ttlMs = Math.round(options.sessionTtlSecs * 1000)
    const note = Auth.accessNote(keys)
    const withInfo = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.flatMap(options.serverInfo, (info) => Effect.provideService(effect, ServerInfo, info))

    /** The caller of any request, or why it is refused. */
    const authenticate = Effect.gen(function*() {
      const req = yield* HttpServerRequest.HttpServerRequest
      const nowMs = yield* Clock.currentTimeMillis
      const bearer = bearerOf(req)
      if (bearer !== undefined) {
        const role = Auth.roleOfKey(keys, bearer)
        if (role !== undefined) return { role, via: "bearer" } satisfies Api.CallerShape
        if (keys.apiKey !== undefined) return yield* new Api.Unauthorized({ message: "invalid bearer key" })
      }
      const cookie = req.cookies[Api.SESSION_COOKIE]
      if (cookie !== undefined && cookie !== "") {
        const session = sessions.get(cookie, nowMs)
        if (session === undefined) return yield* new Api.Unauthorized({ message: "session expired; log in again" })
        if (req.method !== "GET" && req.method !== "HEAD" && req.headers[Api.CSRF_HEADER] !== session.csrf) {
          return yield* new Api.Forbidden({ message: "missing or wrong X-CSRF-Token" })
        }
        return { role: session.role, via: "cookie" } satisfies Api.CallerShape
      }
      const open = Auth.openRole(keys, peerIp(req), req.headers.host)
      if (open === undefined) return yield* new Api.Unauthorized({ message: "a key is required (Bearer, or log in)" })
      if (req.method !== "GET" && req.method !== "HEAD") {
        return yield* new Api.Unauthorized({
          message: "actions need a session (POST /v1/api/session) or a bearer key, never open access"
        })
      }
      return { role: open, via: "open" } satisfies Api.CallerShape
    })

    const AuthLive = Layer.succeed(Api.Authenticated, { bearer: () => authenticate, session: () => authenticate })

    const sessionView = (
      caller: Api.CallerShape | undefined,
      session: Auth.Session | undefined
    ): Api.SessionView => ({
      role: caller?.role ?? "none",
      via: caller?.via ?? "none",
      csrfToken: session?.csrf ?? null,
      expiresAt: session === undefined ? null : Messages.Micros.make(session.expiresAtMs * 1000),
      keys: { api: keys.apiKey !== undefined, admin: keys.adminKey !== undefined },
      note
    })

    const currentSession = Effect.gen(function*() {
      const req = yield* HttpServerRequest.HttpServerRequest
      const cookie = req.cookies[Api.SESSION_COOKIE]
      return cookie === undefined ? undefined : sessions.get(cookie, yield* Clock.currentTimeMillis)
    })

    const SessionLive = HttpApiBuilder.group(Api.Api, "session", (handlers) =>
      handlers
        .handle("session", () =>
          Effect.gen(function*() {
            const caller = yield* Effect.option(authenticate)
            const session = yield* currentSession
            const c = Option.getOrUndefined(caller)
            return sessionView(c, c?.via === "cookie" ? session : undefined)
          }))
        .handle("login", ({ payload }) =>
          Effect.gen(function*() {
            const req = yield* HttpServerRequest.HttpServerRequest
            const nowMs = yield* Clock.currentTimeMillis
            const ip = peerIp(req)
            const wait = logins.blocked(ip, nowMs)
            if (wait !== undefined) {
              yield* Effect.logWarning(`login from ${ip} refused: too many attempts`)
              return yield* new Api.TooManyRequests({ message: "too many login attempts", retryAfterSecs: wait })
            }
            const role = payload.key === undefined || payload.key === ""
              ? Auth.openRole(keys, ip, req.headers.host)
              : Auth.roleOfKey(keys, payload.key)
            if (role === undefined) {
              logins.failed(ip, nowMs)
              yield* Effect.logWarning(`console login from ${ip} refused: wrong or missing key`)
              return yield* new Api.Unauthorized({
                message: payload.key === undefined ? "a key is required" : "wrong key"
              })
            }
            const old = yield* currentSession
            if (old !== undefined) sessions.remove(old.id)
            const session = sessions.create(role, nowMs, ttlMs)
            yield* HttpApiBuilder.securitySetCookie(Api.Authenticated.security.session, session.id, {
              httpOnly: true,
              sameSite: "strict",
              secure: isTls(req),
              path: "/",
              maxAge: `${Math.floor(ttlMs / 1000)} seconds`
            })
            yield* Effect.logInfo(`console login from ${ip}: ${role}`)
            return sessionView({ role, via: "cookie" }, session)
          }))
        .handle("logout", () =>
          Effect.gen(function*() {
            const req = yield* HttpServerRequest.HttpServerRequest
            const session = yield* currentSession
            if (session !== undefined && req.headers[Api.CSRF_HEADER] !== session.csrf) {
              return yield* new Api.Forbidden({ message: "missing or wrong X-CSRF-Token" })
            }
            if (session !== undefined) {
              sessions.remove(session.id)
              yield* HttpApiBuilder.securitySetCookie(Api.Authenticated.security.session, "", {
                httpOnly: true,
                sameSite: "strict",
                secure: isTls(req),
                path: "/",
                maxAge: "0 seconds"
              })
              return sessionView(undefined, undefined)
            }
            return sessionView(Option.getOrUndefined(yield* Effect.option(authenticate)), session)
          })))

    const ReadLive = HttpApiBuilder.group(Api.Api, "read", (handlers) =>
      handlers
        .handle("info", () => withInfo(Operations.info).pipe(Effect.catchAll(readFailure)))
        .handle("dashboard", ({ urlParams }) =>
          Effect.gen(function*() {
            const store = yield* Store
            const since = Messages.Micros.make((yield* Operations.nowMicros) - DAY_MICROS)
            const [agents, running, count, recent, page] = yield* Effect.all([
              agentViews,
              Operations.fromStore(store.runs({ state: "running", limit: 100 })),
              Operations.fromStore(store.countRuns({ states: FAILED_STATES, since })),
              Operations.fromStore(store.runs({ states: FAILED_STATES, since, limit: 10 })),
              schedulesPage({ q: urlParams.q, offset: 0, limit: urlParams.limit })
              // Side by side: on MariaDB each is a statement or two on its own pooled connection,
              // so the answer waits for the slowest, not for the sum (the bench's `console` suite).
            ], { concurrency: "unbounded" })
            return { agents, running, failures: { since, count, recent }, schedules: page }
          }).pipe(Effect.catchTag("Refusal", readFailure)))
        .handle("agents", () => agentViews.pipe(Effect.catchTag("Refusal", readFailure)))
        .handle("alerts", ({ urlParams }) =>
          Effect.flatMap(
            Store,
            (store) => Operations.fromStore(AlertViews.consoleAlerts(store.alerts, urlParams.limit))
          ).pipe(
            Effect.catchTag("Refusal", readFailure)
          ))
        .handle("agent", ({ path }) =>
          Effect.gen(function*() {
            const agent = (yield* agentViews).find((a) => a.name === path.agent)
            if (agent === undefined) return yield* new Api.NotFound({ message: `unknown agent '${path.agent}'` })
            const page = yield* schedulesPage({ agent: path.agent, offset: 0, limit: 1000 })
            const runs = yield* Operations.runs({ agent: path.agent, limit: 50 })
            return { agent, schedules: page.items, runs }
          }).pipe(Effect.catchTag("Refusal", readFailure)))
        .handle("schedules", ({ urlParams }) => schedulesPage(urlParams).pipe(Effect.catchTag("Refusal", readFailure)))
        .handle("schedule", ({ path, urlParams }) =>
          Effect.gen(function*() {
            const schedule = yield* findSchedule(path.agent, path.schedule)
            const parsed = Calendar.parse(schedule.calendar)
            const nowMs = yield* Clock.currentTimeMillis
            const upcoming = Either.isRight(parsed)
              ? Calendar.upcoming(parsed.right, nowMs, 10).map((ms) => Messages.Micros.make(ms * 1000))
              : []
            const history = yield* Operations.runs({
              agent: path.agent,
              schedule: path.schedule,
              limit: urlParams.history
            })
            return { schedule, upcoming, history }
          }).pipe(Effect.catchTag("Refusal", readFailure)))
        .handle("runs", ({ urlParams }) =>
          Effect.gen(function*() {
            const states = yield* parseStates(urlParams.state)
            const before = yield* parseCursor(urlParams.cursor)
            return yield* runsPage({
              ...(urlParams.agent !== undefined ? { agent: urlParams.agent } : {}),
              ...(urlParams.schedule !== undefined ? { schedule: urlParams.schedule } : {}),
              ...(states !== undefined ? { states } : {}),
              ...(urlParams.since !== undefined ? { since: Messages.Micros.make(urlParams.since) } : {}),
              ...(before !== undefined ? { before } : {}),
              limit: urlParams.limit
            })
          }).pipe(Effect.catchTag("Refusal", readFailure)))
        .handle("run", ({ path }) =>
          Effect.gen(function*() {
            const store = yield* Store
            const run = yield* Operations.fromStore(store.getRun(path.runId))
            if (Option.isNone(run)) return yield* new Api.NotFound({ message: `unknown run ${path.runId}` })
            const commands = yield* Operations.fromStore(store.runCommands(path.runId))
            return { run: run.value, commands }
          }).pipe(Effect.catchTag("Refusal", readFailure)))
        .handle("output", ({ path, urlParams }) =>
          Effect.gen(function*() {
            const store = yield* Store
            const req = yield* HttpServerRequest.HttpServerRequest
            const found = yield* Operations.fromStore(store.getRun(path.runId))
            if (Option.isNone(found)) return yield* new Api.NotFound({ message: `unknown run ${path.runId}` })
            if (urlParams.follow === "1") {
              const resume = Number(req.headers["last-event-id"])
              const after = Number.isSafeInteger(resume) ? Math.max(resume, urlParams.after) : urlParams.after
              return yield* followOutput(path.runId, after)
            }
            const lines = yield* Operations.fromStore(store.runLines(path.runId, urlParams.after, urlParams.limit + 1))
            const more = lines.length > urlParams.limit
            const page = more ? lines.slice(0, urlParams.limit) : lines
            return {
              run: found.value,
              lines: page,
              nextAfter: page.length > 0 ? page[page.length - 1]!.lineSeq : urlParams.after,
              more
            }
          }).pipe(Effect.catchTag("Refusal", readFailure)))
        .handle("failures", ({ urlParams }) =>
          Effect.gen(function*() {
            const before = yield* parseCursor(urlParams.cursor)
            const since = urlParams.since ?? (yield* Operations.nowMicros) - DAY_MICROS
            return yield* runsPage({
              states: FAILED_STATES,
              since: Messages.Micros.make(since),
              ...(before !== undefined ? { before } : {}),
              limit: urlParams.limit
            })
          }).pipe(Effect.catchTag("Refusal", readFailure)))
        .handle("calendar", ({ urlParams }) =>
          Effect.gen(function*() {
            if (urlParams.zone !== undefined && Either.isLeft(Calendar.parse(`*-*-* 00:00:00 ${urlParams.zone}`))) {
              return yield* new Api.BadRequest({ message: `unknown time zone '${urlParams.zone}'` })
            }
            const parsed = Calendar.parse(
              urlParams.expr,
              urlParams.zone !== undefined ? { defaultTz: urlParams.zone } : {}
            )
            if (Either.isLeft(parsed)) {
              const e = parsed.left
              return yield* new Api.CalendarError({
                message: e.message,
                field: e.field,
                text: e.text,
                position: e.position,
                reason: e.reason
              })
            }
            const from = urlParams.from !== undefined
              ? Math.floor(urlParams.from / 1000)
              : yield* Clock.currentTimeMillis
            return {
              expression: urlParams.expr,
              normalized: Calendar.print(parsed.right),
              zone: parsed.right.tz,
              next: Calendar.upcoming(parsed.right, from, urlParams.count).map((ms) => Messages.Micros.make(ms * 1000))
            }
          }))
        .handle("metrics", () => totals))

    const ActionLive = HttpApiBuilder.group(Api.Api, "actions", (handlers) =>
      handlers
        .handle("runNow", ({ path }) =>
          requireAdmin.pipe(
            Effect.zipRight(Operations.runNow(path.agent, path.schedule)),
            Effect.catchTag("Refusal", fromRefusal)
          ))
        .handle("pause", ({ path }) =>
          requireAdmin.pipe(
            Effect.zipRight(Operations.setPaused(path.agent, path.schedule, true)),
            Effect.catchTag("Refusal", fromRefusal)
          ))
        .handle("resume", ({ path }) =>
          requireAdmin.pipe(
            Effect.zipRight(Operations.setPaused(path.agent, path.schedule, false)),
            Effect.catchTag("Refusal", fromRefusal)
          ))
        .handle(
          "cancel",
          ({ path }) =>
            requireAdmin.pipe(Effect.zipRight(Operations.cancel(path.runId)), Effect.catchTag("Refusal", fromRefusal))
        )
        .handle("cleanup", ({ payload }) =>
          requireAdmin.pipe(
            Effect.zipRight(Operations.cleanup({ before: payload.before, dryRun: payload.dryRun })),
            Effect.catchTag("Refusal", fromRefusal)
          )))

    const ApiLive = HttpApiBuilder.api(Api.Api).pipe(
      Layer.provide([SessionLive, ReadLive, ActionLive]),
      Layer.provide(AuthLive)
    )
    const OpenApiLive = HttpApiBuilder.middlewareOpenApi({ path: "/v1/api/openapi.json" }).pipe(
      Layer.provide(ApiLive)
    )
    const context = yield* Layer.build(
      Layer.mergeAll(ApiLive, OpenApiLive, HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer)
    )
    const app = yield* HttpApiBuilder.httpApp.pipe(Effect.provide(context))
    return yield* NodeHttpServer.makeHandler(app).pipe(
      Effect.provide(NodeHttpServer.layerContext),
      Effect.provideService(IncomingMessage.MaxBodySize, Option.some(FileSystem.Size(MAX_BODY_BYTES)))
    )
  })

const totals = Effect.flatMap(Metrics, (m) => m.totals).pipe(Effect.map((totals) => ({ totals })))

// ---------------------------------------------------------------------------------------------
// The console's static files
// ---------------------------------------------------------------------------------------------

/** No inline script or style, nothing from another origin, no framing. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join("; ")

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon"
}

interface Asset {
  readonly body: Buffer
  readonly type: string
  readonly etag: string
  readonly immutable: boolean
}

/** packages/console/dist, both from the sources (src/) and from the bundle (dist/). */
export const defaultConsoleDir = () => path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../console/dist")

/** Reads the built console once: it is small (about 100 KiB) and never changes while bartos runs. */
const loadAssets = (dir: string): Map<string, Asset> => {
  const assets = new Map<string, Asset>()
  const walk = (sub: string) => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = path.posix.join(sub, entry.name)
      if (entry.isDirectory()) walk(rel)
      else {
        const body = fs.readFileSync(path.join(dir, rel))
        assets.set(`/${rel}`, {
          body,
          type: TYPES[path.extname(entry.name)] ?? "application/octet-stream",
          etag: `"${body.length.toString(16)}-${fs.statSync(path.join(dir, rel)).mtimeMs.toString(16)}"`,
          // Everything under assets/ is named by its content hash (scripts/build.mjs).
          immutable: rel.startsWith("assets/")
        })
      }
    }
  }
  walk("")
  return assets
}

const serveAsset = (req: http.IncomingMessage, res: http.ServerResponse, asset: Asset) => {
  const headers: Record<string, string> = {
    "Content-Type": asset.type,
    "X-Content-Type-Options": "nosniff",
    ETag: asset.etag,
    "Cache-Control": asset.immutable ? "public, max-age=31536000, immutable" : "no-cache"
  }
  if (asset.type.startsWith("text/html")) {
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
  }
  if (req.headers["if-none-match"] === asset.etag) {
    res.writeHead(304, headers)
    return void res.end()
  }
  res.writeHead(200, { ...headers, "Content-Length": String(asset.body.length) })
  res.end(req.method === "HEAD" ? undefined : asset.body)
}

/**
 * The handler Hub gives every plain HTTP request: `/v1/api/…` to the API, `/` and the console's
 * files to the static server; anything else is left to Hub (false).
 */
export const make = (options: Options): Effect.Effect<NodeHandler, never, Requirements | Scope.Scope> =>
  Effect.gen(function*() {
    const api = yield* makeApiHandler(options)
    let assets = new Map<string, Asset>()
    if (options.consoleEnabled) {
      const dir = options.consoleDir ?? defaultConsoleDir()
      if (fs.existsSync(path.join(dir, "index.html"))) assets = loadAssets(dir)
      else yield* Effect.logWarning(`web console not built (no ${dir}/index.html): run \`npm run build\``)
    }
    return (req, res) => {
      const pathname = (req.url ?? "/").split("?")[0]!
      if (pathname === "/v1/api" || pathname.startsWith("/v1/api/")) {
        res.setHeader("X-Content-Type-Options", "nosniff")
        res.setHeader("Cache-Control", "no-store")
        if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) {
          // Answered here, before the platform starts reading (it would reset the connection).
          const body = JSON.stringify({ _tag: "BadRequest", message: `request body over ${MAX_BODY_BYTES} bytes` })
          res.writeHead(413, {
            "Content-Type": "application/json",
            "Content-Length": Buffer.byteLength(body),
            Connection: "close"
          })
          res.end(body)
          req.resume()
          return true
        }
        api(req, res)
        return true
      }
      if (req.method !== "GET" && req.method !== "HEAD") return false
      const asset = assets.get(pathname === "/" ? "/index.html" : pathname)
      if (asset === undefined) return false
      serveAsset(req, res, asset)
      return true
    }
  })
