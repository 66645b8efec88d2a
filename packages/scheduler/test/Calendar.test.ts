import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Clock,
  Duration,
  Effect,
  Either,
  Exit,
  FastCheck as fc,
  Fiber,
  Schedule,
  TestClock
} from "effect"
import * as Calendar from "../src/Calendar.js"
import type { Field } from "../src/Calendar.js"

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

const ANY: Field = { _tag: "Any" }
const L = (...values: Array<number>): Field => ({ _tag: "List", values })
const Rg = (start: number, end: number): Field => ({ _tag: "Range", start, end })
const St = (start: number, step: number, end?: number): Field =>
  end === undefined ? { _tag: "Step", start, step } : { _tag: "Step", start, end, step }

const MON = 1 << 1
const ALL = Calendar.ALL_WEEKDAYS

const cal = (over: Partial<Calendar.Calendar>): Calendar.Calendar => ({
  weekdays: ALL,
  year: ANY,
  month: ANY,
  day: ANY,
  hour: ANY,
  minute: ANY,
  second: ANY,
  tz: "UTC",
  ...over
})
const hms = (h: Field, m: Field, s: Field) => ({ hour: h, minute: m, second: s })
const MIDNIGHT = hms(L(0), L(0), L(0))

const ok = (input: string, options?: Calendar.ParseOptions): Calendar.Calendar => {
  const r = Calendar.parse(input, options)
  if (Either.isLeft(r)) assert.fail(`expected ${JSON.stringify(input)} to parse, got: ${r.left.message}`)
  return r.right
}
const err = (input: string): Calendar.CalendarParseError => {
  const r = Calendar.parse(input)
  if (Either.isRight(r)) assert.fail(`expected ${JSON.stringify(input)} to fail, got: ${Calendar.print(r.right)}`)
  return r.left
}

const utc = (iso: string): number => {
  const ms = Date.parse(iso.endsWith("Z") ? iso : iso + "Z")
  assert.isFalse(Number.isNaN(ms), iso)
  return ms
}
const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString())

/** A single-valued field of a parsed calendar (for `R`). */
const single = (f: Field): number => {
  assert.strictEqual(f._tag, "List")
  if (f._tag !== "List") return NaN
  assert.strictEqual(f.values.length, 1)
  return f.values[0]!
}

// ---------------------------------------------------------------------------------------------
// reference §3.12 parse vectors, with D2's flips
// ---------------------------------------------------------------------------------------------

describe("parse: reference vectors §3.12", () => {
  const valid: Array<[number | string, string, Calendar.Calendar]> = [
    [1, "minutely", cal({ second: L(0) })],
    [2, "hourly", cal(hms(ANY, L(0), L(0)))],
    [3, "daily", cal(MIDNIGHT)],
    [4, "weekly", cal({ weekdays: MON, ...MIDNIGHT })],
    [5, "monthly", cal({ day: L(1), ...MIDNIGHT })],
    [6, "quarterly", cal({ month: L(1, 4, 7, 10), day: L(1), ...MIDNIGHT })],
    [7, "semiannually", cal({ month: L(1, 7), day: L(1), ...MIDNIGHT })],
    [8, "yearly", cal({ month: L(1), day: L(1), ...MIDNIGHT })],
    [9, " daily ", cal(MIDNIGHT)],
    [12, "12:30:15", cal(hms(L(12), L(30), L(15)))],
    [13, "*:*:*", cal({})],
    [17, "Mon *,*,01 00:00:00", cal({ weekdays: MON, day: L(1), ...MIDNIGHT })],
    [18, "Mon..Fri *,*,* 09:00:00", cal({ weekdays: 0b0111110, ...hms(L(9), L(0), L(0)) })],
    [19, "Mon,Wed,Fri * 08:30:00", cal({ weekdays: 0b0101010, ...hms(L(8), L(30), L(0)) })],
    [20, "Monday..Wednesday *,*,* 1:2:3", cal({ weekdays: 0b0001110, ...hms(L(1), L(2), L(3)) })],
    [21, "Mon..Mon * 0:0:0", cal({ weekdays: MON, ...MIDNIGHT })],
    [27, "2025,10,20 12:00:00", cal({ year: L(2025), month: L(10), day: L(20), ...hms(L(12), L(0), L(0)) })],
    [30, "-1,1,1 0:0:0", cal({ year: L(-1), month: L(1), day: L(1), ...MIDNIGHT })],
    [31, "2020..2025,*,* 0:0:0", cal({ year: Rg(2020, 2025), ...MIDNIGHT })],
    [33, "2020/2,*,* 0:0:0", cal({ year: St(2020, 2), ...MIDNIGHT })],
    ["37a", "*,*,31 0:0:0", cal({ day: L(31), ...MIDNIGHT })],
    [38, "*,1..12/3,1 0:0:0", cal({ month: St(1, 3, 12), day: L(1), ...MIDNIGHT })],
    ["43b", "*,*,* 23:59:59", cal(hms(L(23), L(59), L(59)))],
    [45, "*,*,* 0..5:*:0", cal(hms(Rg(0, 5), ANY, L(0)))],
    [47, "*,*,* 1,13:0:0", cal(hms(L(1, 13), L(0), L(0)))],
    [51, "*,*,* *:0/15:0", cal(hms(ANY, St(0, 15), L(0)))],
    [52, "*,*,* *:0..30/15:0", cal(hms(ANY, St(0, 15, 30), L(0)))],
    [56, "*,*,* +5:+05:+0", cal(hms(L(5), L(5), L(0)))],
    [57, "*,*,* 0010:0:0", cal(hms(L(10), L(0), L(0)))],
    // D2 flips: these are now valid.
    [23, "mon * 00:00:00", cal({ weekdays: MON, ...MIDNIGHT })],
    [26, "Mon 10:00:00", cal({ weekdays: MON, ...hms(L(10), L(0), L(0)) })],
    [28, "2025-10-20 12:00:00", cal({ year: L(2025), month: L(10), day: L(20), ...hms(L(12), L(0), L(0)) })],
    [40, "*,*,* 10:00", cal(hms(L(10), L(0), L(0)))]
  ]
  for (const [n, input, expected] of valid) {
    it(`#${n} ${JSON.stringify(input)} parses`, () => {
      assert.deepStrictEqual(ok(input), expected)
    })
  }

  const invalid: Array<[number | string, string, string]> = [
    [10, "Daily", "expression"],
    [11, "MINUTELY", "expression"],
    [22, "Sat..Sun * 00:00:00", "weekday"],
    [24, "Funday * 0:0:0", "weekday"],
    [25, "Mon, * 0:0:0", "weekday"],
    [29, "2025/10/20 12:00:00", "date"],
    [32, "2025..2020,*,* 0:0:0", "year"],
    [34, "R,*,* 0:0:0", "year"],
    ["36a", "*,13,* 0:0:0", "month"],
    ["36b", "*,0,* 0:0:0", "month"],
    ["37b", "*,*,32 0:0:0", "day"],
    [39, "*,* 10:00:00", "date"],
    [41, "* * * 10:00:00", "expression"],
    ["42a", "", "expression"],
    ["42b", "   ", "expression"],
    ["43a", "*,*,* 24:00:00", "hour"],
    ["44a", "*,*,* 0:0:60", "second"],
    ["44b", "*,*,* 256:0:0", "hour"],
    [46, "*,*,* 5..0:*:0", "hour"],
    [48, "*,*,* 1,,13:0:0", "hour"],
    [49, "*,*,* 1..3,5:0:0", "hour"],
    ["50a", "*,*,* 1-5:0:0", "hour"],
    ["50b", "*,*,* -1:0:0", "hour"],
    [53, "*,*,* *:*/5:0", "minute"],
    [54, "*,*,* *:5/0:0", "minute"],
    [55, "*,*,* *:30..10/5:0", "minute"],
    [60, "*,*,* 0/256:0:0", "hour"],
    // D2 flips: steps beyond the field maximum are parse errors (the reference panicked later).
    [58, "*,*,* 0:0:0/60", "second"],
    [59, "*,*,* 0/24:0:0", "hour"]
  ]
  for (const [n, input, field] of invalid) {
    it(`#${n} ${JSON.stringify(input)} is an error naming the ${field}`, () => {
      const e = err(input)
      assert.strictEqual(e._tag, "CalendarParseError")
      assert.strictEqual(e.field, field)
      assert.strictEqual(e.input, input)
    })
  }

  it("#14/#15 `R` minute and second are stable and in range, comma and dash forms alike", () => {
    const a = ok("*,*,* 10:R:R", { agent: "web1", schedule: "backup" })
    const b = ok("*-*-* 10:R:R", { agent: "web1", schedule: "backup" })
    assert.deepStrictEqual(a, b)
    assert.deepStrictEqual(a.hour, L(10))
    const m = single(a.minute), s = single(a.second)
    assert.isTrue(m >= 0 && m <= 59 && s >= 0 && s <= 59)
    assert.deepStrictEqual(ok("*,*,* 10:R:R", { agent: "web1", schedule: "backup" }), a)
  })

  it("#16 step hours with random minute/second", () => {
    const c = ok("*,*,* 0/2:R:R")
    assert.deepStrictEqual(c.hour, St(0, 2))
    assert.isTrue(single(c.minute) <= 59 && single(c.second) <= 59)
  })

  it("#35 `R` month and day", () => {
    const c = ok("*,R,R 0:0:0")
    const mo = single(c.month), d = single(c.day)
    assert.isTrue(mo >= 1 && mo <= 12 && d >= 1 && d <= 31)
  })
})

describe("parse: single-field unit vectors", () => {
  const field = (name: "year" | "month" | "day" | "hour" | "minute" | "second", text: string) => {
    const expr = {
      year: `${text},*,* 0:0:0`,
      month: `*,${text},* 0:0:0`,
      day: `*,*,${text} 0:0:0`,
      hour: `*,*,* ${text}:0:0`,
      minute: `*,*,* 0:${text}:0`,
      second: `*,*,* 0:0:${text}`
    }[name]
    return Calendar.parse(expr)
  }
  for (const name of ["year", "month", "day", "hour", "minute", "second"] as const) {
    it(`${name}: "" is an error, * is any, R ${name === "year" ? "is an error" : "is a value"}`, () => {
      const empty = field(name, "")
      assert.isTrue(Either.isLeft(empty))
      if (Either.isLeft(empty)) assert.strictEqual(empty.left.field, name)
      const any = field(name, "*")
      assert.isTrue(Either.isRight(any) && any.right[name]._tag === "Any")
      assert.strictEqual(Either.isRight(field(name, "R")), name !== "year")
    })
  }
  it("month 0 is an error, 01 is 1, 0/1 is an error", () => {
    assert.isTrue(Either.isLeft(field("month", "0")))
    assert.isTrue(Either.isLeft(field("month", "0/1")))
    assert.deepStrictEqual(ok("*,01,* 0:0:0").month, L(1))
  })
  it("year ranges, steps and lists print identically", () => {
    for (const y of ["2020..2025", "2020/2", "2020..2025/3", "2021,2023,2025"]) {
      // Lists are only possible in the dash form (the comma separates the comma form's fields).
      const c = ok(`${y}-*-* 0:0:0`)
      assert.strictEqual(Calendar.print(c).split("-*-*")[0], y)
    }
  })
  it("hour 0..1, 23, 0 and minute 24, 0..24 are valid", () => {
    assert.deepStrictEqual(ok("*,*,* 0..1:0:0").hour, Rg(0, 1))
    assert.deepStrictEqual(ok("*,*,* 23:0:0").hour, L(23))
    assert.deepStrictEqual(ok("*,*,* 0:0:0").hour, L(0))
    assert.deepStrictEqual(ok("*,*,* 0:24:0").minute, L(24))
    assert.deepStrictEqual(ok("*,*,* 0:0..24:0").minute, Rg(0, 24))
  })
  it("weekday * is any, Mon..Hogwash,Wed is an error, sUn is Sunday (D2 flip)", () => {
    assert.strictEqual(ok("* * 0:0:0").weekdays, ALL)
    const e = err("Mon..Hogwash,Wed * 0:0:0")
    assert.strictEqual(e.field, "weekday")
    assert.strictEqual(e.text, "Hogwash")
    assert.strictEqual(e.position, 5)
    assert.strictEqual(ok("sUn").weekdays, 1)
    assert.strictEqual(ok("sUn * 0:0:0").weekdays, 1)
  })
})

describe("parse: D2 extensions", () => {
  it("systemd dash dates, lists in the dash form, HH:MM, date only, weekday + time", () => {
    assert.deepStrictEqual(ok("*-*-01"), cal({ day: L(1), ...MIDNIGHT }))
    assert.deepStrictEqual(ok("*-1,7-1 6:00"), cal({ month: L(1, 7), day: L(1), ...hms(L(6), L(0), L(0)) }))
    assert.deepStrictEqual(ok("Wed 17:48"), cal({ weekdays: 1 << 3, ...hms(L(17), L(48), L(0)) }))
    assert.deepStrictEqual(ok("2026-02-28"), cal({ year: L(2026), month: L(2), day: L(28), ...MIDNIGHT }))
    assert.deepStrictEqual(ok("Sat,Sun"), cal({ weekdays: 0b1000001, ...MIDNIGHT }))
  })
  it("weekday names in any case print canonically", () => {
    for (const w of ["mon", "MON", "Monday", "mOnDaY"]) {
      assert.strictEqual(Calendar.print(ok(`${w} 9:00`)), "Mon *-*-* 09:00:00")
    }
    assert.strictEqual(Calendar.print(ok("monday..FRIDAY *-*-* 9:00")), "Mon..Fri *-*-* 09:00:00")
  })
  it("negative years: comma form, and dash form with a leading minus sign", () => {
    assert.deepStrictEqual(ok("-1-01-01").year, L(-1))
    assert.deepStrictEqual(ok("-5..-1-*-* 0:0").year, Rg(-5, -1))
    assert.deepStrictEqual(ok("-10/2-*-*").year, St(-10, 2))
    assert.strictEqual(Calendar.print(ok("-1,1,1 0:0:0")), "-1-01-01 00:00:00")
  })
  it("trailing time zone: validated, canonicalised, printed unless UTC", () => {
    const c = ok("Mon..Fri *-*-* 09:00:00 europe/berlin")
    assert.strictEqual(c.tz, "Europe/Berlin")
    assert.strictEqual(Calendar.print(c), "Mon..Fri *-*-* 09:00:00 Europe/Berlin")
    assert.strictEqual(ok("daily America/New_York").tz, "America/New_York")
    assert.strictEqual(ok("12:00 Etc/UTC").tz, "UTC")
    assert.strictEqual(Calendar.print(ok("12:00 UTC")), "*-*-* 12:00:00")
    const e = err("*-*-* 12:00 Mars/Olympus")
    assert.strictEqual(e.field, "timezone")
    assert.strictEqual(e.text, "Mars/Olympus")
    assert.strictEqual(e.position, 12)
  })
  it("defaultTz applies when the expression names no zone", () => {
    assert.strictEqual(ok("12:00", { defaultTz: "Asia/Tokyo" }).tz, "Asia/Tokyo")
    assert.strictEqual(ok("12:00 UTC", { defaultTz: "Asia/Tokyo" }).tz, "UTC")
    const r = Calendar.parse("12:00", { defaultTz: "Nowhere/Land" })
    assert.isTrue(Either.isLeft(r) && r.left.field === "timezone")
  })
  it("shortcuts are exact lowercase keywords, expanded when printed", () => {
    assert.strictEqual(Calendar.print(ok("quarterly")), "*-01,04,07,10-01 00:00:00")
    assert.strictEqual(Calendar.print(ok("weekly")), "Mon *-*-* 00:00:00")
    assert.strictEqual(Calendar.print(ok("minutely")), "*-*-* *:*:00")
    for (const bad of ["Daily", "MINUTELY", "annually", "@daily", "constructor", "toString"]) {
      assert.isTrue(Either.isLeft(Calendar.parse(bad)), bad)
    }
  })
  it("lone `*`, a bare number and a DOW after the date are errors", () => {
    for (const bad of ["*", "10", "*-*-* Mon", "Mon Tue 10:00", "*-* 10:00", "10:00:00:00", "10"]) {
      assert.isTrue(Either.isLeft(Calendar.parse(bad)), bad)
    }
  })
})

describe("parse errors name field, text and position", () => {
  const cases: Array<[string, string, string, number, string?]> = [
    ["*,*,* 24:00:00", "hour", "24", 6, "invalid hour '24' at position 6: value out of range 0..23"],
    ["  *-*-* 10:61", "minute", "61", 11],
    ["*-13-* 10:00", "month", "13", 2],
    ["Mon..Fri *-*-32 10:00", "day", "32", 13],
    ["*-*-* 1,,3:00", "hour", "", 8],
    ["*-*-* *:*/5", "minute", "*/5", 8],
    ["*-*-* 0:0:0/60", "second", "60", 12],
    ["*-*-* 0/24:0:0", "hour", "24", 8],
    ["*-*-* 5/24:0:0", "hour", "24", 8],
    ["2025..2020-*-* 0:0", "year", "2025..2020", 0],
    ["Tue..Mon * 0:0", "weekday", "Tue..Mon", 0],
    ["*-*-* 1:2:3 4", "expression", "4", 12],
    ["*-*-* 1x:00", "hour", "1x", 6],
    ["*-*-*-* 1:00", "date", "*-*-*-*", 0],
    ["*-*-* 10", "time", "10", 6],
    ["*-0/13-*", "month", "13", 4],
    ["*-*-0/32", "day", "32", 6],
    ["2147483648-*-*", "year", "2147483648", 0]
  ]
  for (const [input, field, text, position, message] of cases) {
    it(JSON.stringify(input), () => {
      const e = err(input)
      assert.strictEqual(e.field, field)
      assert.strictEqual(e.text, text)
      assert.strictEqual(e.position, position)
      assert.strictEqual(input.slice(position, position + text.length), text)
      assert.isTrue(e.reason.length > 0)
      if (message !== undefined) assert.strictEqual(e.message, message)
      else assert.include(e.message, `invalid ${field} '${text}' at position ${position}: `)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// reference match vectors M1–M37
// ---------------------------------------------------------------------------------------------

describe("matches: reference vectors", () => {
  const vectors: Array<[string, string, string, boolean]> = [
    ["M1", "weekly", "2025-10-20T00:00:00", true],
    ["M2", "weekly", "2025-10-21T00:00:00", false],
    ["M3", "weekly", "2025-10-20T00:00:01", false],
    ["M4", "monthly", "2025-10-01T00:00:00", true],
    ["M5", "monthly", "2025-10-02T00:00:00", false],
    ["M6", "quarterly", "2025-10-01T00:00:00", true],
    ["M7", "quarterly", "2025-11-01T00:00:00", false],
    ["M8", "semiannually", "2025-07-01T00:00:00", true],
    ["M9", "semiannually", "2025-04-01T00:00:00", false],
    ["M10", "yearly", "2025-01-01T00:00:00", true],
    ["M11", "yearly", "2025-01-01T00:00:59", false],
    ["M12", "minutely", "2025-10-20T13:37:00", true],
    ["M13", "minutely", "2025-10-20T13:37:01", false],
    ["M14", "hourly", "2025-10-20T13:00:00", true],
    ["M15", "hourly", "2025-10-20T13:01:00", false],
    ["M16", "daily", "2025-10-20T00:00:00", true],
    ["M17", "daily", "2025-10-20T12:00:00", false],
    ["M18", "Mon *,*,01 00:00:00", "2025-09-01T00:00:00", true],
    ["M19", "Mon *,*,01 00:00:00", "2025-10-01T00:00:00", false],
    ["M20", "Mon *,*,01 00:00:00", "2025-10-20T00:00:00", false],
    ["M21", "*,*,* *:0/15:0", "2025-10-20T10:45:00", true],
    ["M22", "*,*,* *:0/15:0", "2025-10-20T10:50:00", false],
    ["M23a", "*,*,* *:0..30/15:0", "2025-10-20T10:30:00", true],
    ["M23b", "*,*,* *:0..30/15:0", "2025-10-20T10:45:00", false],
    ["M24a", "*,*,* 0/2:0:0", "2025-10-20T14:00:00", true],
    ["M24b", "*,*,* 0/2:0:0", "2025-10-20T15:00:00", false],
    ["M25a", "*,*,* 1/5:0:0", "2025-10-20T11:00:00", true],
    ["M25b", "*,*,* 1/5:0:0", "2025-10-20T00:00:00", false],
    ["M26a", "2020/2,*,* 0:0:0", "2024-05-05T00:00:00", true],
    ["M26b", "2020/2,*,* 0:0:0", "2025-05-05T00:00:00", false],
    ["M26c", "2020/2,*,* 0:0:0", "2018-05-05T00:00:00", false],
    ["M27a", "Mon..Fri *,*,* 09:00:00", "2025-10-24T09:00:00", true],
    ["M27b", "Mon..Fri *,*,* 09:00:00", "2025-10-25T09:00:00", false],
    ["M28", "Sun * 0:0:0", "2025-10-19T00:00:00", true],
    ["M29a", "*,2..10/3,* 0:0:0", "2025-08-03T00:00:00", true],
    ["M29b", "*,2..10/3,* 0:0:0", "2025-09-03T00:00:00", false],
    ["M30a", "*,*,* 0..5:*:0", "2025-10-20T05:59:00", true],
    ["M30b", "*,*,* 0..5:*:0", "2025-10-20T06:00:00", false],
    ["M31", "*,*,* 1,13:0:0", "2025-10-20T13:00:00", true]
  ]
  for (const [n, expr, at, expected] of vectors) {
    it(`${n} ${expr} @ ${at} → ${expected}`, () => {
      assert.strictEqual(Calendar.matches(ok(expr), utc(at)), expected)
    })
  }

  const monthVector = (n: string, field: string, good: Array<number>) =>
    it(`${n} month/day ${field}: ${good.join(",")} match, the rest of 1..12 do not`, () => {
      const byMonth = ok(`*,${field},* 0:0:0`)
      const byDay = ok(`*,*,${field} 0:0:0`)
      for (let v = 1; v <= 12; v++) {
        const mm = String(v).padStart(2, "0")
        assert.strictEqual(Calendar.matches(byMonth, utc(`2025-${mm}-01T00:00:00`)), good.includes(v), `month ${v}`)
        assert.strictEqual(Calendar.matches(byDay, utc(`2025-01-${mm}T00:00:00`)), good.includes(v), `day ${v}`)
      }
    })
  monthVector("M32", "1..12/2", [1, 3, 5, 7, 9, 11])
  monthVector("M33", "1..12/3", [1, 4, 7, 10])
  monthVector("M34", "1..12/4", [1, 5, 9])
  monthVector("M35", "2..10/3", [2, 5, 8])

  it("M36/M37 `*,*,* 5/24:0:0` is a parse error now (the reference panicked at 05:00)", () => {
    const e = err("*,*,* 5/24:0:0")
    assert.strictEqual(e.field, "hour")
    assert.strictEqual(e.text, "24")
  })

  it("sub-second instants match on their whole second", () => {
    assert.isTrue(Calendar.matches(ok("daily"), utc("2025-10-20T00:00:00.999")))
  })
})

// ---------------------------------------------------------------------------------------------
// next / previous
// ---------------------------------------------------------------------------------------------

describe("next / previous", () => {
  const n = (expr: string, after: string) => iso(Calendar.next(ok(expr), utc(after)))
  const p = (expr: string, before: string) => iso(Calendar.previous(ok(expr), utc(before)))

  it("is strictly after / before, whole seconds", () => {
    assert.strictEqual(n("*:*:*", "2026-01-01T00:00:00"), "2026-01-01T00:00:01.000Z")
    assert.strictEqual(n("*:*:*", "2026-01-01T00:00:00.400"), "2026-01-01T00:00:01.000Z")
    assert.strictEqual(p("*:*:*", "2026-01-01T00:00:00"), "2025-12-31T23:59:59.000Z")
    assert.strictEqual(p("*:*:*", "2026-01-01T00:00:00.400"), "2026-01-01T00:00:00.000Z")
    assert.strictEqual(n("daily", "2026-01-01T00:00:00"), "2026-01-02T00:00:00.000Z")
    assert.strictEqual(p("daily", "2026-01-01T00:00:00"), "2025-12-31T00:00:00.000Z")
  })
  it("rolls over minute, hour, day, month and year boundaries", () => {
    assert.strictEqual(n("*:0/15:00", "2026-12-31T23:59:59"), "2027-01-01T00:00:00.000Z")
    assert.strictEqual(n("*-*-* 23:59:59", "2026-12-31T23:59:59"), "2027-01-01T23:59:59.000Z")
    assert.strictEqual(n("Mon..Fri *-*-* 12:00:00", "2026-11-20T12:00:00"), "2026-11-23T12:00:00.000Z")
    assert.strictEqual(p("Mon..Fri *-*-* 12:00:00", "2026-11-23T12:00:00"), "2026-11-20T12:00:00.000Z")
    assert.strictEqual(p("*:0/15:00", "2027-01-01T00:00:00"), "2026-12-31T23:45:00.000Z")
  })
  it("leap years: Feb 29 from 2026 is 2028-02-29; 2100 is skipped", () => {
    assert.strictEqual(n("*-02-29 12:00:00", "2026-03-01T00:00:00"), "2028-02-29T12:00:00.000Z")
    assert.strictEqual(p("*-02-29 12:00:00", "2026-03-01T00:00:00"), "2024-02-29T12:00:00.000Z")
    assert.strictEqual(n("*-02-29 12:00:00", "2096-03-01T00:00:00"), "2104-02-29T12:00:00.000Z")
    assert.strictEqual(n("*-02-29 12:00:00", "2396-03-01T00:00:00"), "2400-02-29T12:00:00.000Z")
    assert.strictEqual(n("*-*-* 0:0", "2028-02-28T12:00:00"), "2028-02-29T00:00:00.000Z")
  })
  it("month ends: *-*-31 skips 30-day months and February", () => {
    assert.strictEqual(n("*-*-31", "2026-01-31T00:00:00"), "2026-03-31T00:00:00.000Z")
    assert.strictEqual(n("*-*-31", "2026-03-31T00:00:00"), "2026-05-31T00:00:00.000Z")
    assert.strictEqual(p("*-*-31", "2026-03-31T00:00:00"), "2026-01-31T00:00:00.000Z")
    assert.strictEqual(n("*-*-30 6:00", "2026-01-30T06:00:00"), "2026-03-30T06:00:00.000Z")
  })
  it("weekday AND day-of-month (reference semantics)", () => {
    assert.strictEqual(n("Mon *-*-01 00:00:00", "2025-09-01T00:00:00"), "2025-12-01T00:00:00.000Z")
    assert.strictEqual(n("Fri *-*-13 00:00:00", "2026-01-01T00:00:00"), "2026-02-13T00:00:00.000Z")
    assert.strictEqual(n("Mon *-02-29 0:0", "2026-01-01T00:00:00"), "2044-02-29T00:00:00.000Z")
  })
  it("impossible dates and exhausted years give undefined quickly", () => {
    const t0 = performance.now()
    for (const expr of ["*-02-30 0:0", "*-04-31", "*,2,30 0:0:0", "Mon 2026-02-29", "*-02-30 0:0 Europe/Berlin"]) {
      assert.isUndefined(Calendar.next(ok(expr), utc("2026-01-01T00:00:00")), expr)
      assert.isUndefined(Calendar.previous(ok(expr), utc("2026-01-01T00:00:00")), expr)
    }
    assert.isUndefined(n("2025-10-20 12:00:00", "2025-10-20T12:00:00"))
    assert.strictEqual(p("2025-10-20 12:00:00", "2026-01-01T00:00:00"), "2025-10-20T12:00:00.000Z")
    assert.strictEqual(n("2020..2030/5-*-* 0:0", "2026-01-01T00:00:00"), "2030-01-01T00:00:00.000Z")
    assert.isUndefined(n("2020..2030/5-*-* 0:0", "2030-12-31T00:00:00"))
    assert.isUndefined(Calendar.next(ok("*:*:*"), NaN))
    assert.isBelow(performance.now() - t0, 1000)
  })
  it("years before 100 and negative years are exact (no Date.UTC 19xx mapping)", () => {
    assert.strictEqual(n("0050-01-01 0:0", "0001-01-01T00:00:00"), "0050-01-01T00:00:00.000Z")
    assert.strictEqual(iso(Calendar.next(ok("-1,1,1 0:0:0"), Date.UTC(-3, 0))), "-000001-01-01T00:00:00.000Z")
  })

  describe("time zones and DST", () => {
    it("Europe/Berlin spring gap: 02:30 does not fire on 2026-03-29", () => {
      const c = ok("*-*-* 02:30:00 Europe/Berlin")
      assert.strictEqual(iso(Calendar.next(c, utc("2026-03-28T01:30:00"))), "2026-03-30T00:30:00.000Z")
      assert.strictEqual(iso(Calendar.previous(c, utc("2026-03-30T00:30:00"))), "2026-03-28T01:30:00.000Z")
    })
    it("Europe/Berlin autumn overlap: 02:30 fires once, at the first (CEST) occurrence", () => {
      const c = ok("*-*-* 02:30:00 Europe/Berlin")
      assert.strictEqual(iso(Calendar.next(c, utc("2026-10-24T12:00:00"))), "2026-10-25T00:30:00.000Z")
      assert.strictEqual(iso(Calendar.next(c, utc("2026-10-25T00:30:00"))), "2026-10-26T01:30:00.000Z")
      assert.isTrue(Calendar.matches(c, utc("2026-10-25T00:30:00")))
      assert.isFalse(Calendar.matches(c, utc("2026-10-25T01:30:00")), "second pass does not fire")
      assert.strictEqual(iso(Calendar.previous(c, utc("2026-10-26T00:00:00"))), "2026-10-25T00:30:00.000Z")
    })
    it("Europe/Berlin: every minute across the fall-back, from inside the second pass", () => {
      const c = ok("*:*:00 Europe/Berlin")
      // 01:10Z is 02:10 CET (second pass); 02:10..02:59 already fired in the first pass.
      assert.strictEqual(iso(Calendar.next(c, utc("2026-10-25T01:10:00"))), "2026-10-25T02:00:00.000Z")
      // Last firing before 01:10Z is 02:59 CEST = 00:59Z.
      assert.strictEqual(iso(Calendar.previous(c, utc("2026-10-25T01:10:00"))), "2026-10-25T00:59:00.000Z")
      assert.strictEqual(iso(Calendar.next(c, utc("2026-10-25T00:58:30"))), "2026-10-25T00:59:00.000Z")
      assert.strictEqual(iso(Calendar.next(c, utc("2026-10-25T00:59:00"))), "2026-10-25T02:00:00.000Z")
    })
    it("Europe/Berlin: every second across the spring gap jumps, no scanning", () => {
      const c = ok("*:*:* Europe/Berlin")
      assert.strictEqual(iso(Calendar.next(c, utc("2026-03-29T00:59:59"))), "2026-03-29T01:00:00.000Z")
      assert.strictEqual(iso(Calendar.previous(c, utc("2026-03-29T01:00:00"))), "2026-03-29T00:59:59.000Z")
      const d = ok("*-*-* 02:*:* Europe/Berlin")
      assert.strictEqual(iso(Calendar.next(d, utc("2026-03-28T23:00:00"))), "2026-03-30T00:00:00.000Z")
      assert.strictEqual(iso(Calendar.previous(d, utc("2026-03-30T00:00:00"))), "2026-03-28T01:59:59.000Z")
    })
    it("America/New_York: spring gap skipped, autumn repeat fires once", () => {
      const c = ok("*-*-* 02:30:00 America/New_York")
      // 2026-03-08 02:30 EST→EDT does not exist.
      assert.strictEqual(iso(Calendar.next(c, utc("2026-03-07T00:00:00"))), "2026-03-07T07:30:00.000Z")
      assert.strictEqual(iso(Calendar.next(c, utc("2026-03-07T07:30:00"))), "2026-03-09T06:30:00.000Z")
      const d = ok("*-*-* 01:30:00 America/New_York")
      // 2026-11-01 01:30 occurs at 05:30Z (EDT) and 06:30Z (EST): fires at 05:30Z only.
      assert.strictEqual(iso(Calendar.next(d, utc("2026-10-31T12:00:00"))), "2026-11-01T05:30:00.000Z")
      assert.strictEqual(iso(Calendar.next(d, utc("2026-11-01T05:30:00"))), "2026-11-02T06:30:00.000Z")
      assert.isFalse(Calendar.matches(d, utc("2026-11-01T06:30:00")))
    })
    it("weekday and date are evaluated on the zone's wall clock", () => {
      const c = ok("Mon *-*-* 00:30 Asia/Tokyo") // Mon 00:30 JST = Sun 15:30Z
      assert.strictEqual(iso(Calendar.next(c, utc("2026-11-20T00:00:00"))), "2026-11-22T15:30:00.000Z")
      assert.isTrue(Calendar.matches(c, utc("2026-11-22T15:30:00")))
    })
    it("Australia/Lord_Howe half-hour fold: 01:30–01:59 repeat on 2026-04-05 and fire once", () => {
      // 02:00 LHDT (+11) = 15:00Z goes back to 01:30 LHST (+10:30).
      const c = ok("*-*-* 01:45:00 Australia/Lord_Howe")
      assert.strictEqual(iso(Calendar.next(c, utc("2026-04-04T00:00:00"))), "2026-04-04T14:45:00.000Z")
      assert.strictEqual(iso(Calendar.next(c, utc("2026-04-04T14:45:00"))), "2026-04-05T15:15:00.000Z")
      assert.isFalse(Calendar.matches(c, utc("2026-04-04T15:15:00")), "second pass does not fire")
      assert.strictEqual(iso(Calendar.previous(c, utc("2026-04-05T15:15:00"))), "2026-04-04T14:45:00.000Z")
      const q = ok("*:0/15:00 Australia/Lord_Howe")
      // 15:05Z is 01:35 on the second pass; 01:45 and the rest up to 01:59 fired on the first.
      assert.strictEqual(iso(Calendar.next(q, utc("2026-04-04T15:05:00"))), "2026-04-04T15:30:00.000Z")
      assert.strictEqual(iso(Calendar.previous(q, utc("2026-04-04T15:05:00"))), "2026-04-04T14:45:00.000Z")
      assert.strictEqual(iso(Calendar.next(q, utc("2026-04-04T14:45:00"))), "2026-04-04T15:30:00.000Z")
      // The wall day lasts 24.5 h; its 48 half hours fire once each.
      assert.strictEqual(
        Calendar.countBetween(
          ok("*:0/30:00 Australia/Lord_Howe"),
          utc("2026-04-04T12:59:00"),
          utc("2026-04-05T13:00:00")
        ),
        48
      )
    })
    it("Australia/Lord_Howe half-hour gap: 02:00–02:29 do not exist on 2026-10-04", () => {
      // 02:00 LHST (+10:30) = 15:30Z jumps to 02:30 LHDT (+11).
      const c = ok("*-*-* 02:15:00 Australia/Lord_Howe")
      assert.strictEqual(iso(Calendar.next(c, utc("2026-10-03T00:00:00"))), "2026-10-04T15:15:00.000Z")
      assert.strictEqual(iso(Calendar.previous(c, utc("2026-10-04T15:15:00"))), "2026-10-02T15:45:00.000Z")
      const d = ok("*-*-* 02:*:* Australia/Lord_Howe")
      assert.strictEqual(iso(Calendar.next(d, utc("2026-10-03T12:00:00"))), "2026-10-03T15:30:00.000Z")
      assert.strictEqual(iso(Calendar.previous(d, utc("2026-10-03T15:30:00"))), "2026-10-02T16:29:59.000Z")
      assert.strictEqual(
        Calendar.countBetween(ok("hourly Australia/Lord_Howe"), utc("2026-10-03T13:00:00"), utc("2026-10-04T12:00:00")),
        23
      )
    })
    it("Pacific/Apia date-line jump: 2011-12-30 does not exist", () => {
      // 2011-12-29 23:59:59 (-10) = 09:59:59Z is followed by 2011-12-31 00:00:00 (+14).
      const c = ok("daily Pacific/Apia")
      assert.strictEqual(iso(Calendar.next(c, utc("2011-12-29T09:00:00"))), "2011-12-29T10:00:00.000Z")
      assert.strictEqual(iso(Calendar.next(c, utc("2011-12-29T10:00:00"))), "2011-12-30T10:00:00.000Z")
      assert.strictEqual(iso(Calendar.next(c, utc("2011-12-30T10:00:00"))), "2011-12-31T10:00:00.000Z")
      assert.strictEqual(iso(Calendar.previous(c, utc("2011-12-30T10:00:00"))), "2011-12-29T10:00:00.000Z")
      assert.isTrue(Calendar.matches(c, utc("2011-12-30T10:00:00")))
      const d = ok("*-12-30 12:00 Pacific/Apia")
      assert.strictEqual(iso(Calendar.next(d, utc("2011-06-01T00:00:00"))), "2012-12-29T22:00:00.000Z")
      assert.strictEqual(iso(Calendar.previous(d, utc("2012-06-01T00:00:00"))), "2010-12-30T22:00:00.000Z")
      const e = ok("*-12-29 23:59:59 Pacific/Apia")
      assert.strictEqual(iso(Calendar.next(e, utc("2011-12-29T00:00:00"))), "2011-12-30T09:59:59.000Z")
      assert.strictEqual(iso(Calendar.next(e, utc("2011-12-30T09:59:59"))), "2012-12-29T09:59:59.000Z")
      // Two real hours around the jump span 26 wall hours, 24 of them missing: 120 minutes fire.
      assert.strictEqual(
        Calendar.countBetween(ok("minutely Pacific/Apia"), utc("2011-12-30T09:00:00"), utc("2011-12-30T11:00:00")),
        120
      )
    })
  })
})

// ---------------------------------------------------------------------------------------------
// countBetween
// ---------------------------------------------------------------------------------------------

describe("countBetween", () => {
  it("counts dense schedules over long gaps exactly and fast", () => {
    const t0 = performance.now()
    assert.strictEqual(
      Calendar.countBetween(ok("*:*:*"), utc("2026-01-01T00:00:00"), utc("2027-01-01T00:00:00")),
      365 * 86400
    )
    assert.strictEqual(Calendar.countBetween(ok("*:0/15"), utc("2026-01-01T00:00:00"), utc("2026-01-02T00:00:00")), 96)
    // Berlin 2026: the spring day has 23 hours, the autumn day 25 wall hours but repeats fire once.
    assert.strictEqual(
      Calendar.countBetween(ok("hourly Europe/Berlin"), utc("2026-03-28T23:00:00"), utc("2026-03-29T22:00:00")),
      23
    )
    assert.strictEqual(
      Calendar.countBetween(ok("hourly Europe/Berlin"), utc("2026-10-24T22:00:00"), utc("2026-10-25T23:00:00")),
      24
    )
    assert.strictEqual(
      Calendar.countBetween(ok("*:*:* Europe/Berlin"), utc("2026-01-01T00:00:00"), utc("2026-12-31T00:00:00")),
      364 * 86400 - 3600
    )
    assert.isBelow(performance.now() - t0, 2000)
  })
})

// ---------------------------------------------------------------------------------------------
// properties over generated expressions
// ---------------------------------------------------------------------------------------------

const boundedField = (min: number, max: number, dense: boolean): fc.Arbitrary<Field> => {
  const v = fc.integer({ min, max })
  return fc.oneof(
    { weight: dense ? 4 : 1, arbitrary: fc.constant<Field>(ANY) },
    {
      weight: 2,
      arbitrary: fc.uniqueArray(v, { minLength: 1, maxLength: 4 }).map((vs) => L(...vs.sort((a, b) => a - b)))
    },
    { weight: 1, arbitrary: fc.tuple(v, v).map(([a, b]) => Rg(Math.min(a, b), Math.max(a, b))) },
    {
      weight: 1,
      arbitrary: fc.tuple(v, fc.integer({ min: 1, max }), fc.option(v, { nil: undefined })).map(([s, step, e]) =>
        e === undefined || e < s ? St(s, step) : St(s, step, e)
      )
    }
  )
}
const yearField: fc.Arbitrary<Field> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Field>(ANY) },
  {
    weight: 1,
    arbitrary: fc.uniqueArray(fc.integer({ min: 2018, max: 2040 }), { minLength: 1, maxLength: 3 }).map((vs) =>
      L(...vs.sort((a, b) => a - b))
    )
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 2018, max: 2030 }), fc.integer({ min: 0, max: 20 })).map(([a, d]) =>
      Rg(a, a + d)
    )
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 2000, max: 2030 }), fc.integer({ min: 1, max: 7 })).map(([a, s]) => St(a, s))
  }
)
// Canonical names (ICU spells Asia/Kolkata "Asia/Calcutta"), as parse produces them.
const ZONES = ["UTC", "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"].map((z) =>
  ok(`0:0 ${z}`).tz
)

const calendarArb = (dense: boolean): fc.Arbitrary<Calendar.Calendar> =>
  fc.record({
    weekdays: fc.oneof(fc.constant(ALL), fc.integer({ min: 1, max: ALL })),
    year: dense ? fc.constant<Field>(ANY) : yearField,
    month: boundedField(1, 12, dense),
    day: boundedField(1, 31, dense),
    hour: boundedField(0, 23, dense),
    minute: boundedField(0, 59, dense),
    second: boundedField(0, 59, dense),
    tz: fc.constantFrom(...ZONES)
  })

// Instants in 2020..2035, half of them within a day of a Berlin/New York DST switch.
const DST_SWITCHES = [
  "2026-03-29T01:00:00",
  "2026-10-25T01:00:00",
  "2026-03-08T07:00:00",
  "2026-11-01T06:00:00",
  "2027-03-28T01:00:00",
  "2027-10-31T01:00:00",
  "2025-04-06T15:00:00",
  "2025-10-05T15:30:00"
].map(utc)
const instantArb: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: utc("2020-01-01T00:00:00"), max: utc("2035-01-01T00:00:00") }),
  fc.tuple(fc.constantFrom(...DST_SWITCHES), fc.integer({ min: -86_400_000, max: 86_400_000 })).map(([a, d]) => a + d)
)

/**
 * Independent oracle for "fires at second s": the wall clock of s (from Intl.formatToParts)
 * satisfies the fields (checked through the same calendar on UTC) and no earlier second showed
 * a later-or-equal wall time (first occurrence). Scans second by second; test-only.
 */
const oracleFirings = (c: Calendar.Calendar, fromSec: number, toSec: number): Array<number> => {
  const asUtc: Calendar.Calendar = { ...c, tz: "UTC" }
  const fmt = new Intl.DateTimeFormat("en-US", {
    timeZone: c.tz,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric"
  })
  const off = (sec: number): number => {
    const parts: Record<string, number> = {}
    for (const x of fmt.formatToParts(sec * 1000)) if (x.type !== "literal") parts[x.type] = Number(x.value)
    return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour! % 24, parts.minute!, parts.second!) / 1000 -
      sec
  }
  const out: Array<number> = []
  // Walls seen in the day before `fromSec` count for first occurrences.
  let maxWall = -Infinity
  const start = fromSec - 86_400
  for (let chunk = start; chunk <= toSec; chunk += 900) {
    const end = Math.min(chunk + 899, toSec)
    const o1 = off(chunk), o2 = off(end)
    for (let s = chunk; s <= end; s++) {
      const wall = s + (o1 === o2 ? o1 : off(s))
      if (wall > maxWall) {
        if (s >= fromSec && Calendar.matches(asUtc, wall * 1000)) out.push(s)
        maxWall = wall
      }
    }
  }
  return out
}

describe("properties", () => {
  it.prop("parse(print(e)) equals e", [calendarArb(false)], ([c]) => {
    assert.deepStrictEqual(ok(Calendar.print(c)), c)
  }, { fastCheck: { numRuns: 500 } })

  it.prop(
    "next(e,t) matches, is > t, whole seconds; previous(next(e,t)) <= t",
    [calendarArb(false), instantArb],
    ([c, t]) => {
      const n = Calendar.next(c, t)
      if (n === undefined) return
      assert.isAbove(n, t)
      assert.strictEqual(n % 1000, 0)
      assert.isTrue(Calendar.matches(c, n), `${Calendar.print(c)} next ${iso(n)}`)
      const p = Calendar.previous(c, n)
      if (p !== undefined) {
        assert.isAtMost(p, t)
        assert.isTrue(Calendar.matches(c, p))
        assert.strictEqual(Calendar.next(c, p), n)
      }
    },
    { fastCheck: { numRuns: 400 } }
  )

  it.prop("previous(e,t) matches, is < t; next(previous(e,t)) >= t", [calendarArb(false), instantArb], ([c, t]) => {
    const p = Calendar.previous(c, t)
    if (p === undefined) return
    assert.isBelow(p, t)
    assert.isTrue(Calendar.matches(c, p), `${Calendar.print(c)} previous ${iso(p)}`)
    const n = Calendar.next(c, p)
    if (n !== undefined) assert.isAtLeast(n, t)
  }, { fastCheck: { numRuns: 400 } })

  it.prop(
    "nothing fires strictly between t and next(e,t) (brute-force second scan)",
    [calendarArb(true), instantArb],
    ([c, t]) => {
      const n = Calendar.next(c, t)
      const tSec = Math.floor(t / 1000)
      const horizon = tSec + 2 * 86_400
      const limit = n === undefined ? horizon : Math.min(n / 1000, horizon)
      const fired = oracleFirings(c, tSec + 1, limit)
      if (n !== undefined && n / 1000 <= horizon) {
        assert.deepStrictEqual(fired.map((s) => iso(s * 1000)), [iso(n)], Calendar.print(c))
      } else {
        assert.deepStrictEqual(fired, [], Calendar.print(c))
      }
    },
    { fastCheck: { numRuns: 40 } }
  )

  // Zones whose offsets moved for good (date-line jumps, half-hour moves, abolished DST), around
  // those moves and anywhere in 1970–2100: the cached zone arithmetic against the Intl scan.
  const historic: fc.Arbitrary<readonly [string, number]> = fc.oneof(
    fc.tuple(
      fc.constantFrom(
        ...[
          ["Pacific/Apia", "2011-12-30T10:00:00"],
          ["Pacific/Kiritimati", "1994-12-31T10:00:00"],
          ["Asia/Pyongyang", "2015-08-14T15:00:00"],
          ["Asia/Pyongyang", "2018-05-04T15:00:00"],
          ["America/Caracas", "2007-12-09T07:00:00"],
          ["Europe/Moscow", "2014-10-25T22:00:00"],
          ["Australia/Lord_Howe", "2026-10-03T15:30:00"],
          ["Australia/Lord_Howe", "2026-04-04T15:00:00"]
        ] as const
      ),
      fc.integer({ min: -86_400_000, max: 86_400_000 })
    ).map(([[z, at], d]) => [z, utc(at) + d] as const),
    fc.tuple(
      fc.constantFrom(
        "Pacific/Apia",
        "Africa/Casablanca",
        "America/Sao_Paulo",
        "Asia/Tehran",
        "Antarctica/Troll",
        "Pacific/Chatham",
        "Europe/Dublin"
      ),
      fc.integer({ min: utc("1970-01-01T00:00:00"), max: utc("2100-12-31T00:00:00") })
    )
  )
  it.prop(
    "zones with historic changes: nothing fires strictly between t and next(e,t)",
    [calendarArb(true), historic],
    ([c0, [zone, t]]) => {
      const c: Calendar.Calendar = { ...c0, tz: ok(`0:0 ${zone}`).tz }
      const n = Calendar.next(c, t)
      const tSec = Math.floor(t / 1000)
      const horizon = tSec + 2 * 86_400
      const fired = oracleFirings(c, tSec + 1, n === undefined ? horizon : Math.min(n / 1000, horizon))
      if (n !== undefined && n / 1000 <= horizon) {
        assert.deepStrictEqual(
          fired.map((s) => iso(s * 1000)),
          [iso(n)],
          Calendar.print(c)
        )
      } else assert.deepStrictEqual(fired, [], Calendar.print(c))
    },
    { fastCheck: { numRuns: 40 } }
  )
})

describe("countBetween agrees with enumeration", () => {
  /** Occurrences in (a, b] by repeated next(), or undefined beyond `cap`. */
  const enumerate = (c: Calendar.Calendar, a: number, b: number, cap: number): number | undefined => {
    let n = 0
    for (let o = Calendar.next(c, a); o !== undefined && o <= b; o = Calendar.next(c, o)) {
      if (++n > cap) return undefined
    }
    return n
  }
  const nearSwitch = fc.tuple(fc.constantFrom(...DST_SWITCHES), fc.integer({ min: -3 * 3_600_000, max: 3_600_000 }))
    .map(([s, d]) => s + d)

  it.prop("dense calendars, windows of up to 4 h around DST switches", [
    calendarArb(true),
    nearSwitch,
    fc.integer({ min: 0, max: 4 * 3_600_000 })
  ], ([c, a, len]) => {
    const expected = enumerate(c, a, a + len, 3000)
    if (expected !== undefined) assert.strictEqual(Calendar.countBetween(c, a, a + len), expected, Calendar.print(c))
  }, { fastCheck: { numRuns: 150 } })

  it.prop("sparse calendars, windows of up to 90 days", [
    calendarArb(false),
    instantArb,
    fc.integer({ min: 0, max: 90 * 86_400_000 })
  ], ([c, a, len]) => {
    const expected = enumerate(c, a, a + len, 3000)
    if (expected !== undefined) assert.strictEqual(Calendar.countBetween(c, a, a + len), expected, Calendar.print(c))
  }, { fastCheck: { numRuns: 150 } })
})

describe("R is stable and spreads", () => {
  it("same (agent, schedule) → same value; different schedules cover the range", () => {
    const seen = new Set<number>()
    for (let i = 0; i < 300; i++) {
      const a = ok("*-*-* 10:R:R", { agent: "web1", schedule: `job-${i}` })
      const b = ok("*-*-* 10:R:R", { agent: "web1", schedule: `job-${i}` })
      assert.deepStrictEqual(a, b)
      seen.add(single(a.minute))
    }
    assert.isAtLeast(seen.size, 50)
    // No seed: still stable (empty strings).
    assert.deepStrictEqual(ok("*-*-* R:00"), ok("*-*-* R:00"))
    // Fields are seeded independently.
    const fields = ok("*-R-R R:R:R", { agent: "a", schedule: "s" })
    assert.isTrue(new Set([fields.month, fields.day, fields.hour, fields.minute, fields.second].map(single)).size >= 3)
  })
})

describe("Calendar.schedule: the calendar as an Effect Schedule", () => {
  it.effect("runs at each occurrence in the calendar's zone, and outputs it", () =>
    Effect.gen(function*() {
      // 09:30 and 17:30 on Berlin's wall clock (UTC+1 in January), starting 2026-01-05 00:00Z.
      yield* TestClock.setTime(Date.UTC(2026, 0, 5))
      const seen: Array<number> = []
      const fiber = yield* Clock.currentTimeMillis.pipe(
        Effect.flatMap((now) => Effect.sync(() => seen.push(now))),
        Effect.schedule(Calendar.schedule("*-*-* 09,17:30:00", "Europe/Berlin")),
        Effect.fork
      )
      yield* TestClock.adjust(Duration.sum(Duration.hours(8), Duration.seconds(29 * 60 + 59)))
      assert.deepStrictEqual(seen, [], "nothing before the first occurrence")
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("8 hours")
      yield* TestClock.adjust("16 hours")
      assert.deepStrictEqual(seen.map((ms) => new Date(ms).toISOString()), [
        "2026-01-05T08:30:00.000Z",
        "2026-01-05T16:30:00.000Z",
        "2026-01-06T08:30:00.000Z"
      ])
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("outputs the occurrences, ends when the calendar has none left, and takes a parsed calendar", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2030, 0, 1))
      const cal = Either.getOrThrow(Calendar.parse("2030-01-01..03 12:00:00"))
      const fiber = yield* Effect.void.pipe(
        Effect.schedule(Schedule.collectAllOutputs(Calendar.schedule(cal))),
        Effect.fork
      )
      yield* TestClock.adjust("4 days")
      const outputs = yield* Fiber.join(fiber)
      assert.deepStrictEqual(Chunk.toReadonlyArray(outputs).map((ms) => new Date(ms).toISOString()), [
        "2030-01-01T12:00:00.000Z",
        "2030-01-02T12:00:00.000Z",
        "2030-01-03T12:00:00.000Z"
      ])
    }))

  it.effect("an invalid expression is a defect at the first step (parse first where input is untrusted)", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.schedule(Effect.void, Calendar.schedule("*-*-* 25:00:00")))
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
    }))
})
