import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Calendar from "../src/commands/Calendar.js"
import * as Render from "../src/Render.js"
import { runCli, runProcess } from "./utils.js"

const from = Date.parse("2026-01-01T00:00:00Z")

describe("calendar (pure core)", () => {
  it("normalises and lists the next elapses strictly after --from", () => {
    const [r] = Calendar.evaluate(["*-*-* 10:00"], { fromMs: from, count: 3 })
    assert.deepStrictEqual(r, {
      expression: "*-*-* 10:00",
      normalized: "*-*-* 10:00:00",
      next: [Date.parse("2026-01-01T10:00:00Z"), Date.parse("2026-01-02T10:00:00Z"), Date.parse("2026-01-03T10:00:00Z")]
    })
    const [exact] = Calendar.evaluate(["*-*-* 00:00:00"], { fromMs: from, count: 1 })
    assert.deepStrictEqual(exact, {
      expression: "*-*-* 00:00:00",
      normalized: "*-*-* 00:00:00",
      next: [Date.parse("2026-01-02T00:00:00Z")]
    })
  })

  it("keeps input order and reports invalid expressions with field, text and position", () => {
    const results = Calendar.evaluate(["hourly", "*-*-* 25:00:00", "daily"], { fromMs: from, count: 1 })
    assert.strictEqual(results.length, 3)
    assert.strictEqual(results[0]!.expression, "hourly")
    assert.strictEqual(results[2]!.expression, "daily")
    const bad = results[1]!
    assert.isTrue("error" in bad)
    if ("error" in bad) {
      assert.include(bad.error, "hour")
      assert.include(bad.error, "'25'")
      assert.include(bad.error, "position 6")
    }
  })

  it("an expression that never fires again has no elapses", () => {
    const [r] = Calendar.evaluate(["2020-01-01 00:00:00"], { fromMs: from, count: 5 })
    assert.deepStrictEqual(r, { expression: "2020-01-01 00:00:00", normalized: "2020-01-01 00:00:00", next: [] })
    assert.deepStrictEqual(Calendar.toText(Render.plainStyle, [r!], undefined), [
      "  Original form: 2020-01-01 00:00:00",
      "Normalized form: 2020-01-01 00:00:00",
      "    Next elapse: never"
    ])
  })

  it("JSON shape: expression/normalized/next, plus tz/nextInTz with --tz, or expression/error", () => {
    const results = Calendar.evaluate(["*-*-* 10:00:00", "nope"], { fromMs: from, count: 1 })
    assert.deepStrictEqual(Calendar.toJson(results, "Europe/Berlin"), [
      {
        expression: "*-*-* 10:00:00",
        normalized: "*-*-* 10:00:00",
        next: ["2026-01-01T10:00:00Z"],
        tz: "Europe/Berlin",
        nextInTz: ["2026-01-01T11:00:00+01:00"]
      },
      { expression: "nope", error: (results[1] as { error: string }).error }
    ])
  })

  it("R is resolved stably per agent and schedule", () => {
    const a = Calendar.evaluate(["*-*-* 10:R:R"], { fromMs: from, count: 1, agent: "a", schedule: "s" })[0]!
    const again = Calendar.evaluate(["*-*-* 10:R:R"], { fromMs: from, count: 1, agent: "a", schedule: "s" })[0]!
    assert.deepStrictEqual(a, again)
    assert.isTrue("normalized" in a && !a.normalized.includes("R"))
  })
})

describe("calendar (in-process)", () => {
  it.live("text mode prints original, normalised, the elapses and the time left; --tz evaluates and shows in the zone", () =>
    Effect.gen(function*() {
      const r = yield* runCli([
        "calendar",
        "*-*-* 10:00",
        "--from",
        "2026-01-01T00:00:00Z",
        "--count",
        "2",
        "--tz",
        "America/New_York"
      ])
      assert.strictEqual(r.code, 0)
      assert.strictEqual(r.stderr, "")
      assert.strictEqual(
        r.stdout,
        [
          "        Original form: *-*-* 10:00",
          "      Normalized form: *-*-* 10:00:00 America/New_York",
          "          Next elapse: 2026-01-01T15:00:00Z",
          "(in America/New_York): 2026-01-01T10:00:00-05:00",
          "          From --from: 15 h left",
          "             Iter. #2: 2026-01-02T15:00:00Z",
          "(in America/New_York): 2026-01-02T10:00:00-05:00",
          ""
        ].join("\n")
      )
    }))

  it.live("an expression with its own zone keeps it under --tz; a cron expression gets its calendar form as a hint", () =>
    Effect.gen(function*() {
      const own = yield* runCli([
        "calendar",
        "*-*-* 10:00 UTC",
        "--from",
        "2026-01-01T00:00:00Z",
        "-n",
        "1",
        "--tz",
        "Asia/Tokyo",
        "--json"
      ])
      assert.deepStrictEqual(JSON.parse(own.stdout)[0].next, ["2026-01-01T10:00:00Z"])
      const cron = yield* runCli(["calendar", "*/15 * * * *"])
      assert.strictEqual(cron.code, 1)
      assert.include(
        cron.stderr,
        "barto-cli: hint: '*/15 * * * *' looks like cron; the calendar form is '*-*-* *:0/15:00'\n"
      )
      const weekdays = yield* runCli(["calendar", "0 3 * * 1-5", "--json"])
      assert.strictEqual(
        JSON.parse(weekdays.stdout)[0].hint,
        "'0 3 * * 1-5' looks like cron; the calendar form is 'Mon..Fri *-*-* 3:00:00'"
      )
      const now = yield* runCli(["calendar", "minutely", "-n", "1"])
      assert.match(now.stdout, /From now: \d+ s left\n$/)
    }))

  it.live("--from without an offset is read in --tz", () =>
    Effect.gen(function*() {
      const r = yield* runCli([
        "calendar",
        "hourly",
        "--from",
        "2026-07-01T12:30:00",
        "--tz",
        "Europe/Berlin",
        "--count",
        "1",
        "--json"
      ])
      assert.strictEqual(r.code, 0)
      const [first] = JSON.parse(r.stdout)
      // 12:30 Berlin (CEST) = 10:30Z; the next full hour is 11:00Z.
      assert.deepStrictEqual(first.next, ["2026-07-01T11:00:00Z"])
      assert.deepStrictEqual(first.nextInTz, ["2026-07-01T13:00:00+02:00"])
    }))

  it.live("an invalid expression goes to stderr, the valid ones are still printed, exit 1", () =>
    Effect.gen(function*() {
      const r = yield* runCli([
        "calendar",
        "*-*-* 1:2:3",
        "Mon..Xyz 10:00",
        "--from",
        "2026-01-01T00:00:00Z",
        "-n",
        "1"
      ])
      assert.strictEqual(r.code, 1)
      assert.include(r.stdout, "Normalized form: *-*-* 01:02:03")
      assert.match(
        r.stderr,
        /^barto-cli: invalid calendar expression 'Mon\.\.Xyz 10:00': invalid weekday 'Xyz' at position \d+/
      )
      assert.strictEqual(r.stderr.trim().split("\n").length, 1)
    }))

  it.live("usage errors exit 2 and are printed once", () =>
    Effect.gen(function*() {
      for (
        const [args, needle] of [
          [
            ["calendar", "daily", "--tz", "Mars/Olympus"],
            "barto-cli: calendar: --tz: 'Mars/Olympus' is not a time zone"
          ],
          [["calendar", "daily", "--count", "0"], "invalid count"],
          [["calendar", "daily", "--count", "x"], "'x'"],
          [["calendar", "daily", "--from", "yesterday"], "barto-cli: calendar: --from: 'yesterday' is not a time"],
          [["calendar"], "EXPR"]
        ] as const
      ) {
        const r = yield* runCli(args)
        assert.strictEqual(r.code, 2, `${args.join(" ")}: ${r.stderr}`)
        assert.include(r.stderr, needle)
        assert.strictEqual(r.stderr.split(needle).length - 1, 1, `printed once: ${r.stderr}`)
        assert.strictEqual(r.stdout, "")
      }
    }))

  it.live("without --from it starts from now", () =>
    Effect.gen(function*() {
      const before = Date.now()
      const r = yield* runCli(["calendar", "minutely", "--json", "-n", "1"])
      assert.strictEqual(r.code, 0)
      const at = Date.parse(JSON.parse(r.stdout)[0].next[0])
      assert.isTrue(at > before && at <= before + 61_000)
    }))
})

describe("calendar (process)", () => {
  it.live("JSON array, one object per expression in order; invalid → exit 1 with the position", () =>
    Effect.gen(function*() {
      const r = yield* runProcess([
        "calendar",
        "*-*-* 10:00:00",
        "*-*-* 10:61:00",
        "weekly",
        "--from",
        "2026-01-01T00:00:00Z",
        "--count",
        "2",
        "--json"
      ])
      assert.strictEqual(r.code, 1, r.stderr)
      const parsed = JSON.parse(r.stdout)
      assert.deepStrictEqual(parsed[0], {
        expression: "*-*-* 10:00:00",
        normalized: "*-*-* 10:00:00",
        next: ["2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z"]
      })
      assert.strictEqual(parsed[1].expression, "*-*-* 10:61:00")
      assert.match(parsed[1].error, /minute '61' at position 9/)
      assert.strictEqual(parsed[2].expression, "weekly")
      assert.strictEqual(parsed[2].next.length, 2)
      assert.strictEqual(r.stderr, "")
    }))

  it.live("text mode works as a real process and exits 0; a usage error exits 2 once", () =>
    Effect.gen(function*() {
      const ok = yield* runProcess(["calendar", "*-*-* 10:00:00", "--from", "2026-01-01T00:00:00Z", "-n", "1"])
      assert.strictEqual(ok.code, 0, ok.stderr)
      assert.strictEqual(
        ok.stdout,
        "  Original form: *-*-* 10:00:00\nNormalized form: *-*-* 10:00:00\n    Next elapse: 2026-01-01T10:00:00Z\n" +
          "    From --from: 10 h left\n"
      )
      const usage = yield* runProcess(["calendar", "daily", "--count", "nope"])
      assert.strictEqual(usage.code, 2)
      assert.strictEqual(usage.stdout, "")
      assert.strictEqual(usage.stderr.split("'nope'").length - 1, 1, usage.stderr)
    }))
})
