import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import * as Calendar from "../src/Calendar.js"
import * as MissedTicks from "../src/MissedTicks.js"

const cal = (expr: string): Calendar.Calendar => Either.getOrThrow(Calendar.parse(expr))
const t = (iso: string): number => Date.parse(iso + "Z")
const hourly = cal("hourly")

/** Brute force: every occurrence in (after, until]. */
const occurrences = (c: Calendar.Calendar, after: number, until: number): Array<number> => {
  const out: Array<number> = []
  for (let o = Calendar.next(c, after); o !== undefined && o <= until; o = Calendar.next(c, o)) out.push(o)
  return out
}

describe("MissedTicks.plan: table", () => {
  // An hourly job; the agent last handled 10:00 and wakes at 15:00:00.3 after a suspend.
  const lastRun = t("2026-05-01T10:00:00")
  const now = t("2026-05-01T15:00:00.300")
  const gap = [11, 12, 13, 14].map((h) => t(`2026-05-01T${h}:00:00`))
  const due = t("2026-05-01T15:00:00")

  it("on time, no gap: one schedule run under every policy", () => {
    for (const policy of ["Burst", "Delay", "Skip"] as const) {
      const p = MissedTicks.plan(hourly, { policy, catchUpLimit: 10, lastRun: t("2026-05-01T14:00:00"), now })
      assert.deepStrictEqual(p.run, [{ at: due, trigger: "schedule" }], policy)
      assert.deepStrictEqual(p.missed, [])
      assert.strictEqual(p.missedTotal, 0)
    }
  })

  it("Burst: every gap occurrence runs, oldest first, then the on-time one", () => {
    const p = MissedTicks.plan(hourly, { policy: "Burst", catchUpLimit: 10, lastRun, now })
    assert.deepStrictEqual(p.run, [...gap.map((at) => ({ at, trigger: "catch_up" as const })), {
      at: due,
      trigger: "schedule"
    }])
    assert.deepStrictEqual(p.missed, [])
    assert.strictEqual(p.missedTotal, 0)
    assert.strictEqual(p.watermark, now)
  })

  it("Burst: catch-up limited to the oldest catchUpLimit, the rest missed", () => {
    const p = MissedTicks.plan(hourly, { policy: "Burst", catchUpLimit: 2, lastRun, now })
    assert.deepStrictEqual(p.run.map((r) => [r.at, r.trigger]), [[gap[0], "catch_up"], [gap[1], "catch_up"], [
      due,
      "schedule"
    ]])
    assert.deepStrictEqual(p.missed, gap.slice(2))
    assert.strictEqual(p.missedTotal, 2)
    const none = MissedTicks.plan(hourly, { policy: "Burst", catchUpLimit: 0, lastRun, now })
    assert.deepStrictEqual(none.missed, gap)
  })

  it("Delay: the on-time run covers the gap; every gap occurrence is missed", () => {
    const p = MissedTicks.plan(hourly, { policy: "Delay", catchUpLimit: 10, lastRun, now })
    assert.deepStrictEqual(p.run, [{ at: due, trigger: "schedule" }])
    assert.deepStrictEqual(p.missed, gap)
    assert.strictEqual(p.missedTotal, 4)
  })

  it("Delay: woken between occurrences, one catch-up run stands for the newest gap occurrence", () => {
    const p = MissedTicks.plan(hourly, { policy: "Delay", catchUpLimit: 10, lastRun, now: t("2026-05-01T14:30:00") })
    assert.deepStrictEqual(p.run, [{ at: gap[3], trigger: "catch_up" }])
    assert.deepStrictEqual(p.missed, gap.slice(0, 3))
    assert.strictEqual(p.missedTotal, 3)
  })

  it("Skip: nothing from the gap runs, each is missed", () => {
    const p = MissedTicks.plan(hourly, { policy: "Skip", catchUpLimit: 10, lastRun, now })
    assert.deepStrictEqual(p.run, [{ at: due, trigger: "schedule" }])
    assert.deepStrictEqual(p.missed, gap)
    const between = MissedTicks.plan(hourly, {
      policy: "Skip",
      catchUpLimit: 10,
      lastRun,
      now: t("2026-05-01T14:30:00")
    })
    assert.deepStrictEqual(between.run, [])
    assert.strictEqual(between.missedTotal, 4)
  })

  it("grace: a run 900 ms late is on time, 1.5 s late is a gap occurrence (default 1000 ms)", () => {
    const last = t("2026-05-01T14:00:00")
    const late = MissedTicks.plan(hourly, { policy: "Skip", catchUpLimit: 10, lastRun: last, now: due + 900 })
    assert.deepStrictEqual(late.run, [{ at: due, trigger: "schedule" }])
    const later = MissedTicks.plan(hourly, { policy: "Skip", catchUpLimit: 10, lastRun: last, now: due + 1500 })
    assert.deepStrictEqual(later.run, [])
    assert.deepStrictEqual(later.missed, [due])
    const wide = MissedTicks.plan(hourly, {
      policy: "Skip",
      catchUpLimit: 10,
      lastRun: last,
      now: due + 1500,
      graceMs: 5000
    })
    assert.deepStrictEqual(wide.run, [{ at: due, trigger: "schedule" }])
  })

  it("first start (no lastRun): only what is due now, no catch-up, nothing missed", () => {
    const p = MissedTicks.plan(hourly, { policy: "Burst", catchUpLimit: 10, now })
    assert.deepStrictEqual(p.run, [{ at: due, trigger: "schedule" }])
    assert.deepStrictEqual(p.missed, [])
    const q = MissedTicks.plan(hourly, { policy: "Burst", catchUpLimit: 10, now: t("2026-05-01T15:20:00") })
    assert.deepStrictEqual(q, {
      run: [],
      missed: [],
      missedRange: undefined,
      missedTotal: 0,
      watermark: t("2026-05-01T15:20:00")
    })
  })

  it("clock stepped backwards: nothing runs, the watermark stays", () => {
    const p = MissedTicks.plan(hourly, { policy: "Burst", catchUpLimit: 10, lastRun: due, now: due - 3_600_000 })
    assert.deepStrictEqual(p, { run: [], missed: [], missedRange: undefined, missedTotal: 0, watermark: due })
    assert.deepStrictEqual(
      MissedTicks.plan(hourly, { policy: "Burst", catchUpLimit: 10, lastRun: due, now: due }).run,
      []
    )
  })

  it("huge gaps: beyond maxMissedRecorded the missed occurrences are one range standing for every one, fast", () => {
    const start = performance.now()
    const every = cal("*:*:*")
    const p = MissedTicks.plan(every, {
      policy: "Burst",
      catchUpLimit: 10,
      lastRun: t("2026-01-01T00:00:00"),
      now: t("2026-02-01T00:00:00")
    })
    // Ten catch-ups plus two on-time runs (23:59:59 and 00:00:00 are both within the 1000 ms grace).
    assert.strictEqual(p.run.length, 12)
    assert.strictEqual(p.run.filter((r) => r.trigger === "schedule").length, 2)
    assert.deepStrictEqual(p.missed, [])
    assert.strictEqual(p.missedTotal, 31 * 86400 - 2 - 10)
    assert.deepStrictEqual(p.missedRange, {
      from: t("2026-01-01T00:00:11"),
      to: t("2026-01-31T23:59:58"),
      count: 31 * 86400 - 2 - 10
    })
    // At the limit they are still listed; one more and they become a range.
    const gap = { lastRun: t("2026-01-01T00:00:00"), now: t("2026-01-01T01:00:00.500") } // 3599 in the gap, 1 on time
    const listed = MissedTicks.plan(every, { policy: "Skip", catchUpLimit: 10, ...gap, maxMissedRecorded: 3599 })
    assert.strictEqual(listed.missed.length, 3599)
    assert.isUndefined(listed.missedRange)
    const ranged = MissedTicks.plan(every, { policy: "Skip", catchUpLimit: 10, ...gap, maxMissedRecorded: 3598 })
    assert.deepStrictEqual(ranged.missed, [])
    assert.deepStrictEqual(ranged.missedRange, {
      from: t("2026-01-01T00:00:01"),
      to: t("2026-01-01T00:59:59"),
      count: 3599
    })
    assert.strictEqual(ranged.missedTotal, 3599)
    // Delay between occurrences: the newest gap occurrence runs, the range ends just before it.
    const delayed = MissedTicks.plan(every, {
      policy: "Delay",
      catchUpLimit: 10,
      lastRun: t("2026-01-01T00:00:00"),
      now: t("2026-01-01T01:00:00.500"),
      graceMs: 0,
      maxMissedRecorded: 5
    })
    assert.deepStrictEqual(delayed.run, [{ at: t("2026-01-01T01:00:00"), trigger: "catch_up" }])
    assert.deepStrictEqual(delayed.missedRange, {
      from: t("2026-01-01T00:00:01"),
      to: t("2026-01-01T00:59:59"),
      count: 3599
    })
    assert.isBelow(performance.now() - start, 1000)
  })

  it("span: the occurrences in (after, until] as one range", () => {
    assert.deepStrictEqual(MissedTicks.span(hourly, lastRun, now), { from: gap[0], to: due, count: 5 })
    assert.deepStrictEqual(MissedTicks.span(hourly, lastRun, due - 1), { from: gap[0], to: gap[3], count: 4 })
    assert.isUndefined(MissedTicks.span(hourly, due, due + 1000))
  })

  it("nextWake sleeps until the next occurrence after now and after lastRun", () => {
    assert.strictEqual(MissedTicks.nextWake(hourly, { now: t("2026-05-01T15:20:00") }), t("2026-05-01T16:00:00"))
    assert.strictEqual(
      MissedTicks.nextWake(hourly, { now: t("2026-05-01T15:20:00"), lastRun: t("2026-05-01T18:00:00") }),
      t("2026-05-01T19:00:00")
    )
    assert.strictEqual(MissedTicks.nextWake(hourly, { now: due, lastRun: due }), t("2026-05-01T16:00:00"))
    assert.isUndefined(MissedTicks.nextWake(cal("2020-01-01"), { now: due }))
  })
})

describe("MissedTicks.ledgerProblems", () => {
  const h = (n: number) => t(`2026-05-01T${String(n).padStart(2, "0")}:00:00`)
  const one = (n: number, label = `run ${n}`) => ({ from: h(n), to: h(n), count: 1, label })

  it("holds when every occurrence has one entry, ranges included", () => {
    assert.deepStrictEqual(
      MissedTicks.ledgerProblems(hourly, [one(1), { from: h(2), to: h(5), count: 4, label: "range" }, one(6)]),
      []
    )
  })

  it("names holes, doubles, and entries that are not spans of their count", () => {
    assert.deepStrictEqual(MissedTicks.ledgerProblems(hourly, [one(1), one(3)]), [
      `${new Date(h(2)).toISOString()}: no row`
    ])
    assert.deepStrictEqual(
      MissedTicks.ledgerProblems(hourly, [one(1), { from: h(1), to: h(2), count: 2, label: "range" }]),
      [`${new Date(h(1)).toISOString()}: run 1 AND range`]
    )
    assert.deepStrictEqual(MissedTicks.ledgerProblems(hourly, [{ from: h(1), to: h(3), count: 2, label: "short" }]), [
      "short: counts 2 occurrences, its span holds 3"
    ])
    assert.deepStrictEqual(
      MissedTicks.ledgerProblems(hourly, [{ from: h(1) + 1, to: h(1) + 1, count: 1, label: "odd" }]),
      [
        `odd: ${new Date(h(1) + 1).toISOString()}..${new Date(h(1) + 1).toISOString()} is not a span of occurrences`,
        "odd: counts 1 occurrences, its span holds 0"
      ]
    )
  })
})

describe("MissedTicks.plan: properties", () => {
  const dense = ["*:*:*", "*:*:0/7"].map(cal)
  const exprs = [...dense, "*:0/5:00", "hourly", "*-*-* 0/3:15:00", "Mon..Fri *-*-* 09:00", "daily Europe/Berlin"].map((
    e
  ) => typeof e === "string" ? cal(e) : e)
  const arb = fc.record({
    c: fc.constantFrom(...exprs),
    policy: fc.constantFrom("Burst" as const, "Delay" as const, "Skip" as const),
    catchUpLimit: fc.integer({ min: 0, max: 12 }),
    lastRun: fc.option(fc.integer({ min: t("2026-03-01T00:00:00"), max: t("2026-03-10T00:00:00") }), {
      nil: undefined
    }),
    span: fc.integer({ min: -7_200_000, max: 5 * 86_400_000 }),
    graceMs: fc.integer({ min: 0, max: 5000 }),
    maxMissedRecorded: fc.integer({ min: 0, max: 50 })
  })

  it.prop("every occurrence in (lastRun, now] is run or missed exactly once; policies as specified", [arb], ([a]) => {
    // Dense schedules get short spans so the brute-force enumeration stays cheap.
    const span = dense.includes(a.c) && a.span > 0 ? a.span % 10_800_000 : a.span
    const now = (a.lastRun ?? t("2026-03-05T00:00:00")) + span
    const p = MissedTicks.plan(a.c, {
      policy: a.policy,
      catchUpLimit: a.catchUpLimit,
      lastRun: a.lastRun,
      now,
      graceMs: a.graceMs,
      maxMissedRecorded: a.maxMissedRecorded
    })
    if (a.lastRun !== undefined && now <= a.lastRun) {
      assert.deepStrictEqual(p.run, [])
      assert.strictEqual(p.missedTotal, 0)
      return
    }
    const onTime = occurrences(a.c, now - a.graceMs - 1, now).filter((o) =>
      o >= now - a.graceMs && (a.lastRun === undefined || o > a.lastRun)
    )
    // On-time occurrences always run with trigger "schedule".
    assert.deepStrictEqual(p.run.filter((r) => r.trigger === "schedule").map((r) => r.at), onTime)
    // Runs are ordered and distinct; the missed list is ordered, capped, disjoint from runs.
    const runAt = p.run.map((r) => r.at)
    assert.deepStrictEqual(runAt, [...runAt].sort((x, y) => x - y))
    assert.isAtMost(p.missed.length, a.maxMissedRecorded)
    assert.isTrue(p.missed.length === 0 || p.missedRange === undefined)
    if (a.lastRun === undefined) {
      assert.deepStrictEqual(p.missed, [])
      assert.isUndefined(p.missedRange)
      assert.strictEqual(p.missedTotal, 0)
      return
    }
    // The ledger identity: every occurrence in (lastRun, now] is run or missed (listed or inside
    // the range), exactly once.
    const all = occurrences(a.c, a.lastRun, now)
    const range = p.missedRange
    const missed = range === undefined ? p.missed : occurrences(a.c, range.from - 1, range.to)
    if (range !== undefined) assert.strictEqual(range.count, missed.length)
    assert.strictEqual(p.missedTotal, missed.length)
    assert.deepStrictEqual([...runAt, ...missed].sort((x, y) => x - y), all)
    const gap = all.filter((o) => o < now - a.graceMs)
    const caught = p.run.filter((r) => r.trigger === "catch_up").map((r) => r.at)
    switch (a.policy) {
      case "Burst":
        assert.deepStrictEqual(caught, gap.slice(0, a.catchUpLimit))
        break
      case "Delay":
        assert.deepStrictEqual(caught, gap.length > 0 && onTime.length === 0 ? [gap[gap.length - 1]] : [])
        break
      case "Skip":
        assert.deepStrictEqual(caught, [])
        break
    }
    assert.strictEqual(p.watermark, now)
  }, { fastCheck: { numRuns: 300 } })
})

describe("policy values", () => {
  it("Burst, Delay and Skip plan exactly as plan() with that policy; policyOf maps the config name", () => {
    const cal = Either.getOrThrow(Calendar.parse("*-*-* *:*:00"))
    const base = { catchUpLimit: 2, lastRun: Date.UTC(2026, 0, 1), now: Date.UTC(2026, 0, 1, 0, 10, 0, 300) }
    for (const policy of [MissedTicks.Burst, MissedTicks.Delay, MissedTicks.Skip]) {
      assert.deepStrictEqual(policy.plan(cal, base), MissedTicks.plan(cal, { ...base, policy: policy.name }))
      assert.strictEqual(MissedTicks.policyOf(policy.name), policy)
    }
    assert.strictEqual(MissedTicks.Burst.plan(cal, base).run.length, 3) // 2 catch-ups + the on-time one
    assert.strictEqual(MissedTicks.Skip.plan(cal, base).run.length, 1)
  })
})
