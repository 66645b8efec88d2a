/**
 * `barto-cli calendar EXPR... [--from T] [--count N] [--tz ZONE] [--agent A --schedule S]`:
 * like `systemd-analyze calendar`, offline (no config, no server). For each expression: the
 * original text, the normalised form and the next N elapses after `--from` (default now), in UTC
 * and, with `--tz`, in that zone too. An invalid expression is reported (field, text, position)
 * and the others are still printed; the exit status is then 1.
 */
import * as Calendar from "@barto/scheduler/Calendar"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { CliFailure, globals, helpText, invalidValue, jsonOption, localOption, styleOf } from "../internal/root.js"
import * as Render from "../Render.js"

export interface CalendarOptions {
  /** Epoch ms; elapses are strictly after it. */
  readonly fromMs: number
  /** True when `fromMs` is the real now (not `--from`): labels the distance "From now". */
  readonly fromNow?: boolean
  readonly count: number
  /** Zone to evaluate expressions without their own zone in, and to show the elapses in too. */
  readonly tz?: string | undefined
  /** Seed `R` like bartos does for this agent's schedule. */
  readonly agent?: string | undefined
  readonly schedule?: string | undefined
}

export type CalendarResult =
  | { readonly expression: string; readonly normalized: string; readonly next: ReadonlyArray<number> }
  | { readonly expression: string; readonly error: string; readonly hint?: string }

const CRON_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

/** One cron field in calendar syntax: `*\/n` → `0/n`, `a-b` → `a..b`; undefined when unsure. */
const cronField = (field: string, days = false): string | undefined => {
  if (field === "*") return "*"
  const parts = field.split(",").map((part) => {
    const step = /^(\*|\d+)\/(\d+)$/.exec(part)
    if (step !== null && !days) return `${step[1] === "*" ? "0" : step[1]}/${step[2]}`
    const range = /^(\w+)-(\w+)$/.exec(part)
    const one = (
      v: string
    ) => (days
      ? (/^\d$/.test(v) ? CRON_DAYS[Number(v)] : /^[a-z]{3}$/i.test(v) ? v : undefined)
      : /^\d+$/.test(v)
      ? v
      : undefined)
    if (range !== null) {
      const a = one(range[1]!)
      const b = one(range[2]!)
      return a === undefined || b === undefined ? undefined : `${a}..${b}`
    }
    return one(part)
  })
  return parts.some((p) => p === undefined) ? undefined : parts.join(",")
}

/**
 * A hint for an expression that looks like cron (5 fields, or 6 with seconds first): its
 * calendar form when the translation is sure and parses, else where to read about the syntax.
 */
export const cronHint = (expression: string): string | undefined => {
  const fields = expression.trim().split(/\s+/)
  if (fields.length !== 5 && fields.length !== 6) return undefined
  if (!fields.every((f) => /^[\d*,/\-a-z]+$/i.test(f))) return undefined
  const [sec, min, hour, dom, month, dow] = fields.length === 6 ? fields : ["0", ...fields]
  const conv = [sec, min, hour, dom, month].map((f) => cronField(f!))
  const days = dow === "*" ? "" : cronField(dow!, true)
  const looks = `'${expression.trim()}' looks like cron`
  if (conv.some((c) => c === undefined) || days === undefined) {
    return `${looks}; barto uses systemd calendar expressions (barto-cli calendar --help)`
  }
  const [s, m, h, d, mo] = conv as Array<string>
  const pad = (v: string) => (/^\d$/.test(v) ? `0${v}` : v)
  const form = `${days === "" ? "" : `${days} `}*-${mo}-${d} ${h}:${pad(m!)}:${pad(s!)}`
  return Either.isRight(Calendar.parse(form))
    ? `${looks}; the calendar form is '${form}'`
    : `${looks}; barto uses systemd calendar expressions (barto-cli calendar --help)`
}

/** The message of a parse error, always naming the field, the offending text and its position. */
export const describeError = (e: Calendar.CalendarParseError): string =>
  `invalid ${e.field} '${e.text}' at position ${e.position}: ${e.reason}`

/** Pure core of the command: parse, normalise and list the next elapses of each expression. */
export const evaluate = (expressions: ReadonlyArray<string>, options: CalendarOptions): Array<CalendarResult> =>
  expressions.map((expression) => {
    const parsed = Calendar.parse(expression, {
      ...(options.agent !== undefined ? { agent: options.agent } : {}),
      ...(options.schedule !== undefined ? { schedule: options.schedule } : {}),
      ...(options.tz !== undefined ? { defaultTz: options.tz } : {})
    })
    if (Either.isLeft(parsed)) {
      const hint = cronHint(expression)
      return { expression, error: describeError(parsed.left), ...(hint === undefined ? {} : { hint }) }
    }
    const cal = parsed.right
    return { expression, normalized: Calendar.print(cal), next: Calendar.upcoming(cal, options.fromMs, options.count) }
  })

/** The `--json` shape: one object per expression, in input order. */
export const toJson = (results: ReadonlyArray<CalendarResult>, tz: string | undefined) =>
  results.map((r) =>
    "error" in r
      ? { expression: r.expression, error: r.error, ...(r.hint === undefined ? {} : { hint: r.hint }) }
      : {
        expression: r.expression,
        normalized: r.normalized,
        next: r.next.map((ms) => Render.formatMs(ms)),
        ...(tz === undefined ? {} : { tz, nextInTz: r.next.map((ms) => Render.formatMs(ms, tz)) })
      }
  )

/** Text for the valid expressions (errors go to stderr separately), blocks separated by a blank line. */
export const toText = (
  style: Render.Style,
  results: ReadonlyArray<CalendarResult>,
  tz: string | undefined,
  base?: { readonly ms: number; readonly now: boolean }
) =>
  results.flatMap((r) => {
    if ("error" in r) return []
    const pairs: Array<readonly [string, string]> = [
      ["Original form", Render.clean(r.expression)],
      ["Normalized form", r.normalized]
    ]
    if (r.next.length === 0) pairs.push(["Next elapse", "never"])
    r.next.forEach((ms, i) => {
      pairs.push([i === 0 ? "Next elapse" : `Iter. #${i + 1}`, Render.formatMs(ms)])
      if (tz !== undefined) pairs.push([`(in ${tz})`, Render.formatMs(ms, tz)])
      if (i === 0 && base !== undefined) {
        pairs.push([base.now ? "From now" : "From --from", Render.fromNow(ms, base.ms).replace(/^in (.*)$/, "$1 left")])
      }
    })
    return [Render.keyValues(style, pairs)]
  }).flatMap((block, i) => (i === 0 ? block : ["", ...block]))

const tzOption = Options.text("tz").pipe(
  Options.withPseudoName("ZONE"),
  Options.mapEffect((zone) =>
    Render.isValidZone(zone)
      ? Effect.succeed(zone)
      : Effect.fail(invalidValue(`--tz: '${zone}' is not a time zone (an IANA name, e.g. Europe/Berlin)`))
  ),
  Options.optional,
  Options.withDescription(
    "Evaluate expressions that name no zone in this IANA zone (as a schedule with `timezone = ZONE` would run), " +
      "and show the elapses in it as well as in UTC. An expression's own zone always wins."
  )
)

const fromOption = Options.text("from").pipe(
  Options.withPseudoName("TIME"),
  Options.optional,
  Options.withDescription(
    "Start after this instant (RFC 3339; without an offset read in --tz, else UTC). Default: now."
  )
)

const countOption = Options.integer("count").pipe(
  Options.withAlias("n"),
  Options.withPseudoName("N"),
  Options.withDefault(5),
  Options.mapEffect((n) =>
    n >= 1 && n <= 10_000 ? Effect.succeed(n) : Effect.fail(invalidValue(`invalid count: '${n}' (1 to 10000)`))
  ),
  Options.withDescription("How many elapses to show per expression.")
)

export const command = Command.make(
  "calendar",
  {
    expressions: Args.text({ name: "EXPR" }).pipe(Args.atLeast(1)),
    from: fromOption,
    count: countOption,
    tz: tzOption,
    agent: Options.text("agent").pipe(
      Options.withPseudoName("AGENT"),
      Options.optional,
      Options.withDescription("Resolve R as bartos does for this agent (with --schedule).")
    ),
    schedule: Options.text("schedule").pipe(
      Options.withPseudoName("SCHEDULE"),
      Options.optional,
      Options.withDescription("Resolve R as bartos does for this schedule (with --agent).")
    ),
    json: jsonOption,
    local: localOption
  },
  (o) =>
    Effect.gen(function*() {
      const g = yield* globals({ json: o.json, local: o.local })
      const style = yield* styleOf(g)
      const tz = Option.getOrUndefined(o.tz) ?? (g.local ? Render.localZone() : undefined)
      const fromText = Option.getOrUndefined(o.from)
      let fromMs: number
      if (fromText === undefined) {
        fromMs = yield* Clock.currentTimeMillis
      } else {
        const micros = Render.parseInstant(fromText, tz ?? "UTC")
        if (micros === undefined) {
          return yield* new CliFailure({
            message: `calendar: --from: '${fromText}' is not a time (RFC 3339, e.g. 2026-01-01T00:00:00Z)`,
            exitCode: 2
          })
        }
        fromMs = Math.floor(micros / 1000)
      }
      const results = evaluate(o.expressions, {
        fromMs,
        fromNow: fromText === undefined,
        count: o.count,
        tz,
        agent: Option.getOrUndefined(o.agent),
        schedule: Option.getOrUndefined(o.schedule)
      })
      if (g.json) {
        yield* Console.log(Render.json(toJson(results, tz)))
      } else {
        for (const r of results) {
          if ("error" in r) {
            yield* Console.error(`barto-cli: invalid calendar expression '${Render.clean(r.expression)}': ${r.error}`)
            if (r.hint !== undefined) yield* Console.error(`barto-cli: hint: ${Render.clean(r.hint)}`)
          }
        }
        const text = toText(style, results, tz, { ms: fromMs, now: fromText === undefined })
        if (text.length > 0) yield* Console.log(text.join("\n"))
      }
      if (results.some((r) => "error" in r)) {
        return yield* new CliFailure({ message: "", exitCode: 1 })
      }
    })
).pipe(
  Command.withDescription(helpText(
    "calendar",
    "Show the normalised form, next elapses and time left of calendar expressions (offline, like systemd-analyze " +
      "calendar); a cron expression gets its calendar form as a hint.",
    [
      "barto-cli calendar '*-*-* 10:00' 'Mon..Fri 9:30' --count 2",
      "barto-cli calendar daily --tz Europe/Berlin",
      "barto-cli calendar '*-*-* 10:R:R' --agent web1 --schedule backup"
    ],
    [
      "0  every expression is valid",
      "1  an expression is invalid (reported on stderr; the others are still printed)",
      "2  usage error (unknown command or option, invalid value)"
    ]
  ))
)
