/**
 * Calendar expressions (design D2): the reference's `Realtime` grammar plus the systemd dash
 * date form, case-insensitive weekday names, `HH:MM`, date-only and weekday-only forms, and a
 * trailing IANA time zone. Pure: parse, print, matches, next, previous; and `schedule`, the
 * calendar as an Effect Schedule.
 *
 * Grammar (tokens separated by whitespace; brackets = optional, at least one of the three):
 *
 *   [WEEKDAYS] [DATE] [TIME] [ZONE]       or one of the eight lowercase shortcuts [ZONE]
 *
 *   WEEKDAYS  `*` or a `,` list of names and `A..B` ranges, any letter case (`mon`, `Monday`)
 *   DATE      `YEAR-MONTH-DAY` (dash form; fields may hold lists) or `YEAR,MONTH,DAY` (the
 *             reference's comma form; no lists) or `*`. Default `*-*-*`.
 *   TIME      `HOUR:MINUTE[:SECOND]`. Default `00:00:00`; seconds default to `00`.
 *   ZONE      a trailing token `Intl` knows as a time zone. Default UTC (or `defaultTz`).
 *   field     `*` | `R` | n | a,b,c | a..b | start/step | start..end/step
 *
 * How `-` parses in the dash form: a `-` is a field separator unless it begins the token or
 * follows `.`, `,` or another `-`, in which case it is a minus sign. So `-1-01-01` is year −1
 * and `-5..-1-*-*` is years −5 to −1; negative years also stay available in the comma form
 * (`-1,1,1`). The printer relies on this rule, so printed negative years re-parse.
 *
 * Semantics: weekday AND year AND month AND day AND hour AND minute AND second (reference
 * §3.8, not cron's OR), evaluated on the wall clock of the calendar's zone. On a DST gap the
 * missing wall times do not fire that day; on a DST overlap a repeated wall time fires once, at
 * its first occurrence. `matches` agrees with `next`/`previous` on this (it is false on the
 * second pass of a repeated wall time).
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import { civilFromDays, daysFromCivil, daysInMonth, SECONDS_PER_DAY, weekdayOfDays } from "./internal/civil.js"
import { stableValue } from "./internal/hash.js"
import { canonicalZone, offsetSeconds, wallSeconds } from "./internal/zone.js"

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

/** One constrained field as written (after `R` resolution); `Step` without `end` runs to the field's maximum. */
export type Field =
  | { readonly _tag: "Any" }
  | { readonly _tag: "List"; readonly values: ReadonlyArray<number> }
  | { readonly _tag: "Range"; readonly start: number; readonly end: number }
  | { readonly _tag: "Step"; readonly start: number; readonly end?: number; readonly step: number }

export interface Calendar {
  /** Bit d set = weekday d allowed (0 = Sunday … 6 = Saturday); `0b1111111` = every day. */
  readonly weekdays: number
  readonly year: Field
  readonly month: Field
  readonly day: Field
  readonly hour: Field
  readonly minute: Field
  readonly second: Field
  /** Canonical IANA zone name; `"UTC"` for UTC. */
  readonly tz: string
}

export const ALL_WEEKDAYS = 0b1111111

export class CalendarParseError extends Data.TaggedError("CalendarParseError")<{
  readonly input: string
  /** `weekday`, `year`, `month`, `day`, `hour`, `minute`, `second`, `date`, `time`, `timezone` or `expression`. */
  readonly field: string
  readonly text: string
  /** 0-based index of `text` in `input` (UTF-16 code units). */
  readonly position: number
  readonly reason: string
}> {
  override get message(): string {
    return `invalid ${this.field} '${this.text}' at position ${this.position}: ${this.reason}`
  }
}

export interface ParseOptions {
  /** Agent and schedule name seed `R` (stable hash); absent = empty strings, still stable. */
  readonly agent?: string
  readonly schedule?: string
  /** Zone used when the expression names none (default UTC). `print` always spells a non-UTC zone out. */
  readonly defaultTz?: string
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

interface Bounds {
  readonly name: "year" | "month" | "day" | "hour" | "minute" | "second"
  readonly min: number
  readonly max: number
}

const I32_MIN = -2_147_483_648
const I32_MAX = 2_147_483_647

const YEAR: Bounds = { name: "year", min: I32_MIN, max: I32_MAX }
const MONTH: Bounds = { name: "month", min: 1, max: 12 }
const DAY: Bounds = { name: "day", min: 1, max: 31 }
const HOUR: Bounds = { name: "hour", min: 0, max: 23 }
const MINUTE: Bounds = { name: "minute", min: 0, max: 59 }
const SECOND: Bounds = { name: "second", min: 0, max: 59 }

const ANY: Field = { _tag: "Any" }
const ZERO: Field = { _tag: "List", values: [0] }
const ONE: Field = { _tag: "List", values: [1] }

interface Ctx {
  readonly input: string
  readonly agent: string
  readonly schedule: string
}

const fail = (ctx: Ctx, field: string, text: string, position: number, reason: string): CalendarParseError =>
  new CalendarParseError({ input: ctx.input, field, text, position, reason })

const UNSIGNED = /^\+?[0-9]+$/
const SIGNED = /^[+-]?[0-9]+$/

const parseNumber = (ctx: Ctx, b: Bounds, text: string, pos: number): number | CalendarParseError => {
  const isYear = b === YEAR
  if (!(isYear ? SIGNED : UNSIGNED).test(text)) {
    const reason = text === "" ?
      "empty value" :
      !isYear && text.startsWith("-") ?
      "negative values are not allowed" :
      !isYear && /^\+?[0-9]+-[0-9]+$/.test(text) ?
      "not a number (ranges are written a..b)" :
      "not a number"
    return fail(ctx, b.name, text, pos, reason)
  }
  const v = Number(text)
  // The reference parses these fields as u8 before the range check; both end in this error.
  if (v < b.min || v > b.max) return fail(ctx, b.name, text, pos, `value out of range ${b.min}..${b.max}`)
  return v === 0 ? 0 : v // normalise -0
}

const parseStepValue = (ctx: Ctx, b: Bounds, text: string, pos: number): number | CalendarParseError => {
  if (!UNSIGNED.test(text)) return fail(ctx, b.name, text, pos, "step is not a number")
  const v = Number(text)
  if (v === 0) return fail(ctx, b.name, text, pos, "step must be at least 1")
  if (v > 255) return fail(ctx, b.name, text, pos, "step out of range 1..255")
  // D2: a step beyond the field's maximum can match at most once and made the reference panic.
  if (b !== YEAR && v > b.max) return fail(ctx, b.name, text, pos, `step larger than the field maximum ${b.max}`)
  return v
}

const parseRange = (
  ctx: Ctx,
  b: Bounds,
  text: string,
  pos: number
): { start: number; end: number } | CalendarParseError => {
  const i = text.indexOf("..")
  const a = parseNumber(ctx, b, text.slice(0, i), pos)
  if (a instanceof CalendarParseError) return a
  const e = parseNumber(ctx, b, text.slice(i + 2), pos + i + 2)
  if (e instanceof CalendarParseError) return e
  if (e < a) return fail(ctx, b.name, text, pos, "range end before start")
  return { start: a, end: e }
}

const parseField = (ctx: Ctx, b: Bounds, text: string, pos: number): Field | CalendarParseError => {
  if (text === "") return fail(ctx, b.name, text, pos, "empty field")
  if (text === "*") return ANY
  if (text === "R") {
    if (b === YEAR) return fail(ctx, b.name, text, pos, "R is not allowed for the year")
    return { _tag: "List", values: [stableValue(ctx.agent, ctx.schedule, b.name, b.min, b.max)] }
  }
  if (text.includes(",")) {
    const values: Array<number> = []
    let at = pos
    for (const item of text.split(",")) {
      if (item === "") return fail(ctx, b.name, item, at, "empty list item")
      if (item.includes("..")) return fail(ctx, b.name, item, at, "ranges are not allowed inside a list")
      if (item.includes("/")) return fail(ctx, b.name, item, at, "steps are not allowed inside a list")
      const v = parseNumber(ctx, b, item, at)
      if (v instanceof CalendarParseError) return v
      if (!values.includes(v)) values.push(v)
      at += item.length + 1
    }
    values.sort((x, y) => x - y)
    return { _tag: "List", values }
  }
  const slash = text.indexOf("/")
  if (slash >= 0) {
    const left = text.slice(0, slash)
    const right = text.slice(slash + 1)
    if (left === "*" || left === "") {
      return fail(ctx, b.name, text, pos, "cron-style step; write START/STEP, e.g. 0/" + right)
    }
    const step = parseStepValue(ctx, b, right, pos + slash + 1)
    if (step instanceof CalendarParseError) return step
    if (left.includes("..")) {
      const r = parseRange(ctx, b, left, pos)
      if (r instanceof CalendarParseError) return r
      return { _tag: "Step", start: r.start, end: r.end, step }
    }
    const start = parseNumber(ctx, b, left, pos)
    if (start instanceof CalendarParseError) return start
    return { _tag: "Step", start, step }
  }
  if (text.includes("..")) {
    const r = parseRange(ctx, b, text, pos)
    if (r instanceof CalendarParseError) return r
    return { _tag: "Range", start: r.start, end: r.end }
  }
  const v = parseNumber(ctx, b, text, pos)
  if (v instanceof CalendarParseError) return v
  return { _tag: "List", values: [v] }
}

const DAY_NAMES: ReadonlyArray<string> = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
const DAY_LOOKUP: ReadonlyMap<string, number> = new Map([
  ["sun", 0],
  ["sunday", 0],
  ["mon", 1],
  ["monday", 1],
  ["tue", 2],
  ["tuesday", 2],
  ["wed", 3],
  ["wednesday", 3],
  ["thu", 4],
  ["thursday", 4],
  ["fri", 5],
  ["friday", 5],
  ["sat", 6],
  ["saturday", 6]
])

const parseDayName = (ctx: Ctx, text: string, pos: number): number | CalendarParseError => {
  const d = DAY_LOOKUP.get(text.toLowerCase())
  return d === undefined ? fail(ctx, "weekday", text, pos, "unknown day name") : d
}

const parseWeekdays = (ctx: Ctx, text: string, pos: number): number | CalendarParseError => {
  if (text === "*") return ALL_WEEKDAYS
  let mask = 0
  let at = pos
  for (const item of text.split(",")) {
    if (item === "") return fail(ctx, "weekday", item, at, "empty list item")
    const i = item.indexOf("..")
    if (i >= 0) {
      const a = parseDayName(ctx, item.slice(0, i), at)
      if (a instanceof CalendarParseError) return a
      const e = parseDayName(ctx, item.slice(i + 2), at + i + 2)
      if (e instanceof CalendarParseError) return e
      // No wrap-around (reference): `Sat..Sun` is an error, write `Sat,Sun`.
      if (e < a) return fail(ctx, "weekday", item, at, "range end before start (no wrap-around; use a list)")
      for (let d = a; d <= e; d++) mask |= 1 << d
    } else {
      const d = parseDayName(ctx, item, at)
      if (d instanceof CalendarParseError) return d
      mask |= 1 << d
    }
    at += item.length + 1
  }
  return mask
}

interface DateFields {
  readonly year: Field
  readonly month: Field
  readonly day: Field
}

const ANY_DATE: DateFields = { year: ANY, month: ANY, day: ANY }

/** Indices of the `-` characters that separate date fields (see the module comment). */
const dashSeparators = (text: string): Array<number> => {
  const out: Array<number> = []
  for (let i = 1; i < text.length; i++) {
    if (text[i] !== "-") continue
    const prev = text[i - 1]
    if (prev === "." || prev === "," || (prev === "-" && out[out.length - 1] === i - 1)) continue
    out.push(i)
  }
  return out
}

const parseDate = (ctx: Ctx, text: string, pos: number): DateFields | CalendarParseError => {
  if (text === "*") return ANY_DATE
  let parts: Array<{ text: string; at: number }>
  const seps = dashSeparators(text)
  if (seps.length > 0) {
    if (seps.length !== 2) return fail(ctx, "date", text, pos, "expected YEAR-MONTH-DAY")
    parts = [
      { text: text.slice(0, seps[0]), at: 0 },
      { text: text.slice(seps[0]! + 1, seps[1]), at: seps[0]! + 1 },
      { text: text.slice(seps[1]! + 1), at: seps[1]! + 1 }
    ]
  } else if (text.includes(",")) {
    // Reference comma form: exactly three fields, so no lists here.
    const raw = text.split(",")
    if (raw.length !== 3) return fail(ctx, "date", text, pos, "expected YEAR,MONTH,DAY (or YEAR-MONTH-DAY)")
    parts = [
      { text: raw[0]!, at: 0 },
      { text: raw[1]!, at: raw[0]!.length + 1 },
      { text: raw[2]!, at: raw[0]!.length + raw[1]!.length + 2 }
    ]
  } else {
    return fail(ctx, "date", text, pos, "expected YEAR-MONTH-DAY")
  }
  const year = parseField(ctx, YEAR, parts[0]!.text, pos + parts[0]!.at)
  if (year instanceof CalendarParseError) return year
  const month = parseField(ctx, MONTH, parts[1]!.text, pos + parts[1]!.at)
  if (month instanceof CalendarParseError) return month
  const day = parseField(ctx, DAY, parts[2]!.text, pos + parts[2]!.at)
  if (day instanceof CalendarParseError) return day
  return { year, month, day }
}

interface TimeFields {
  readonly hour: Field
  readonly minute: Field
  readonly second: Field
}

const MIDNIGHT: TimeFields = { hour: ZERO, minute: ZERO, second: ZERO }

const parseTime = (ctx: Ctx, text: string, pos: number): TimeFields | CalendarParseError => {
  const raw = text.split(":")
  if (raw.length < 2 || raw.length > 3) return fail(ctx, "time", text, pos, "expected HH:MM or HH:MM:SS")
  const hour = parseField(ctx, HOUR, raw[0]!, pos)
  if (hour instanceof CalendarParseError) return hour
  const minute = parseField(ctx, MINUTE, raw[1]!, pos + raw[0]!.length + 1)
  if (minute instanceof CalendarParseError) return minute
  if (raw.length === 2) return { hour, minute, second: ZERO }
  const second = parseField(ctx, SECOND, raw[2]!, pos + raw[0]!.length + raw[1]!.length + 2)
  if (second instanceof CalendarParseError) return second
  return { hour, minute, second }
}

type Shortcut = Omit<Calendar, "tz">

const shortcut = (over: Partial<Shortcut>): Shortcut => ({
  weekdays: ALL_WEEKDAYS,
  year: ANY,
  month: ANY,
  day: ANY,
  hour: ZERO,
  minute: ZERO,
  second: ZERO,
  ...over
})

/** The eight reference shortcuts; exact lowercase keywords only (`Daily` is an error). */
export const SHORTCUTS: Readonly<Record<string, Shortcut>> = {
  minutely: shortcut({ hour: ANY, minute: ANY }),
  hourly: shortcut({ hour: ANY }),
  daily: shortcut({}),
  weekly: shortcut({ weekdays: 1 << 1 }),
  monthly: shortcut({ day: ONE }),
  quarterly: shortcut({ month: { _tag: "List", values: [1, 4, 7, 10] }, day: ONE }),
  semiannually: shortcut({ month: { _tag: "List", values: [1, 7] }, day: ONE }),
  yearly: shortcut({ month: ONE, day: ONE })
}

const TOKEN = /[^\s\u0085]+/gu
const ZONE_SHAPE = /^[A-Za-z][A-Za-z0-9_+\-/]+$/
const WEEKDAY_SHAPE = /^[A-Za-z][A-Za-z.,]*$/

const isTimeToken = (t: string): boolean => t.includes(":")
// `R,R,R` is a (bad) date, not a weekday list.
const isWeekdayToken = (t: string): boolean => WEEKDAY_SHAPE.test(t) && !/^R(,|$)/.test(t)
const isDateToken = (t: string): boolean => t === "*" || t.includes(",") || dashSeparators(t).length > 0

const parseInternal = (input: string, options: ParseOptions): Calendar | CalendarParseError => {
  const ctx: Ctx = { input, agent: options.agent ?? "", schedule: options.schedule ?? "" }
  const tokens: Array<{ text: string; pos: number }> = []
  for (const m of input.matchAll(TOKEN)) tokens.push({ text: m[0], pos: m.index })
  if (tokens.length === 0) return fail(ctx, "expression", input, 0, "empty expression")

  let tz = "UTC"
  if (options.defaultTz !== undefined) {
    const z = canonicalZone(options.defaultTz)
    if (z === undefined) {
      return fail(ctx, "timezone", options.defaultTz, input.length, "unknown IANA time zone (default)")
    }
    tz = z
  }
  // A trailing token shaped like a zone name is the zone. No other token kind starts with a
  // letter except weekdays, which are always first, so two or more tokens are needed.
  if (tokens.length >= 2) {
    const last = tokens[tokens.length - 1]!
    if (ZONE_SHAPE.test(last.text) && !/^R[-,]/.test(last.text)) {
      const z = canonicalZone(last.text)
      if (z === undefined) return fail(ctx, "timezone", last.text, last.pos, "unknown IANA time zone")
      tz = z
      tokens.pop()
    }
  }

  if (tokens.length === 1) {
    const word = tokens[0]!.text
    if (Object.hasOwn(SHORTCUTS, word)) return { ...SHORTCUTS[word]!, tz }
  }
  for (let i = 0; i + 1 < tokens.length; i++) {
    if (isTimeToken(tokens[i]!.text)) {
      const t = tokens[i + 1]!
      return fail(ctx, "expression", t.text, t.pos, "unexpected text after the time (not a known time zone)")
    }
  }
  if (tokens.length > 3) {
    return fail(
      ctx,
      "expression",
      tokens[3]!.text,
      tokens[3]!.pos,
      "too many tokens; expected [WEEKDAYS] [DATE] [TIME] [ZONE]"
    )
  }

  let dowTok: { text: string; pos: number } | undefined
  let dateTok: { text: string; pos: number } | undefined
  let timeTok: { text: string; pos: number } | undefined
  if (tokens.length === 3) {
    ;[dowTok, dateTok, timeTok] = tokens
  } else if (tokens.length === 2) {
    const [a, b] = tokens as [{ text: string; pos: number }, { text: string; pos: number }]
    if (isTimeToken(b.text)) {
      if (isWeekdayToken(a.text)) dowTok = a
      else dateTok = a
      timeTok = b
    } else if (isWeekdayToken(a.text) || a.text === "*") {
      dowTok = a
      dateTok = b
    } else {
      dateTok = a
      timeTok = b
    }
  } else {
    const t = tokens[0]!
    if (isTimeToken(t.text)) timeTok = t
    else if (isWeekdayToken(t.text)) {
      if (DAY_LOOKUP.has(t.text.split(/[.,]/)[0]!.toLowerCase())) dowTok = t
      else {
        return fail(
          ctx,
          "expression",
          t.text,
          t.pos,
          "not a shortcut (minutely, hourly, daily, weekly, monthly, quarterly, semiannually, yearly) nor a weekday"
        )
      }
    } else if (isDateToken(t.text) && t.text !== "*") dateTok = t
    else return fail(ctx, "time", t.text, t.pos, "expected HH:MM or HH:MM:SS")
  }

  let weekdays = ALL_WEEKDAYS
  if (dowTok !== undefined) {
    const w = parseWeekdays(ctx, dowTok.text, dowTok.pos)
    if (w instanceof CalendarParseError) return w
    weekdays = w
  }
  let date = ANY_DATE
  if (dateTok !== undefined) {
    const d = parseDate(ctx, dateTok.text, dateTok.pos)
    if (d instanceof CalendarParseError) return d
    date = d
  }
  let time = MIDNIGHT
  if (timeTok !== undefined) {
    const t = parseTime(ctx, timeTok.text, timeTok.pos)
    if (t instanceof CalendarParseError) return t
    time = t
  }
  return { weekdays, ...date, ...time, tz }
}

export const parse = (input: string, options?: ParseOptions): Either.Either<Calendar, CalendarParseError> => {
  const r = parseInternal(input, options ?? {})
  return r instanceof CalendarParseError ? Either.left(r) : Either.right(r)
}

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

const pad2 = (v: number): string => (v < 10 ? "0" + v : String(v))

const printField = (f: Field, pad: (v: number) => string): string => {
  switch (f._tag) {
    case "Any":
      return "*"
    case "List":
      return f.values.map(pad).join(",")
    case "Range":
      return `${pad(f.start)}..${pad(f.end)}`
    case "Step":
      return f.end === undefined ? `${pad(f.start)}/${f.step}` : `${pad(f.start)}..${pad(f.end)}/${f.step}`
  }
}

const printWeekdays = (mask: number): string => {
  const items: Array<string> = []
  let d = 0
  while (d < 7) {
    if ((mask & (1 << d)) === 0) {
      d++
      continue
    }
    let e = d
    while (e + 1 < 7 && (mask & (1 << (e + 1))) !== 0) e++
    if (e - d >= 2) items.push(`${DAY_NAMES[d]}..${DAY_NAMES[e]}`)
    else for (let i = d; i <= e; i++) items.push(DAY_NAMES[i]!)
    d = e + 1
  }
  return items.join(",")
}

/**
 * Normalised form: `[WEEKDAYS ]YEAR-MONTH-DAY HH:MM:SS[ ZONE]`, zero-padded, `R` shown
 * resolved, shortcuts expanded, zone omitted when UTC. Parse it without `defaultTz`.
 */
export const print = (cal: Calendar): string => {
  const date = `${printField(cal.year, String)}-${printField(cal.month, pad2)}-${printField(cal.day, pad2)}`
  const time = `${printField(cal.hour, pad2)}:${printField(cal.minute, pad2)}:${printField(cal.second, pad2)}`
  const dow = (cal.weekdays & ALL_WEEKDAYS) === ALL_WEEKDAYS ? "" : printWeekdays(cal.weekdays) + " "
  return `${dow}${date} ${time}${cal.tz === "UTC" ? "" : " " + cal.tz}`
}

// ---------------------------------------------------------------------------------------------
// Compiled form: per-field lookup tables built once per calendar
// ---------------------------------------------------------------------------------------------

interface Compiled {
  readonly utc: boolean
  readonly tz: string
  readonly dow: number
  readonly monthNext: Int8Array
  readonly monthPrev: Int8Array
  readonly dayOk: Uint8Array
  readonly hourNext: Int8Array
  readonly hourPrev: Int8Array
  readonly minuteNext: Int8Array
  readonly minutePrev: Int8Array
  readonly secondNext: Int8Array
  readonly secondPrev: Int8Array
  readonly yearOk: (y: number) => boolean
  /** Smallest allowed year ≥ y, or undefined. */
  readonly yearNext: (y: number) => number | undefined
  /** Largest allowed year ≤ y, or undefined. */
  readonly yearPrev: (y: number) => number | undefined
  /** Matching times of day per matching day, and prefix counts for counting within a day. */
  readonly perDay: number
  readonly minuteCount: number
  readonly secondCount: number
  /** `hoursBelow[h]` = allowed hours < h (likewise minutes); `secondsBelow[s]` = allowed seconds < s. */
  readonly hoursBelow: Uint8Array
  readonly minutesBelow: Uint8Array
  readonly secondsBelow: Uint8Array
}

const allows = (f: Field, v: number, max: number): boolean => {
  switch (f._tag) {
    case "Any":
      return true
    case "List":
      return f.values.includes(v)
    case "Range":
      return v >= f.start && v <= f.end
    case "Step":
      return v >= f.start && v <= (f.end ?? max) && (v - f.start) % f.step === 0
  }
}

/** Tables over 0..max+1: `next[v]` = smallest allowed ≥ v, `prev[v]` = largest allowed ≤ v, -1 if none. */
const tables = (
  f: Field,
  b: Bounds
): { next: Int8Array; prev: Int8Array; ok: Uint8Array; below: Uint8Array; count: number } => {
  const size = b.max + 2
  const ok = new Uint8Array(size)
  let count = 0
  for (let v = b.min; v <= b.max; v++) {
    if (allows(f, v, b.max)) {
      ok[v] = 1
      count++
    }
  }
  const next = new Int8Array(size).fill(-1)
  const prev = new Int8Array(size).fill(-1)
  let n = -1
  for (let v = size - 1; v >= 0; v--) {
    if (ok[v] === 1) n = v
    next[v] = n
  }
  let p = -1
  for (let v = 0; v < size; v++) {
    if (ok[v] === 1) p = v
    prev[v] = p
  }
  const below = new Uint8Array(size + 1)
  for (let v = 1; v <= size; v++) below[v] = below[v - 1]! + ok[v - 1]!
  return { next, prev, ok, below, count }
}

const yearFns = (f: Field): Pick<Compiled, "yearOk" | "yearNext" | "yearPrev"> => {
  switch (f._tag) {
    case "Any":
      return { yearOk: () => true, yearNext: (y) => y, yearPrev: (y) => y }
    case "List": {
      const vs = f.values
      return {
        yearOk: (y) => vs.includes(y),
        yearNext: (y) => vs.find((v) => v >= y),
        yearPrev: (y) => {
          for (let i = vs.length - 1; i >= 0; i--) if (vs[i]! <= y) return vs[i]
          return undefined
        }
      }
    }
    case "Range": {
      const { end, start } = f
      return {
        yearOk: (y) => y >= start && y <= end,
        yearNext: (y) => (y <= start ? start : y <= end ? y : undefined),
        yearPrev: (y) => (y >= end ? end : y >= start ? y : undefined)
      }
    }
    case "Step": {
      const { start, step } = f
      const end = f.end ?? I32_MAX
      return {
        yearOk: (y) => y >= start && y <= end && (y - start) % step === 0,
        yearNext: (y) => {
          if (y <= start) return start
          const v = start + Math.ceil((y - start) / step) * step
          return v <= end ? v : undefined
        },
        yearPrev: (y) => {
          if (y < start) return undefined
          return start + Math.floor((Math.min(y, end) - start) / step) * step
        }
      }
    }
  }
}

const compiledCache = new WeakMap<Calendar, Compiled>()

const compile = (cal: Calendar): Compiled => {
  let c = compiledCache.get(cal)
  if (c !== undefined) return c
  const mo = tables(cal.month, MONTH)
  const d = tables(cal.day, DAY)
  const h = tables(cal.hour, HOUR)
  const mi = tables(cal.minute, MINUTE)
  const s = tables(cal.second, SECOND)
  c = {
    utc: cal.tz === "UTC",
    tz: cal.tz,
    dow: cal.weekdays & ALL_WEEKDAYS,
    monthNext: mo.next,
    monthPrev: mo.prev,
    dayOk: d.ok,
    hourNext: h.next,
    hourPrev: h.prev,
    minuteNext: mi.next,
    minutePrev: mi.prev,
    secondNext: s.next,
    secondPrev: s.prev,
    ...yearFns(cal.year),
    perDay: h.count * mi.count * s.count,
    minuteCount: mi.count,
    secondCount: s.count,
    hoursBelow: h.below,
    minutesBelow: mi.below,
    secondsBelow: s.below
  }
  compiledCache.set(cal, c)
  return c
}

// ---------------------------------------------------------------------------------------------
// Field-wise search on a UTC-like axis of seconds (UTC itself, or a zone's wall clock)
// ---------------------------------------------------------------------------------------------

// Keep results inside what a JS Date / epoch-ms number can represent.
const MAX_YEAR = 275_759
const MIN_YEAR = -271_820
// Year changes a single search may make before giving up. With any year allowed, every
// satisfiable date pattern recurs within the 400-year Gregorian cycle (146097 days = 20871 weeks).
const YEAR_HORIZON = 512

const ymd = new Int32Array(3)

const fieldsMatch = (c: Compiled, sec: number): boolean => {
  const days = Math.floor(sec / SECONDS_PER_DAY)
  const tod = sec - days * SECONDS_PER_DAY
  civilFromDays(days, ymd)
  const h = Math.floor(tod / 3600)
  const mi = Math.floor((tod - h * 3600) / 60)
  const s = tod - h * 3600 - mi * 60
  return c.yearOk(ymd[0]!) && c.monthNext[ymd[1]!] === ymd[1] && c.dayOk[ymd[2]!] === 1 &&
    ((c.dow >> weekdayOfDays(days)) & 1) === 1 && c.hourNext[h] === h && c.minuteNext[mi] === mi &&
    c.secondNext[s] === s
}

/** Smallest matching second ≥ from, or undefined. */
const nextSec = (c: Compiled, from: number): number | undefined => {
  let days = Math.floor(from / SECONDS_PER_DAY)
  const tod = from - days * SECONDS_PER_DAY
  civilFromDays(days, ymd)
  let y = ymd[0]!, mo = ymd[1]!, d = ymd[2]!
  let h = Math.floor(tod / 3600)
  let mi = Math.floor((tod - h * 3600) / 60)
  let s = tod - h * 3600 - mi * 60
  let yearSteps = 0
  for (;;) {
    if (!c.yearOk(y)) {
      const ny = c.yearNext(y)
      if (ny === undefined || ++yearSteps > YEAR_HORIZON) return undefined
      y = ny
      mo = 1
      d = 1
      h = mi = s = 0
    }
    if (y > MAX_YEAR) return undefined
    const nmo = c.monthNext[mo]!
    if (nmo < 0) {
      if (++yearSteps > YEAR_HORIZON) return undefined
      y++
      mo = 1
      d = 1
      h = mi = s = 0
      continue
    }
    if (nmo !== mo) {
      mo = nmo
      d = 1
      h = mi = s = 0
    }
    const dim = daysInMonth(y, mo)
    let found = 0
    if (d <= dim) {
      days = daysFromCivil(y, mo, d)
      let wd = weekdayOfDays(days)
      for (let dd = d; dd <= dim; dd++) {
        if (c.dayOk[dd] === 1 && ((c.dow >> wd) & 1) === 1) {
          found = dd
          break
        }
        wd = wd === 6 ? 0 : wd + 1
      }
    }
    if (found === 0) {
      mo++
      d = 1
      h = mi = s = 0
      continue
    }
    if (found !== d) {
      days += found - d
      d = found
      h = mi = s = 0
    }
    const nh = c.hourNext[h]!
    if (nh < 0) {
      d++
      h = mi = s = 0
      continue
    }
    if (nh !== h) {
      h = nh
      mi = s = 0
    }
    const nmi = c.minuteNext[mi]!
    if (nmi < 0) {
      h++
      mi = s = 0
      continue
    }
    if (nmi !== mi) {
      mi = nmi
      s = 0
    }
    const ns = c.secondNext[s]!
    if (ns < 0) {
      mi++
      s = 0
      continue
    }
    return days * SECONDS_PER_DAY + h * 3600 + mi * 60 + ns
  }
}

/** Largest matching second ≤ from, or undefined. */
const prevSec = (c: Compiled, from: number): number | undefined => {
  let days = Math.floor(from / SECONDS_PER_DAY)
  const tod = from - days * SECONDS_PER_DAY
  civilFromDays(days, ymd)
  let y = ymd[0]!, mo = ymd[1]!, d = ymd[2]!
  let h = Math.floor(tod / 3600)
  let mi = Math.floor((tod - h * 3600) / 60)
  let s = tod - h * 3600 - mi * 60
  let yearSteps = 0
  for (;;) {
    if (!c.yearOk(y)) {
      const py = c.yearPrev(y)
      if (py === undefined || ++yearSteps > YEAR_HORIZON) return undefined
      y = py
      mo = 12
      d = 31
      h = 23
      mi = s = 59
    }
    if (y < MIN_YEAR) return undefined
    const pmo = mo >= 1 ? c.monthPrev[mo]! : -1
    if (pmo < 0) {
      if (++yearSteps > YEAR_HORIZON) return undefined
      y--
      mo = 12
      d = 31
      h = 23
      mi = s = 59
      continue
    }
    if (pmo !== mo) {
      mo = pmo
      d = 31
      h = 23
      mi = s = 59
    }
    const dim = daysInMonth(y, mo)
    if (d > dim) d = dim // only after a reset, so the time is already 23:59:59
    let found = 0
    if (d >= 1) {
      days = daysFromCivil(y, mo, d)
      let wd = weekdayOfDays(days)
      for (let dd = d; dd >= 1; dd--) {
        if (c.dayOk[dd] === 1 && ((c.dow >> wd) & 1) === 1) {
          found = dd
          break
        }
        wd = wd === 0 ? 6 : wd - 1
      }
    }
    if (found === 0) {
      mo--
      d = 31
      h = 23
      mi = s = 59
      continue
    }
    if (found !== d) {
      days -= d - found
      d = found
      h = 23
      mi = s = 59
    }
    const ph = h >= 0 ? c.hourPrev[h]! : -1
    if (ph < 0) {
      d--
      h = 23
      mi = s = 59
      continue
    }
    if (ph !== h) {
      h = ph
      mi = s = 59
    }
    const pmi = mi >= 0 ? c.minutePrev[mi]! : -1
    if (pmi < 0) {
      h--
      mi = s = 59
      continue
    }
    if (pmi !== mi) {
      mi = pmi
      s = 59
    }
    const ps = s >= 0 ? c.secondPrev[s]! : -1
    if (ps < 0) {
      mi--
      s = 59
      continue
    }
    return days * SECONDS_PER_DAY + h * 3600 + mi * 60 + ps
  }
}

// ---------------------------------------------------------------------------------------------
// Zones: mapping wall-clock seconds back to instants
// ---------------------------------------------------------------------------------------------

/** First UTC second in (lo, hi] whose offset equals the offset at hi (offset(lo) differs). */
const transitionIn = (zone: string, lo: number, hi: number): number => {
  const target = offsetSeconds(zone, hi)
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (offsetSeconds(zone, mid) === target) hi = mid
    else lo = mid
  }
  return hi
}

type WallResolution =
  | { readonly _tag: "Instant"; readonly sec: number }
  | { readonly _tag: "Gap"; readonly startWall: number; readonly endWall: number }

/**
 * The first instant whose wall clock reads `wall`, or the gap (wall times [startWall, endWall)
 * that do not exist) containing it. Assumes at most one transition within ±1 day, as every
 * zone in the tz database does.
 */
const resolveWall = (zone: string, wall: number): WallResolution => {
  const o1 = offsetSeconds(zone, wall - SECONDS_PER_DAY)
  const o2 = offsetSeconds(zone, wall + SECONDS_PER_DAY)
  const hiO = Math.max(o1, o2), loO = Math.min(o1, o2)
  // The larger offset gives the earlier instant: try it first so overlaps resolve to the first pass.
  if (offsetSeconds(zone, wall - hiO) === hiO) return { _tag: "Instant", sec: wall - hiO }
  if (loO !== hiO && offsetSeconds(zone, wall - loO) === loO) return { _tag: "Instant", sec: wall - loO }
  if (o1 < o2) {
    // Spring forward: the gap is [T + o1, T + o2) in wall time.
    const t = transitionIn(zone, wall - o2, wall - o1)
    if (offsetSeconds(zone, t - 1) === o1 && offsetSeconds(zone, t) === o2) {
      return { _tag: "Gap", startWall: t + o1, endWall: t + o2 }
    }
  }
  // Not a clean single transition (should not happen): treat this one wall second as missing.
  return { _tag: "Gap", startWall: wall, endWall: wall + 1 }
}

const SEARCH_GUARD = 10_000

const nextZoned = (c: Compiled, afterSec: number): number | undefined => {
  const zone = c.tz
  const oNow = offsetSeconds(zone, afterSec)
  let wallLow = afterSec + oNow // exclusive
  const oDay = offsetSeconds(zone, afterSec - SECONDS_PER_DAY)
  if (oDay > oNow) {
    // A fall-back happened in the last day: wall times of its first pass may lie ahead of
    // our wall clock, and those already fired (first occurrence), so start after them.
    const t = transitionIn(zone, afterSec - SECONDS_PER_DAY, afterSec)
    wallLow = Math.max(wallLow, t - 1 + oDay)
  }
  for (let guard = 0; guard < SEARCH_GUARD; guard++) {
    const w = nextSec(c, wallLow + 1)
    if (w === undefined) return undefined
    const r = resolveWall(zone, w)
    if (r._tag === "Instant") {
      if (r.sec > afterSec) return r.sec
      wallLow = w
    } else {
      wallLow = Math.max(w, r.endWall - 1)
    }
  }
  return undefined
}

const previousZoned = (c: Compiled, lastSec: number): number | undefined => {
  const zone = c.tz
  const oNow = offsetSeconds(zone, lastSec)
  let wallHigh = lastSec + oNow // inclusive
  const oDay = offsetSeconds(zone, lastSec - SECONDS_PER_DAY)
  if (oDay > oNow) {
    // After a fall-back the first pass reached later wall times than our wall clock shows.
    const t = transitionIn(zone, lastSec - SECONDS_PER_DAY, lastSec)
    wallHigh = Math.max(wallHigh, t - 1 + oDay)
  }
  for (let guard = 0; guard < SEARCH_GUARD; guard++) {
    const w = prevSec(c, wallHigh)
    if (w === undefined) return undefined
    const r = resolveWall(zone, w)
    if (r._tag === "Instant") {
      if (r.sec <= lastSec) return r.sec
      wallHigh = w - 1
    } else {
      wallHigh = Math.min(w - 1, r.startWall - 1)
    }
  }
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Public evaluation
// ---------------------------------------------------------------------------------------------

/** Does the calendar fire at this instant (its whole second)? Reference semantics, in the calendar's zone. */
export const matches = (cal: Calendar, epochMs: number): boolean => {
  if (!Number.isFinite(epochMs)) return false
  const c = compile(cal)
  const sec = Math.floor(epochMs / 1000)
  if (c.utc) return fieldsMatch(c, sec)
  const wall = wallSeconds(c.tz, sec)
  if (!fieldsMatch(c, wall)) return false
  const r = resolveWall(c.tz, wall)
  return r._tag === "Instant" && r.sec === sec
}

/** First firing instant strictly after `afterMs` (epoch ms, whole second), or undefined if none. */
export const next = (cal: Calendar, afterMs: number): number | undefined => {
  if (!Number.isFinite(afterMs)) return undefined
  const c = compile(cal)
  const afterSec = Math.floor(afterMs / 1000)
  const r = c.utc ? nextSec(c, afterSec + 1) : nextZoned(c, afterSec)
  return r === undefined ? undefined : r * 1000
}

/** The next `count` firing instants strictly after `afterMs` (fewer when the calendar runs out). */
export const upcoming = (cal: Calendar, afterMs: number, count: number): Array<number> => {
  const out: Array<number> = []
  let after = afterMs
  while (out.length < count) {
    const at = next(cal, after)
    if (at === undefined) break
    out.push(at)
    after = at
  }
  return out
}

/** Last firing instant strictly before `beforeMs` (epoch ms, whole second), or undefined if none. */
export const previous = (cal: Calendar, beforeMs: number): number | undefined => {
  if (!Number.isFinite(beforeMs)) return undefined
  const c = compile(cal)
  const lastSec = Math.ceil(beforeMs / 1000) - 1
  const r = c.utc ? prevSec(c, lastSec) : previousZoned(c, lastSec)
  return r === undefined ? undefined : r * 1000
}

/** Number of matching times of day ≤ tod (seconds of day) on a matching day. */
const countTodUpTo = (c: Compiled, tod: number): number => {
  if (tod < 0) return 0
  if (tod >= SECONDS_PER_DAY) return c.perDay
  const h = Math.floor(tod / 3600)
  const mi = Math.floor((tod - h * 3600) / 60)
  const s = tod - h * 3600 - mi * 60
  let n = c.hoursBelow[h]! * c.minuteCount * c.secondCount
  if (c.hourNext[h] === h) {
    n += c.minutesBelow[mi]! * c.secondCount
    if (c.minuteNext[mi] === mi) n += c.secondsBelow[s + 1]!
  }
  return n
}

/** Matching seconds on the wall axis in (w1, w2]: one `nextSec` per matching day, arithmetic within it. */
const countWalls = (c: Compiled, w1: number, w2: number): number => {
  let total = 0
  let from = w1 + 1
  while (from <= w2) {
    const m = nextSec(c, from)
    if (m === undefined || m > w2) break
    const dayStart = Math.floor(m / SECONDS_PER_DAY) * SECONDS_PER_DAY
    total += countTodUpTo(c, Math.min(w2 - dayStart, SECONDS_PER_DAY - 1)) - countTodUpTo(c, m - dayStart - 1)
    from = dayStart + SECONDS_PER_DAY
  }
  return total
}

/** The latest wall time that has fired (first occurrence) at or before UTC second x. */
const wallReached = (zone: string, x: number): number => {
  const oNow = offsetSeconds(zone, x)
  const oDay = offsetSeconds(zone, x - SECONDS_PER_DAY)
  if (oDay <= oNow) return x + oNow
  return Math.max(x + oNow, transitionIn(zone, x - SECONDS_PER_DAY, x) - 1 + oDay)
}

/**
 * Number of firing instants in (afterMs, untilMs]. Firing is a monotone map from the matching
 * wall times that exist to instants, so this counts matching wall seconds between the wall
 * clocks reached at both ends (no enumeration: one step per matching day) and subtracts those
 * that fall in DST gaps. Cost: a few cached offset lookups per day of range for zoned calendars.
 */
export const countBetween = (cal: Calendar, afterMs: number, untilMs: number): number => {
  if (!Number.isFinite(afterMs) || !Number.isFinite(untilMs) || untilMs <= afterMs) return 0
  const c = compile(cal)
  const a = Math.floor(afterMs / 1000)
  const b = Math.floor(untilMs / 1000)
  if (c.utc) return countWalls(c, a, b)
  const zone = c.tz
  const w1 = wallReached(zone, a)
  const w2 = wallReached(zone, b)
  let total = countWalls(c, w1, w2)
  // Gaps: probe the offset once a day (no zone changes offset twice within a day).
  let prevAt = a - SECONDS_PER_DAY
  let prevOff = offsetSeconds(zone, prevAt)
  for (let at = prevAt; at < b + SECONDS_PER_DAY;) {
    at = Math.min(at + SECONDS_PER_DAY, b + SECONDS_PER_DAY)
    const off = offsetSeconds(zone, at)
    if (off !== prevOff) {
      const t = transitionIn(zone, prevAt, at)
      const oA = offsetSeconds(zone, t - 1), oB = offsetSeconds(zone, t)
      if (oB > oA) {
        const lo = Math.max(w1, t + oA - 1), hi = Math.min(w2, t + oB - 1)
        if (hi > lo) total -= countWalls(c, lo, hi)
      }
    }
    prevAt = at
    prevOff = off
  }
  return total
}

// ---------------------------------------------------------------------------------------------
// As an Effect Schedule
// ---------------------------------------------------------------------------------------------

/**
 * The calendar as an Effect `Schedule`, as `Schedule.cron` is for cron: each step waits for the
 * next occurrence strictly after the later of now and the previous one, and outputs it (epoch
 * ms). `Effect.schedule(effect, Calendar.schedule(...))` runs at every occurrence;
 * `Effect.repeat` runs once at once and then at every occurrence. It ends when the calendar has
 * no further occurrence.
 *
 * A string is parsed with `zone` as the default zone (and `options`' `R` seeds); an invalid one is
 * a defect at the first step, as `Schedule.cron` does, so parse first where the input is not
 * trusted (`parse` names the position and the reason).
 *
 * This is the calendar's time, not bartoc's dispatch: a Schedule wakes on Node timers (1-4 ms
 * late, up to ~0.3 ms early), so bartoc's Ticker keeps its own last-millisecond leaf (a timer
 * short of the instant, then a futex wait; Ticker.ts) and `MissedTicks.plan` for gaps.
 */
export const schedule = (
  calendar: Calendar | string,
  zone?: string,
  options?: Omit<ParseOptions, "defaultTz">
): Schedule.Schedule<number, unknown> => {
  const parsed = typeof calendar === "string"
    ? parse(calendar, { ...options, ...(zone !== undefined ? { defaultTz: zone } : {}) })
    : Either.right(calendar)
  return Schedule.makeWithState<number | undefined, unknown, number>(undefined, (now, _input, previous) => {
    if (Either.isLeft(parsed)) return Effect.die(parsed.left)
    const from = previous === undefined ? now : Math.max(now, previous)
    const at = next(parsed.right, from)
    if (at === undefined) {
      return Effect.succeed([previous, previous ?? now, ScheduleDecision.done] as const)
    }
    return Effect.succeed([at, at, ScheduleDecision.continueWith(ScheduleInterval.after(at))] as const)
  })
}
