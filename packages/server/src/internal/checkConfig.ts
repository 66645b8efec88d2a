/**
 * `bartos --check-config`: everything bartos checks before it starts, and nothing it does when it
 * starts (no port bound, no database opened or created, no log file). Like `nginx -t`.
 */
import * as Config from "@barto/domain/Config"
import type { ScheduleSpec } from "@barto/domain/Messages"
import * as Calendar from "@barto/scheduler/Calendar"
import * as Zone from "@barto/scheduler/Zone"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Main from "../Main.js"
import * as Schedules from "../Schedules.js"

export interface CheckResult {
  /** The summary, for stdout (empty when invalid). */
  readonly summary: ReadonlyArray<string>
  /** Problems (exit 1 when there is any), each a line for stderr. */
  readonly errors: ReadonlyArray<string>
  /** Worth knowing, not fatal (unknown BARTOS_* variables, no admin key…). */
  readonly warnings: ReadonlyArray<string>
}

/** Columns separated by two spaces, each as wide as its widest cell. */
export const columns = (rows: ReadonlyArray<ReadonlyArray<string>>): Array<string> => {
  const widths: Array<number> = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((row) =>
    row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd()
  )
}

/** One schedule's normalized calendar and its next fire time, in the calendar's own zone. */
const scheduleRow = (agent: string, spec: ScheduleSpec, nowMs: number): Array<string> => {
  const parsed = Calendar.parse(spec.calendar)
  const next = Either.isRight(parsed) ? Calendar.next(parsed.right, nowMs) : undefined
  const tz = Either.isRight(parsed) ? parsed.right.tz : "UTC"
  return [
    agent,
    spec.name,
    spec.calendar,
    next === undefined ? "never" : Zone.formatRfc3339(Math.floor(next / 1000), tz)
  ]
}

const secretsLine = (config: Config.BartosConfig): string => {
  const keys = {
    api_key: config.api_key,
    admin_key: config.admin_key,
    signing_key: config.signing_key,
    hmac_key: config.hmac_key
  }
  const set = Object.entries(keys).filter(([, v]) => v !== undefined).map(([k]) => k)
  const unset = Object.entries(keys).filter(([, v]) => v === undefined).map(([k]) => k)
  return [set.length > 0 ? `${set.join(", ")} set` : "", unset.length > 0 ? `${unset.join(", ")} not set` : ""]
    .filter((s) => s !== "").join("; ")
}

/** The notification channels, each with its type: `ops_hook (webhook), pager (command)`. */
const notifyLine = (config: Config.BartosConfig): string => {
  const channels = Object.entries(config.notify).map(([name, c]) => `${name} (${c.type})`)
  return channels.length === 0 ? "none (alerts are recorded, nobody is notified)" : channels.join(", ")
}

export const check = (options: {
  readonly version: string
  readonly loadOptions: Config.LoadOptions
  readonly configFile: string
}): Effect.Effect<CheckResult> =>
  Effect.gen(function*() {
    const warnings = [...yield* Config.unknownEnvironment("bartos", options.loadOptions)]
    const loaded = yield* Effect.either(Config.loadBartos(options.loadOptions))
    if (Either.isLeft(loaded)) {
      return { summary: [], errors: loaded.left.problems.map(Config.formatProblem), warnings }
    }
    const config = loaded.right
    const errors: Array<string> = []
    const table = Schedules.validate(Main.loadedSchedules(options.configFile, config))
    if (Either.isLeft(table)) errors.push(...table.left.problems.map(Config.formatProblem))
    // The start's own checks of certificates and keys; its warnings are collected, not logged.
    const collect = Logger.make(({ message }) => {
      warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    const hub = yield* Main.hubOptions(config, options.version).pipe(
      Effect.either,
      Logger.withMinimumLogLevel(LogLevel.Warning),
      Effect.locally(FiberRef.currentLoggers, HashSet.make(collect))
    )
    if (Either.isLeft(hub)) errors.push(hub.left.message)
    if (errors.length > 0 || Either.isLeft(table) || Either.isLeft(hub)) return { summary: [], errors, warnings }

    const nowMs = yield* Clock.currentTimeMillis
    const listeners = [
      ...(hub.right.plain === undefined ? [] : [`ws://${hub.right.plain.host}:${hub.right.plain.port}`]),
      ...(hub.right.tls === undefined
        ? []
        : [`wss://${hub.right.tls.host}:${hub.right.tls.port}${hub.right.tls.clientCa === undefined ? "" : " (mTLS)"}`])
    ]
    const specs = [...table.right].flatMap(([agent, list]) => list.map((spec) => scheduleRow(agent, spec, nowMs)))
    const file = Main.loadedSchedules(options.configFile, config).file
    return {
      summary: [
        `bartos ${options.version}: configuration is valid (${
          file ?? `no file at ${options.configFile}: defaults and environment`
        })`,
        ...columns([
          ["listeners:", listeners.join(", ")],
          ["database:", `${Main.databaseLabel(config)} (not opened)`],
          ["secrets:", secretsLine(config)],
          ["agents:", `${table.right.size} (${specs.length} schedules)`],
          ["notify:", notifyLine(config)]
        ]),
        ...(specs.length === 0
          ? []
          : ["", ...columns([["AGENT", "SCHEDULE", "CALENDAR", "NEXT (in the calendar's zone)"], ...specs])])
      ],
      errors: [],
      warnings
    }
  })
