/**
 * bartos' HTTP API (`/v1/api/…`), declared with `@effect/platform`'s `HttpApi`: every path,
 * parameter, body, answer and error is a Schema here, the handlers (`Web.ts`) are type-checked
 * against it, and `/v1/api/openapi.json` is generated from it, so the document cannot drift from
 * the code. The web console (packages/console) uses the same API and imports these types only.
 *
 * Auth (the `Authenticated` middleware, `Web.ts`): `Authorization: Bearer <api_key | admin_key>`,
 * or the `barto_session` cookie from `POST /v1/api/session` plus an `X-CSRF-Token` header on every
 * action. Instants are microseconds since the Unix epoch (UTC), as on the other links.
 */
import * as Messages from "@barto/domain/Messages"
import { ClientInfo, LineRow, Micros, RunRow } from "@barto/domain/Messages"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Context from "effect/Context"
import * as Schema from "effect/Schema"

export const SESSION_COOKIE = "barto_session"
export const CSRF_HEADER = "x-csrf-token"

// ---------------------------------------------------------------------------------------------
// Errors (Schema, with their HTTP status)
// ---------------------------------------------------------------------------------------------

export class BadRequest extends Schema.TaggedError<BadRequest>()(
  "BadRequest",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 400 })
) {}
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401 })
) {}
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 403 })
) {}
export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}
/** The agent is not connected (run now). */
export class Conflict extends Schema.TaggedError<Conflict>()(
  "Conflict",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}
export class TooManyRequests extends Schema.TaggedError<TooManyRequests>()("TooManyRequests", {
  message: Schema.String,
  retryAfterSecs: Schema.Int
}, HttpApiSchema.annotations({ status: 429 })) {}
export class ServerError extends Schema.TaggedError<ServerError>()(
  "ServerError",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {}

/** An invalid calendar expression, pointing at the offending text. */
export class CalendarError extends Schema.TaggedError<CalendarError>()("CalendarError", {
  message: Schema.String,
  field: Schema.String,
  text: Schema.String,
  /** 0-based index of `text` in the expression (UTF-16 code units). */
  position: Schema.Int,
  reason: Schema.String
}, HttpApiSchema.annotations({ status: 400 })) {}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

export const Role = Schema.Literal("read", "admin")
export type Role = typeof Role.Type

/** Who is calling, as the middleware established it. */
export interface CallerShape {
  readonly role: Role
  /** `open`: no api key is configured, so reads need no credential (admin: loopback only). */
  readonly via: "bearer" | "cookie" | "open"
}
export class Caller extends Context.Tag("@barto/server/Api/Caller")<Caller, CallerShape>() {}

export class Authenticated extends HttpApiMiddleware.Tag<Authenticated>()("Authenticated", {
  provides: Caller,
  failure: Schema.Union(Unauthorized, Forbidden),
  security: {
    bearer: HttpApiSecurity.bearer,
    session: HttpApiSecurity.apiKey({ key: SESSION_COOKIE, in: "cookie" })
  }
}) {}

export const SessionView = Schema.Struct({
  /** `none`: a credential is needed to read anything. */
  role: Schema.Literal("none", "read", "admin"),
  via: Schema.Literal("bearer", "cookie", "open", "none"),
  /** Send back as `X-CSRF-Token` on every action made with the session cookie. */
  csrfToken: Schema.NullOr(Schema.String),
  expiresAt: Schema.NullOr(Micros),
  keys: Schema.Struct({ api: Schema.Boolean, admin: Schema.Boolean }),
  /** What the console tells the operator about access (e.g. "admin from loopback only"). */
  note: Schema.String
})
export type SessionView = typeof SessionView.Type

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

const Text = Schema.NullOr(Schema.String)

export const AgentView = Schema.Struct({
  name: Schema.String,
  online: Schema.Boolean,
  ip: Text,
  connectedAt: Schema.NullOr(Micros),
  firstSeenAt: Schema.NullOr(Micros),
  lastSeenAt: Schema.NullOr(Micros),
  info: Schema.NullOr(ClientInfo),
  schedules: Schema.Int
})
export type AgentView = typeof AgentView.Type

export const ScheduleView = Schema.Struct({
  agent: Schema.String,
  name: Schema.String,
  onCalendar: Schema.String,
  /** Normalised, `R` resolved. */
  calendar: Schema.String,
  zone: Schema.String,
  cmds: Schema.Array(Schema.String),
  paused: Schema.Boolean,
  connected: Schema.Boolean,
  nextAt: Schema.NullOr(Micros),
  lastRun: Schema.NullOr(RunRow),
  /** States of the most recent runs, newest first. */
  recent: Schema.Array(Schema.String)
})
export type ScheduleView = typeof ScheduleView.Type

export const SchedulesPage = Schema.Struct({
  total: Schema.Int,
  offset: Schema.Int,
  limit: Schema.Int,
  items: Schema.Array(ScheduleView)
})
export type SchedulesPage = typeof SchedulesPage.Type

export const RunsPage = Schema.Struct({
  runs: Schema.Array(RunRow),
  /** Pass as `cursor` for the next (older) page; null when this page is the last. */
  nextCursor: Schema.NullOr(Schema.String)
})
export type RunsPage = typeof RunsPage.Type

export const CommandView = Schema.Struct({
  cmdUuid: Schema.String,
  index: Schema.Int,
  command: Schema.String,
  startedAt: Schema.NullOr(Micros),
  finishedAt: Schema.NullOr(Micros),
  exitCode: Schema.NullOr(Schema.Int),
  signal: Text
})

export const RunDetail = Schema.Struct({ run: RunRow, commands: Schema.Array(CommandView) })
export type RunDetail = typeof RunDetail.Type

export const OutputPage = Schema.Struct({
  run: RunRow,
  lines: Schema.Array(LineRow),
  /** Pass as `after` for the next page. */
  nextAfter: Schema.Int,
  /** More stored lines follow this page. */
  more: Schema.Boolean
})
export type OutputPage = typeof OutputPage.Type

/** The `barto-cli info` answer, without the CLI link's envelope. */
export const InfoView = Messages.InfoResponse.omit("_tag", "id")
export type InfoView = typeof InfoView.Type

export const AgentDetail = Schema.Struct({
  agent: AgentView,
  schedules: Schema.Array(ScheduleView),
  runs: Schema.Array(RunRow)
})
export type AgentDetail = typeof AgentDetail.Type

export const ScheduleDetail = Schema.Struct({
  schedule: ScheduleView,
  /** Next occurrences after now. */
  upcoming: Schema.Array(Micros),
  /** Recent runs, newest first (durations for the chart). */
  history: Schema.Array(RunRow)
})
export type ScheduleDetail = typeof ScheduleDetail.Type

export const Dashboard = Schema.Struct({
  agents: Schema.Array(AgentView),
  running: Schema.Array(RunRow),
  failures: Schema.Struct({ since: Micros, count: Schema.Int, recent: Schema.Array(RunRow) }),
  schedules: SchedulesPage
})
export type Dashboard = typeof Dashboard.Type

export const CalendarPreview = Schema.Struct({
  expression: Schema.String,
  normalized: Schema.String,
  zone: Schema.String,
  next: Schema.Array(Micros)
})
export type CalendarPreview = typeof CalendarPreview.Type

/** An open incident as the console shows it: the CLI's view plus its latest notification (a reminder included). */
export const AlertIncident = Schema.Struct({
  ...Messages.IncidentView.fields,
  /** When it last notified: the first notification or the latest reminder; null: nobody was told yet. */
  lastNoticeAt: Schema.NullOr(Micros)
})
export type AlertIncident = typeof AlertIncident.Type

/** A recorded alert event (`failed`, `late`, `stalled`, `agent_down`, `recovered`, …). */
export const AlertEvent = Schema.Struct({
  eventId: Schema.String,
  kind: Schema.String,
  agent: Schema.String,
  /** null: the agent itself (agent_down, agent_up). */
  schedule: Text,
  runId: Text,
  at: Micros,
  /** The incident it opened, counted into or closed; null when it only was recorded. */
  incidentId: Text,
  /** One line from the event's detail: its message, or the run's state, exit status and reason. */
  summary: Schema.String
})
export type AlertEvent = typeof AlertEvent.Type

export const AlertsView = Schema.Struct({
  incidents: Schema.Array(AlertIncident),
  /** The newest `limit` events, newest first. */
  events: Schema.Array(AlertEvent),
  /** The newest `limit` deliveries, newest first. */
  deliveries: Schema.Array(Messages.DeliveryView)
})
export type AlertsView = typeof AlertsView.Type

export const MetricsView = Schema.Struct({
  /** Every bartos counter and gauge, summed over its labels (the same names as `/metrics`). */
  totals: Schema.Record({ key: Schema.String, value: Schema.Number })
})

// The actions answer what the CLI link answers, without its envelope.
export const CleanupResult = Messages.CleanupResponse.omit("_tag", "id")
export type CleanupResult = typeof CleanupResult.Type
export const RunNowResult = Messages.RunNowResponse.omit("_tag", "id")
export const CancelResult = Messages.CancelResponse.omit("_tag", "id")
export const PauseResult = Messages.PauseResponse.omit("_tag", "id")

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

const IntParam = (min: number, max: number) => Schema.NumberFromString.pipe(Schema.int(), Schema.between(min, max))

export const RunsParams = Schema.Struct({
  agent: Schema.optional(Schema.String),
  schedule: Schema.optional(Schema.String),
  /** One state, or several separated by commas (`failed,timed_out,lost`). */
  state: Schema.optional(Schema.String),
  /** Scheduled at or after this instant (micros). */
  since: Schema.optional(IntParam(0, Number.MAX_SAFE_INTEGER)),
  limit: Schema.optionalWith(IntParam(1, 1000), { default: () => 50 }),
  cursor: Schema.optional(Schema.String)
})

const AgentScheduleParams = {
  agent: HttpApiSchema.param("agent", Schema.String),
  schedule: HttpApiSchema.param("schedule", Schema.String)
}
const runIdParam = HttpApiSchema.param("runId", Schema.String)

const Zone = Schema.optional(Schema.String)

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

export class SessionGroup extends HttpApiGroup.make("session")
  .add(
    HttpApiEndpoint.get("session", "/session").addSuccess(SessionView)
      .annotate(OpenApi.Description, "Who the caller is (from its bearer key or session cookie) and its CSRF token.")
  )
  .add(
    HttpApiEndpoint.post("login", "/session")
      .setPayload(Schema.Struct({ key: Schema.optional(Schema.String) }))
      .addSuccess(SessionView)
      .addError(Unauthorized)
      .addError(TooManyRequests)
      .annotate(
        OpenApi.Description,
        "Log in with the api or admin key: sets the HttpOnly, SameSite=Strict `barto_session` cookie. " +
          "Without configured keys no key is needed. Rate-limited per client address."
      )
  )
  .add(
    HttpApiEndpoint.del("logout", "/session").addSuccess(SessionView).addError(Forbidden)
      .annotate(OpenApi.Description, "Ends the session of the cookie (needs its X-CSRF-Token).")
  )
  .prefix("/v1/api")
{}

export class ReadGroup extends HttpApiGroup.make("read")
  .add(HttpApiEndpoint.get("info", "/info").addSuccess(InfoView))
  .add(
    HttpApiEndpoint.get("dashboard", "/dashboard")
      .setUrlParams(
        Schema.Struct({
          q: Schema.optional(Schema.String),
          limit: Schema.optionalWith(IntParam(1, 500), { default: () => 50 })
        })
      )
      .addSuccess(Dashboard)
      .annotate(
        OpenApi.Description,
        "Everything the dashboard shows in one answer: agents, running runs, failures of the last 24 h, the first page of schedules."
      )
  )
  .add(HttpApiEndpoint.get("agents", "/agents").addSuccess(Schema.Array(AgentView)))
  .add(
    HttpApiEndpoint.get("agent")`/agents/${HttpApiSchema.param("agent", Schema.String)}`.addSuccess(AgentDetail)
      .addError(NotFound)
  )
  .add(
    HttpApiEndpoint.get("schedules", "/schedules")
      .setUrlParams(Schema.Struct({
        agent: Schema.optional(Schema.String),
        /** Substring of the agent or schedule name, any letter case. */
        q: Schema.optional(Schema.String),
        offset: Schema.optionalWith(IntParam(0, Number.MAX_SAFE_INTEGER), { default: () => 0 }),
        limit: Schema.optionalWith(IntParam(1, 500), { default: () => 50 })
      }))
      .addSuccess(SchedulesPage)
  )
  .add(
    HttpApiEndpoint.get("schedule")`/schedules/${AgentScheduleParams.agent}/${AgentScheduleParams.schedule}`
      .setUrlParams(Schema.Struct({ history: Schema.optionalWith(IntParam(1, 1000), { default: () => 100 }) }))
      .addSuccess(ScheduleDetail)
      .addError(NotFound)
  )
  .add(
    HttpApiEndpoint.get("runs", "/runs").setUrlParams(RunsParams).addSuccess(RunsPage)
      .annotate(OpenApi.Description, "Runs, newest first, with the filters of `barto-cli runs`; page with `cursor`.")
  )
  .add(HttpApiEndpoint.get("run")`/runs/${runIdParam}`.addSuccess(RunDetail).addError(NotFound))
  .add(
    HttpApiEndpoint.get("output")`/runs/${runIdParam}/output`
      .setUrlParams(Schema.Struct({
        after: Schema.optionalWith(IntParam(-1, Number.MAX_SAFE_INTEGER), { default: () => -1 }),
        limit: Schema.optionalWith(IntParam(1, 5000), { default: () => 1000 }),
        follow: Schema.optional(Schema.Literal("0", "1"))
      }))
      .addSuccess(OutputPage)
      .addError(NotFound)
      .annotate(
        OpenApi.Description,
        "A page of the run's output lines after line `after`. With `follow=1` the answer is instead a " +
          "`text/event-stream` (Server-Sent Events): `lines` events (JSON `{run, lines}`, `id` = last lineSeq, " +
          "so a reconnect resumes through Last-Event-ID), `heartbeat` events (JSON `{at, progress, status, message}`, " +
          "no `id`) when the job beats, until one `done` event with the run's final row."
      )
  )
  .add(
    HttpApiEndpoint.get("failures", "/failures")
      .setUrlParams(Schema.Struct({
        since: Schema.optional(IntParam(0, Number.MAX_SAFE_INTEGER)),
        limit: Schema.optionalWith(IntParam(1, 1000), { default: () => 50 }),
        cursor: Schema.optional(Schema.String)
      }))
      .addSuccess(RunsPage)
      .annotate(OpenApi.Description, "Runs that failed, timed out or were lost, newest first (default: the last 24 h).")
  )
  .add(
    HttpApiEndpoint.get("calendar", "/calendar")
      .setUrlParams(Schema.Struct({
        expr: Schema.String,
        zone: Zone,
        count: Schema.optionalWith(IntParam(1, 1000), { default: () => 10 }),
        from: Schema.optional(IntParam(0, Number.MAX_SAFE_INTEGER))
      }))
      .addSuccess(CalendarPreview)
      .addError(CalendarError)
      .annotate(
        OpenApi.Description,
        "Normalises an expression and lists its next occurrences (`zone`: the default zone when the expression names none)."
      )
  )
  .add(HttpApiEndpoint.get("metrics", "/metrics").addSuccess(MetricsView))
  .add(
    HttpApiEndpoint.get("alerts", "/alerts")
      .setUrlParams(Schema.Struct({ limit: Schema.optionalWith(IntParam(1, 1000), { default: () => 20 }) }))
      .addSuccess(AlertsView)
      .annotate(
        OpenApi.Description,
        "Open alert incidents, the newest `limit` events and the newest `limit` notification deliveries with " +
          "their status (as `barto-cli alerts`, plus the events)."
      )
  )
  .addError(NotFound)
  .middleware(Authenticated)
  .prefix("/v1/api")
{}

export class ActionGroup extends HttpApiGroup.make("actions")
  .add(
    HttpApiEndpoint.post("runNow")`/schedules/${AgentScheduleParams.agent}/${AgentScheduleParams.schedule}/run`
      .addSuccess(RunNowResult)
      .addError(NotFound)
      .addError(Conflict)
  )
  .add(
    HttpApiEndpoint.post("pause")`/schedules/${AgentScheduleParams.agent}/${AgentScheduleParams.schedule}/pause`
      .addSuccess(PauseResult)
      .addError(NotFound)
  )
  .add(
    HttpApiEndpoint.post("resume")`/schedules/${AgentScheduleParams.agent}/${AgentScheduleParams.schedule}/resume`
      .addSuccess(PauseResult)
      .addError(NotFound)
  )
  .add(
    HttpApiEndpoint.post("cancel")`/runs/${runIdParam}/cancel`.addSuccess(CancelResult).addError(NotFound).addError(
      BadRequest
    )
  )
  .add(
    HttpApiEndpoint.post("cleanup", "/cleanup")
      .setPayload(Schema.Struct({ before: Schema.optional(Micros), dryRun: Schema.Boolean }))
      .addSuccess(CleanupResult)
      .annotate(
        OpenApi.Description,
        "Deletes (or with dryRun counts) runs finished before `before` (default: bartos' local midnight)."
      )
  )
  .middleware(Authenticated)
  .addError(Forbidden)
  .addError(NotFound)
  .addError(Conflict)
  .prefix("/v1/api")
  .annotate(OpenApi.Description, "Admin only. With the session cookie, every action needs the X-CSRF-Token header.")
{}

export class Api extends HttpApi.make("barto")
  .add(SessionGroup)
  .add(ReadGroup)
  .add(ActionGroup)
  .addError(BadRequest)
  .addError(ServerError)
  .annotate(OpenApi.Title, "bartos HTTP API")
  .annotate(
    OpenApi.Description,
    "The API of bartos' web console, for scripts too. Instants are microseconds since the Unix epoch (UTC)."
  )
{}
