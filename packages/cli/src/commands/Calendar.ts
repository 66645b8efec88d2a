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
import * as Render from "../Render.js"
import { CliFailure, globals, invalidValue, jsonOption, localOption, styleOf } from "../internal/root.js"

export interface CalendarOptions {
  /** Epoch ms; elapses are strictly after it. */
  readonly fromMs: number
  readonly count: number
  /** Extra zone to show the elapses in. */
  readonly tz?: string | undefined
  /** Seed `R` like bartos does for this agent's schedule. */
  readonly agent?: string | undefined
  readonly schedule?: string | undefined
}

export type CalendarResult =
  | { readonly expression: string; readonly normalized: string; readonly next: ReadonlyArray<number> }
  | { readonly expression: string; readonly error: string }

/** The message of a parse error, always naming the field, the offending text and its position. */
export const describeError = (e: Calendar.CalendarParseError): string =>
  `invalid ${e.field} '${e.text}' at position ${e.position}: ${e.reason}`

/** Pure core of the command: parse, normalise and list the next elapses of each expression. */
export const evaluate = (expressions: ReadonlyArray<string>, options: CalendarOptions): Array<CalendarResult> =>
  expressions.map((expression) => {
    const parsed = Calendar.parse(expression, {
      ...(options.agent !== undefined ? { agent: options.agent } : {}),
      ...(options.schedule !== undefined ? { schedule: options.schedule } : {})
    })
    if (Either.isLeft(parsed)) return { expression, error: describeError(parsed.left) }
    const cal = parsed.right
    return { expression, normalized: Calendar.print(cal), next: Calendar.upcoming(cal, options.fromMs, options.count) }
  })

/** The `--json` shape: one object per expression, in input order. */
export const toJson = (results: ReadonlyArray<CalendarResult>, tz: string | undefined) =>
  results.map((r) =>
    "error" in r
      ? { expression: r.expression, error: r.error }
      : {
        expression: r.expression,
        normalized: r.normalized,
        next: r.next.map((ms) => Render.formatMs(ms)),
        ...(tz === undefined ? {} : { tz, nextInTz: r.next.map((ms) => Render.formatMs(ms, tz)) })
      }
  )

/** Text for the valid expressions (errors go to stderr separately), blocks separated by a blank line. */
export const toText = (style: Render.Style, results: ReadonlyArray<CalendarResult>, tz: string | undefined) =>
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
    })
    return [Render.keyValues(style, pairs)]
  }).flatMap((block, i) => (i === 0 ? block : ["", ...block]))

const tzOption = Options.text("tz").pipe(
  Options.withPseudoName("ZONE"),
  Options.mapEffect((zone) =>
    Render.isValidZone(zone) ? Effect.succeed(zone) : Effect.fail(invalidValue(`invalid time zone: '${zone}'`))
  ),
  Options.optional,
  Options.withDescription("Also show the elapses in this IANA time zone.")
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
      Options.optional,
      Options.withDescription("Resolve R as bartos does for this agent (with --schedule).")
    ),
    schedule: Options.text("schedule").pipe(
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
            message: `invalid --from time: '${fromText}' (expected RFC 3339, e.g. 2026-01-01T00:00:00Z)`,
            exitCode: 2
          })
        }
        fromMs = Math.floor(micros / 1000)
      }
      const results = evaluate(o.expressions, {
        fromMs,
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
          }
        }
        const text = toText(style, results, tz)
        if (text.length > 0) yield* Console.log(text.join("\n"))
      }
      if (results.some((r) => "error" in r)) {
        return yield* new CliFailure({ message: "", exitCode: 1 })
      }
    })
).pipe(
  Command.withDescription(
    "Show the normalised form and next elapses of calendar expressions (offline, like systemd-analyze calendar)."
  )
)
