/**
 * `barto-cli alerts` (open incidents, recent deliveries with their status) and
 * `barto-cli notify test NAME` (issue 14). The views are rendered here, not in Render.ts: they
 * only concern these two commands.
 */
import type * as Messages from "@barto/domain/Messages"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { ask, print, withSession } from "../internal/remote.js"
import { failure, globals, helpText, invalidValue, remoteOptions, styleOf } from "../internal/root.js"
import * as Render from "../Render.js"

const subject = (agent: string | null, schedule: string | null) =>
  agent === null ? "-" : schedule === null ? agent : `${agent}/${schedule}`

export const incidentJson = (i: Messages.IncidentView, zone: string) => ({
  incident: i.incidentId,
  agent: i.agent,
  schedule: i.schedule,
  kind: i.firstKind,
  openedAt: Render.formatMicros(i.openedAt, zone),
  badEvents: i.badEvents,
  notifiedAt: Render.formatMicrosOrNull(i.notifiedAt, zone),
  reminders: i.reminders
})

export const deliveryJson = (d: Messages.DeliveryView, zone: string) => ({
  delivery: d.deliveryId,
  event: d.eventId,
  kind: d.kind,
  agent: d.agent,
  schedule: d.schedule,
  channel: d.channel,
  state: d.state,
  attempts: d.attempts,
  createdAt: Render.formatMicros(d.createdAt, zone),
  updatedAt: Render.formatMicros(d.updatedAt, zone),
  lastError: d.lastError
})

const stateColor = (state: Messages.DeliveryView["state"]) =>
  state === "delivered" ? "green" as const : state === "failed" ? "red" as const : "yellow" as const

export const alertsText = (
  style: Render.Style,
  r: {
    readonly incidents: ReadonlyArray<Messages.IncidentView>
    readonly deliveries: ReadonlyArray<Messages.DeliveryView>
  }
): Array<string> => [
  r.incidents.length === 0 ? "no open incidents" : `${r.incidents.length} open incident(s):`,
  ...(r.incidents.length === 0 ? [] : Render.table(
    style,
    [{ header: "OPENED" }, { header: "SUBJECT" }, { header: "FIRST" }, { header: "EVENTS", align: "right" }, {
      header: "NOTIFIED"
    }],
    r.incidents.map((i) => [
      Render.formatMicros(i.openedAt, style.zone),
      Render.clean(subject(i.agent, i.schedule)),
      Render.paint(style, "red", i.firstKind),
      String(i.badEvents),
      i.notifiedAt === null ? "no" : Render.formatMicros(i.notifiedAt, style.zone)
    ])
  )),
  "",
  r.deliveries.length === 0 ? "no deliveries" : "recent deliveries:",
  ...(r.deliveries.length === 0 ? [] : Render.table(
    style,
    [{ header: "QUEUED" }, { header: "KIND" }, { header: "SUBJECT" }, { header: "CHANNEL" }, { header: "STATE" }, {
      header: "TRIES",
      align: "right"
    }, { header: "LAST ERROR" }],
    r.deliveries.map((d) => [
      Render.formatMicros(d.createdAt, style.zone),
      Render.clean(d.kind),
      Render.clean(subject(d.agent, d.schedule)),
      Render.clean(d.channel),
      Render.paint(style, stateColor(d.state), d.state),
      String(d.attempts),
      Render.clean(d.lastError ?? "")
    ])
  ))
]

const limitOption = Options.integer("limit").pipe(
  Options.withPseudoName("N"),
  Options.withDefault(20),
  Options.mapEffect((n) =>
    n >= 1 && n <= 1000 ? Effect.succeed(n) : Effect.fail(invalidValue(`--limit: '${n}' is not between 1 and 1000`))
  ),
  Options.withDescription("How many recent deliveries to show (1 to 1000).")
)

export const alerts = Command.make("alerts", { limit: limitOption, ...remoteOptions }, (o) =>
  Effect.gen(function*() {
    const g = yield* globals(o)
    const style = yield* styleOf(g)
    yield* withSession(g, style, ({ connection }) =>
      Effect.gen(function*() {
        const r = yield* ask(connection, { _tag: "AlertsRequest", limit: o.limit }, "AlertsResponse")
        yield* print(
          g.json
            ? [Render.json({
              incidents: r.incidents.map((i) => incidentJson(i, style.zone)),
              deliveries: r.deliveries.map((d) => deliveryJson(d, style.zone))
            })]
            : alertsText(style, r)
        )
      }))
  })).pipe(
    Command.withDescription(helpText(
      "alerts",
      "Show open alert incidents and the recent notification deliveries with their status.",
      ["barto-cli alerts", "barto-cli alerts --limit 100 --json"]
    ))
  )

const test = Command.make(
  "test",
  { channel: Args.text({ name: "NAME" }), ...remoteOptions },
  (o) =>
    Effect.gen(function*() {
      const g = yield* globals(o)
      const style = yield* styleOf(g)
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const queued = yield* ask(connection, { _tag: "NotifyTestRequest", channel: o.channel }, "NotifyTestResponse")
          // Wait for the first attempt's outcome: the point of a test is to see it arrive or fail.
          const waitSecs = g.timeoutSecs ?? 30
          const deadline = (yield* Clock.currentTimeMillis) + waitSecs * 1000
          for (;;) {
            const r = yield* ask(connection, { _tag: "AlertsRequest", limit: 200 }, "AlertsResponse")
            const d = r.deliveries.find((x) => x.deliveryId === queued.deliveryId)
            if (d !== undefined && (d.state !== "pending" || d.attempts > 0)) {
              if (g.json) yield* print([Render.json(deliveryJson(d, style.zone))])
              if (d.state === "delivered") {
                if (!g.json) {
                  yield* print([`delivered to [notify.${Render.clean(o.channel)}] (event ${queued.eventId})`])
                }
                return
              }
              return yield* failure(
                `[notify.${o.channel}]: ${d.state === "failed" ? "failed" : "attempt failed, retrying"}: ${
                  d.lastError ?? "?"
                }`
              )
            }
            if ((yield* Clock.currentTimeMillis) > deadline) {
              return yield* failure(
                `[notify.${o.channel}]: no attempt within ${waitSecs}s (queued as ${queued.deliveryId})`
              )
            }
            yield* Effect.sleep("200 millis")
          }
        }))
    })
).pipe(
  Command.withDescription(helpText(
    "notify test",
    "Send a test notification to the channel [notify.NAME] and wait for the outcome (admin).",
    ["barto-cli notify test ops-mail", "barto-cli notify test pager --timeout 60"],
    [
      "0  delivered",
      "1  not delivered (the channel's error), no such channel, or bartos refused, no reply, cannot connect",
      "2  usage error (unknown command or option, invalid value)"
    ]
  ))
)

export const notify = Command.make("notify").pipe(
  Command.withDescription("Notification channels."),
  Command.withSubcommands([test])
)

export const commands = [alerts, notify] as const
