/**
 * The alerting part of `bartos.toml` (issue 14): `alert = { on, to, after_failures }`,
 * `late_after`, `stall_after`, `expected_duration` per schedule, per agent (`[schedules.<agent>]`)
 * and globally (`[alerts]`), and the notification channels `[notify.NAME]`.
 *
 * Kept apart from Config.ts so the schema of one concept lives in one place; Config.ts spreads
 * these fields into its tables.
 */
import * as Schema from "effect/Schema"
import {
  DurationSecs,
  Enum,
  NonEmptyText,
  opt,
  Port,
  PositiveInt,
  Secret,
  StringArray,
  table,
  tableOf,
  withDefault
} from "./configSchema.js"

/** Every event kind bartos derives (README, alerts). */
export const EVENT_KINDS = [
  "failed",
  "timed_out",
  "missed",
  "late",
  "stalled",
  "overran",
  "agent_down",
  "agent_up",
  "recovered"
] as const
export type EventKind = (typeof EVENT_KINDS)[number]

/** Events that open (or count towards) an incident; `recovered` and `agent_up` close one. */
export const BAD_KINDS: ReadonlyArray<EventKind> = [
  "failed",
  "timed_out",
  "missed",
  "late",
  "stalled",
  "overran",
  "agent_down"
]

const KindList = Schema.Array(Enum(...EVENT_KINDS)).annotations({ message: () => "expected an array of event kinds" })

/**
 * `alert = { on = [...], to = [...], after_failures = 1 }`. Every key is optional: a schedule's
 * table overrides its agent's key by key, which overrides `[alerts] alert`.
 */
export const AlertRule = table({
  /** Event kinds that notify; absent: all of them. */
  on: opt(KindList),
  /** `[notify.NAME]` channels; absent or empty: events are recorded, nobody is notified. */
  to: opt(StringArray),
  /** Bad events of one incident before its (single) notification goes out. */
  after_failures: opt(PositiveInt)
})
export type AlertRule = typeof AlertRule.Type

/** The keys a schedule, an agent table and `[alerts]` share. */
export const alertFields = {
  alert: opt(AlertRule),
  /** An occurrence not started this long after its time is `late` (bartos sees it, agent online or not). */
  late_after: opt(DurationSecs),
  /** A running job that printed nothing and sent no heartbeat this long is `stalled`. */
  stall_after: opt(DurationSecs),
  /** A run longer than this is `overran` (it is not killed: that is `timeout`). */
  expected_duration: opt(DurationSecs)
}

export const Alerts = table({
  ...alertFields,
  /** An open, notified incident is notified again this often; absent: never. */
  reminder_interval: opt(DurationSecs),
  /** An agent without a session this long is `agent_down`. */
  agent_down_after: withDefault(DurationSecs, () => 60),
  /** How often bartos looks for late, stalled, overran and down; the detection delay is at most this. */
  check_interval: withDefault(DurationSecs, () => 0.25),
  /** Finished runs this far back are re-derived at start (events lost to a crash are found again). */
  catch_up: withDefault(DurationSecs, () => 86400)
})
export type Alerts = typeof Alerts.Type

const REQUIRED: Record<string, ReadonlyArray<string>> = {
  webhook: ["url", "secret"],
  email: ["smtp_host", "from", "to"],
  command: ["command"]
}

/**
 * `[notify.NAME]`: one flat table for the three types (the strict loader knows every key), and a
 * check that the keys the type needs are there. Secrets also take the `*_file` form.
 */
export const NotifyChannel = table({
  type: Enum("webhook", "email", "command"),
  /** webhook: where the JSON body is POSTed. */
  url: opt(NonEmptyText),
  /** webhook: HMAC-SHA256 key of `X-Barto-Signature`. */
  secret: opt(Secret),
  /** email */
  smtp_host: opt(NonEmptyText),
  smtp_port: opt(Port),
  /** email: `starttls` (required upgrade), `tls` (implicit TLS, port 465), `none`. */
  smtp_security: withDefault(Enum("starttls", "tls", "none"), () => "starttls" as const),
  username: opt(NonEmptyText),
  password: opt(Secret),
  from: opt(NonEmptyText),
  to: opt(StringArray),
  /** command: argv (no shell); the event JSON is on its stdin. */
  command: opt(StringArray),
  /** Per attempt: the HTTP request, the SMTP exchange, the command's run. */
  timeout: withDefault(DurationSecs, () => 10),
  /** Attempts before a delivery is given up (`failed`). */
  max_attempts: withDefault(PositiveInt, () => 10),
  /** Retry delays double from 1 s up to this. */
  backoff_max: withDefault(DurationSecs, () => 300)
}).pipe(Schema.filter((c) => {
  const missing = (REQUIRED[c.type] ?? []).filter((k) => (c as Record<string, unknown>)[k] === undefined)
  if (missing.length > 0) {
    return missing.map((k) => ({ path: [k], message: `missing required key for type = "${c.type}"` }))
  }
  if (c.type === "command" && c.command!.length === 0) {
    return { path: ["command"], message: "expected a program and its arguments" }
  }
  if (c.type === "email" && c.to!.length === 0) return { path: ["to"], message: "expected at least one recipient" }
  if (c.type === "webhook" && !/^https?:\/\//.test(c.url!)) {
    return { path: ["url"], message: "expected an http:// or https:// URL" }
  }
  return true
}))
export type NotifyChannel = typeof NotifyChannel.Type

export const NotifyChannels = tableOf(NotifyChannel)

interface WithAlerts {
  readonly alert?: AlertRule | undefined
}

/**
 * Every `alert.to` must name a `[notify.NAME]` table: a typo would otherwise drop notifications
 * silently. One issue per unknown name, at its own key.
 */
export const checkAlertTargets = (config: {
  readonly alerts: WithAlerts
  readonly notify: Readonly<Record<string, unknown>>
  readonly schedules: Readonly<Record<string, WithAlerts & { readonly schedules: ReadonlyArray<WithAlerts> }>>
}): true | ReadonlyArray<Schema.FilterIssue> => {
  const issues: Array<Schema.FilterIssue> = []
  const known = Object.keys(config.notify)
  const check = (rule: AlertRule | undefined, at: ReadonlyArray<PropertyKey>) => {
    rule?.to?.forEach((name, i) => {
      if (!(name in config.notify)) {
        issues.push({
          path: [...at, "alert", "to", i],
          message: `no [notify.${name}] channel${
            known.length === 0 ? " (none configured)" : ` (known: ${known.join(", ")})`
          }`
        })
      }
    })
  }
  check(config.alerts.alert, ["alerts"])
  for (const [agent, section] of Object.entries(config.schedules)) {
    check(section.alert, ["schedules", agent])
    section.schedules.forEach((s, i) => check(s.alert, ["schedules", agent, "schedules", i]))
  }
  return issues.length === 0 ? true : issues
}
