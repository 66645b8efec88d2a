/**
 * The tick loop under TestClock (style.md §3.3): the time is set, the ticker forked, the clock
 * moved, and a recording Runner plus a real in-memory Outbox are checked.
 *
 * TestClock wakes every sleeper exactly at its instant, so a *stall* is made the way it happens
 * in production: the loop is stuck (here in a Runner.start that takes ten minutes) while the
 * clock moves on. Suspend and clock steps are modelled with a wall clock that can jump while the
 * timers (TestClock's sleeps, the monotonic clock) do not, which is what Node does on Linux.
 *
 * The recording Runner appends RunStarted for every start, as the real one does (right after
 * the spawn for an armed run, before it otherwise), so intents are consumed as in production.
 * The blocking wait for the last milliseconds (`preciseMs`) needs a real clock: it is off here
 * except where a test says otherwise, and tested live at the end.
 */
import * as Outbox from "@barto/agent/Outbox"
import { layer as runnerLayer, Runner, type RunnerShape, type RunRequest } from "@barto/agent/Runner"
import * as Ticker from "@barto/agent/Ticker"
import { type Micros, type MissedTick, ScheduleSpec } from "@barto/domain/Messages"
import * as Calendar from "@barto/scheduler/Calendar"
import * as MissedTicks from "@barto/scheduler/MissedTicks"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Either, Exit, Fiber, Layer, Option, Scope, SubscriptionRef, TestClock } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const MIB = 1024 * 1024
const at = (hms: string) => Date.parse(`2025-01-01T${hms}Z`)
const hms = (ms: number) => new Date(ms).toISOString().slice(11, 19)

const spec = (name: string, calendar: string, paused = false) =>
  new ScheduleSpec({
    name,
    onCalendar: calendar,
    calendar,
    cmds: ["true"],
    overlap: "allow",
    onFailure: "continue",
    paused
  })

const table = (version: string, ...schedules: Array<ScheduleSpec>): Ticker.Table => ({
  _tag: "ScheduleTable",
  version,
  schedules
})

interface Start {
  readonly request: RunRequest
  /** The clock when start was called. */
  readonly now: number
  /** The durable last run at that moment. */
  readonly lastRun: number | undefined
  /** The durable intents at that moment. */
  readonly intents: ReadonlyArray<Outbox.Intent>
}

/** A wall clock that can be stepped while TestClock's timers stay where they are. */
const makeWallClock = Effect.gen(function*() {
  const test = yield* TestClock.testClock()
  const state = { offset: 0 }
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => test.unsafeCurrentTimeMillis() + state.offset,
    currentTimeMillis: Effect.map(test.currentTimeMillis, (ms) => ms + state.offset),
    unsafeCurrentTimeNanos: () => test.unsafeCurrentTimeNanos() + BigInt(state.offset) * 1_000_000n,
    currentTimeNanos: Effect.map(test.currentTimeNanos, (ns) => ns + BigInt(state.offset) * 1_000_000n),
    sleep: (duration) => test.sleep(duration)
  }
  return { clock, step: (ms: number) => Effect.sync(() => (state.offset += ms)) }
})

interface HarnessOptions {
  readonly table: Ticker.Table | undefined
  readonly policy?: MissedTick
  readonly catchUpLimit?: number
  /** Milliseconds the n-th (1-based) start call takes: a stuck loop. */
  readonly block?: (n: number) => number
  /** Durable last runs present before the ticker starts (a restart). */
  readonly lastRuns?: Record<string, number>
  readonly clock?: Clock.Clock
  readonly maxSleepMs?: number
  readonly preciseMs?: number
  /** An outbox to use (a file shared with another "process"); default a fresh in-memory one. */
  readonly outbox?: Outbox.OutboxShape
}

const harness = (options: HarnessOptions) =>
  Effect.gen(function*() {
    const outbox = options.outbox ?? (yield* Outbox.make({ path: ":memory:", maxBytes: 64 * MIB }))
    for (const [name, ms] of Object.entries(options.lastRuns ?? {})) yield* outbox.setLastRun(name, ms)
    const tableRef = yield* SubscriptionRef.make(Option.fromNullable(options.table))
    const starts: Array<Start> = []
    const runner: RunnerShape = {
      start: (request) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const lastRun = Option.getOrUndefined(yield* outbox.lastRun(request.spec.name))
          const intents = yield* outbox.intents
          starts.push({ request, now, lastRun, intents })
          yield* outbox.append([{
            _tag: "RunStarted",
            runId: request.runId,
            schedule: request.spec.name,
            trigger: request.trigger,
            scheduledAt: (request.scheduledAt * 1000) as Micros,
            startedAt: (now * 1000) as Micros
          }])
          const block = options.block?.(starts.length) ?? 0
          if (block > 0) yield* Effect.sleep(block)
          return "started" as const
        }),
      prepare: () => Effect.void,
      cancel: () => Effect.succeed(false),
      running: Effect.succeed([]),
      awaitIdle: Effect.void,
      drain: () => Effect.void
    }
    const loop = Ticker.run({
      agentName: "agent",
      missedTick: options.policy ?? "Burst",
      catchUpLimit: options.catchUpLimit ?? 10,
      ...(options.maxSleepMs === undefined ? {} : { maxSleepMs: options.maxSleepMs }),
      preciseMs: options.preciseMs ?? 0
    }).pipe(
      Effect.provideService(Outbox.Outbox, outbox),
      Effect.provideService(Runner, runner),
      Effect.provideService(Ticker.CurrentTable, tableRef)
    )
    const fiber = yield* Effect.fork(options.clock === undefined ? loop : Effect.withClock(loop, options.clock))
    const missed = outbox.pending(-1, 100_000).pipe(
      Effect.map((records) =>
        records.flatMap((r) =>
          r._tag === "RunMissed"
            ? [{
              schedule: r.schedule,
              at: hms(r.scheduledAt / 1000),
              reason: r.reason,
              ...(r.until === undefined ? {} : { until: hms(r.until / 1000), count: r.count })
            }]
            : []
        )
      )
    )
    /** `name@hh:mm:ss trigger` of every start so far. */
    const started = () => starts.map((s) => `${s.request.spec.name}@${hms(s.request.scheduledAt)} ${s.request.trigger}`)
    return { outbox, tableRef, starts, started, missed, fiber }
  })

const everyMinute = spec("tick", "*-*-* *:*:00")

describe("Ticker", () => {
  it.scoped("fires at the exact second: its intent durable before the start, its last run stored with the start", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:00"))
      // Long timer slices: TestClock walks every slice, and a day of 30 s slices is slow to walk.
      const h = yield* harness({ table: table("v1", spec("a", "*-*-* 10:00:30")), maxSleepMs: 6 * 3_600_000 })
      yield* TestClock.adjust(29_999)
      assert.strictEqual(h.starts.length, 0)
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(h.started(), ["a@10:00:30 schedule"])
      const start = h.starts[0]!
      assert.strictEqual(start.now, at("10:00:30"))
      assert.strictEqual(start.request.scheduledAt, at("10:00:30"))
      // Write-ahead: the run was armed (an intent with its run id) and nothing else was written.
      assert.isTrue(start.request.armed)
      assert.deepStrictEqual(start.intents, [{
        runId: start.request.runId,
        schedule: "a",
        scheduledAt: at("10:00:30"),
        trigger: "schedule"
      }])
      assert.isUndefined(start.lastRun)
      // Its RunStarted consumed the intent and stored the last run.
      assert.deepStrictEqual(yield* h.outbox.intents, [])
      assert.strictEqual(Option.getOrUndefined(yield* h.outbox.lastRun("a")), at("10:00:30"))
      // Run ids are fresh UUIDv7s.
      assert.match(start.request.runId, /^[0-9a-f]{8}-[0-9a-f]{4}-7/)
      // Next day, same second; nothing in between.
      yield* TestClock.adjust("23 hours")
      assert.strictEqual(h.starts.length, 1)
      yield* TestClock.adjust("1 hour")
      assert.deepStrictEqual(h.started(), ["a@10:00:30 schedule", "a@10:00:30 schedule"])
      assert.strictEqual(h.starts[1]!.request.scheduledAt, at("10:00:30") + 86_400_000)
    }))

  it.scoped("two schedules with the same expression both fire (keyed by name)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:00"))
      const h = yield* harness({
        table: table("v1", spec("a", "*-*-* 10:00:30"), spec("b", "*-*-* 10:00:30"))
      })
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(h.started(), ["a@10:00:30 schedule", "b@10:00:30 schedule"])
      assert.notStrictEqual(h.starts[0]!.request.runId, h.starts[1]!.request.runId)
    }))

  it.scoped("runs every minute on the minute", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:30"))
      const h = yield* harness({ table: table("v1", everyMinute) })
      yield* TestClock.adjust("3 minutes")
      assert.deepStrictEqual(h.started(), [
        "tick@10:01:00 schedule",
        "tick@10:02:00 schedule",
        "tick@10:03:00 schedule"
      ])
      assert.deepStrictEqual(h.starts.map((s) => s.now), [at("10:01:00"), at("10:02:00"), at("10:03:00")])
      assert.deepStrictEqual(yield* h.missed, [])
    }))

  describe("a stall (the loop stuck for ten minutes)", () => {
    // The start at 10:01 takes ten minutes; meanwhile 10:02 … 10:11 fall due.
    const stall = (policy: MissedTick, catchUpLimit = 3) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(at("10:00:30"))
        const h = yield* harness({
          table: table("v1", everyMinute),
          policy,
          catchUpLimit,
          block: (n) => (n === 1 ? 10 * 60_000 : 0)
        })
        yield* TestClock.adjust("30 seconds")
        assert.deepStrictEqual(h.started(), ["tick@10:01:00 schedule"])
        yield* TestClock.adjust("10 minutes")
        return h
      })

    it.scoped("Burst runs the overdue occurrences oldest first up to catch_up_limit and records the rest missed", () =>
      Effect.gen(function*() {
        const h = yield* stall("Burst")
        assert.deepStrictEqual(h.started(), [
          "tick@10:01:00 schedule",
          "tick@10:02:00 catch_up",
          "tick@10:03:00 catch_up",
          "tick@10:04:00 catch_up",
          "tick@10:11:00 schedule"
        ])
        assert.deepStrictEqual(
          (yield* h.missed).map((m) => `${m.at} ${m.reason}`),
          ["10:05:00", "10:06:00", "10:07:00", "10:08:00", "10:09:00", "10:10:00"].map((t) => `${t} catch_up_limit`)
        )
        // Back on the grid afterwards.
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(h.started().at(-1), "tick@10:12:00 schedule")
      }))

    it.scoped("Delay runs one for the gap and records the others missed", () =>
      Effect.gen(function*() {
        const h = yield* stall("Delay")
        // The on-time 10:11 run is the one run for the whole gap; 10:02 … 10:10 are missed.
        assert.deepStrictEqual(h.started(), ["tick@10:01:00 schedule", "tick@10:11:00 schedule"])
        assert.deepStrictEqual(
          (yield* h.missed).map((m) => `${m.at} ${m.reason}`),
          ["10:02:00", "10:03:00", "10:04:00", "10:05:00", "10:06:00", "10:07:00", "10:08:00", "10:09:00", "10:10:00"]
            .map((t) => `${t} missed_tick:Delay`)
        )
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(h.started().at(-1), "tick@10:12:00 schedule")
      }))

    it.scoped("Delay without an on-time occurrence runs once for the newest gap occurrence", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(at("10:00:30"))
        // Stuck from 10:01:00 until 10:11:30: nothing is on time when the loop comes back.
        const h = yield* harness({
          table: table("v1", everyMinute),
          policy: "Delay",
          block: (n) => (n === 1 ? 10 * 60_000 + 30_000 : 0)
        })
        yield* TestClock.adjust("11 minutes")
        assert.deepStrictEqual(h.started(), ["tick@10:01:00 schedule", "tick@10:11:00 catch_up"])
        assert.strictEqual((yield* h.missed).length, 9)
        assert.strictEqual(h.starts[1]!.now, at("10:11:30"))
        yield* TestClock.adjust("30 seconds")
        assert.strictEqual(h.started().at(-1), "tick@10:12:00 schedule")
      }))

    it.scoped("the late plan is one write before any start: every run it starts armed, the missed recorded, the last run moved (Burst)", () =>
      Effect.gen(function*() {
        const h = yield* stall("Burst")
        // 10:02 was armed once the stuck start returned, at 10:11, then found late.
        const caught = h.starts[1]!
        assert.strictEqual(caught.request.scheduledAt, at("10:02:00"))
        assert.strictEqual(caught.request.trigger, "catch_up")
        // At the first start, the plan is already durable: an intent for each of its runs (the
        // armed occurrence under its own run id), the new last run, the missed records.
        assert.deepStrictEqual(caught.intents.map((i) => [i.scheduledAt, i.trigger]), [
          [at("10:02:00"), "catch_up"],
          [at("10:03:00"), "catch_up"],
          [at("10:04:00"), "catch_up"],
          [at("10:11:00"), "schedule"]
        ])
        assert.strictEqual(caught.intents[0]!.runId, caught.request.runId)
        assert.strictEqual(caught.lastRun, at("10:11:00"))
        assert.isTrue(h.starts.slice(1).every((s) => s.request.armed === true))
        assert.deepStrictEqual(
          h.starts.slice(1).map((s) => s.request.runId),
          caught.intents.map((i) => i.runId)
        )
        assert.strictEqual((yield* h.missed).length, 6)
        // Every start consumed its intent.
        assert.deepStrictEqual(yield* h.outbox.intents, [])
      }))

    it.scoped("Skip runs none of the overdue and records each missed", () =>
      Effect.gen(function*() {
        const h = yield* stall("Skip")
        // The armed 10:02 became a missed run under its own run id: no intent is left.
        assert.deepStrictEqual(yield* h.outbox.intents, [])
        assert.deepStrictEqual(h.started().filter((s) => s.endsWith("catch_up")), [])
        assert.deepStrictEqual(
          (yield* h.missed).map((m) => `${m.at} ${m.reason}`),
          ["10:02:00", "10:03:00", "10:04:00", "10:05:00", "10:06:00", "10:07:00", "10:08:00", "10:09:00", "10:10:00"]
            .map((t) => `${t} missed_tick:Skip`)
        )
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(h.started().at(-1), "tick@10:12:00 schedule")
      }))
  })

  it.scoped("suspend: the wall clock moves on while timers stand still; the gap follows the policy", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:30"))
      const wall = yield* makeWallClock
      const h = yield* harness({ table: table("v1", everyMinute), policy: "Burst", catchUpLimit: 2, clock: wall.clock })
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(h.started(), ["tick@10:01:00 schedule"])
      // Suspended at 10:01:00 for an hour and 20 s: no timer ran meanwhile.
      yield* wall.step(60 * 60_000 + 20_000)
      // After resume, the current timer slice ends within 30 s of monotonic time.
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(h.started(), [
        "tick@10:01:00 schedule",
        "tick@10:02:00 catch_up",
        "tick@10:03:00 catch_up"
      ])
      const missed = yield* h.missed
      assert.strictEqual(missed.length, 58) // 10:04 … 11:01
      assert.strictEqual(missed[0]!.at, "10:04:00")
      assert.strictEqual(missed.at(-1)!.at, "11:01:00")
    }))

  it.scoped("a forward clock step is a gap like any other (Skip records it missed)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:30"))
      const wall = yield* makeWallClock
      const h = yield* harness({ table: table("v1", spec("a", "*-*-* *:*:00")), policy: "Skip", clock: wall.clock })
      yield* TestClock.adjust("29 seconds") // 10:00:59
      yield* wall.step(5 * 60_000) // 10:05:59
      yield* TestClock.adjust("1 second") // 10:06:00: the timer armed for 10:01 fires, late
      assert.deepStrictEqual(h.started(), ["a@10:06:00 schedule"])
      assert.deepStrictEqual((yield* h.missed).map((m) => m.at), [
        "10:01:00",
        "10:02:00",
        "10:03:00",
        "10:04:00",
        "10:05:00"
      ])
    }))

  it.scoped("a backward clock step never re-runs an occurrence", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:30"))
      const h = yield* harness({ table: table("v1", everyMinute) })
      yield* TestClock.adjust("2 minutes") // 10:02:30: ran 10:01 and 10:02
      yield* TestClock.setTime(at("09:58:10"))
      yield* TestClock.adjust("5 minutes") // 10:03:10
      assert.deepStrictEqual(h.started(), [
        "tick@10:01:00 schedule",
        "tick@10:02:00 schedule",
        "tick@10:03:00 schedule"
      ])
      assert.strictEqual(h.starts[2]!.now, at("10:03:00"))
      assert.deepStrictEqual(yield* h.missed, [])
    }))

  it.scoped("a last run in the future (clock stepped back while down) is not run again", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:30"))
      const h = yield* harness({ table: table("v1", everyMinute), lastRuns: { tick: at("10:05:00") } })
      yield* TestClock.adjust("5 minutes") // 10:05:30
      assert.deepStrictEqual(h.started(), [])
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(h.started(), ["tick@10:06:00 schedule"])
    }))

  it.scoped("a restart catches up from the durable last run of the cached table", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:05:30"))
      const h = yield* harness({
        table: table("v1", everyMinute),
        lastRuns: { tick: at("10:01:00") },
        catchUpLimit: 10
      })
      yield* TestClock.adjust(0)
      assert.deepStrictEqual(h.started(), [
        "tick@10:02:00 catch_up",
        "tick@10:03:00 catch_up",
        "tick@10:04:00 catch_up",
        "tick@10:05:00 catch_up"
      ])
    }))

  it.scoped("paused schedules are skipped", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:30"))
      const h = yield* harness({ table: table("v1", spec("on", "*-*-* *:*:00"), spec("off", "*-*-* *:*:00", true)) })
      yield* TestClock.adjust("2 minutes")
      assert.deepStrictEqual(h.started(), ["on@10:01:00 schedule", "on@10:02:00 schedule"])
      assert.deepStrictEqual(yield* h.missed, [])
    }))

  it.scoped("a table update re-arms at once; changed schedules do not catch up, resumed ones record their pause as one missed range", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:00"))
      const h = yield* harness({ table: table("v1", spec("a", "*-*-* 11:00:00"), spec("b", "*-*-* *:*:00", true)) })
      yield* TestClock.adjust("5 seconds")
      // a moves to 10:00:10: the sleep towards 11:00 is interrupted, not waited out.
      yield* SubscriptionRef.set(
        h.tableRef,
        Option.some(table("v2", spec("a", "*-*-* 10:00:10"), spec("b", "*-*-* *:*:00", true)))
      )
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(h.started(), ["a@10:00:10 schedule"])
      assert.strictEqual(h.starts[0]!.now, at("10:00:10"))
      // b resumed at 10:03:30: its paused minutes are not run; they are one missed range, and it
      // runs from then on.
      yield* TestClock.adjust(at("10:03:30") - at("10:00:10"))
      assert.deepStrictEqual(yield* h.missed, [])
      yield* SubscriptionRef.set(
        h.tableRef,
        Option.some(table("v3", spec("a", "*-*-* 10:00:10"), spec("b", "*-*-* *:*:00")))
      )
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(h.started(), ["a@10:00:10 schedule", "b@10:04:00 schedule"])
      assert.deepStrictEqual(yield* h.missed, [{
        schedule: "b",
        at: "10:01:00",
        until: "10:03:00",
        count: 3,
        reason: "paused"
      }])
      // A schedule removed from the table stops.
      yield* SubscriptionRef.set(h.tableRef, Option.some(table("v4", spec("a", "*-*-* 10:00:10"))))
      yield* TestClock.adjust("5 minutes")
      assert.deepStrictEqual(h.started(), ["a@10:00:10 schedule", "b@10:04:00 schedule"])
    }))

  it.scoped("a pause is accounted for whatever ends it: resumed, changed, removed; a single occurrence is a single record", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:00"))
      const every = (name: string, paused: boolean, calendar = "*-*-* *:*:00") => spec(name, calendar, paused)
      const set = (version: string, ...specs: Array<ScheduleSpec>) =>
        SubscriptionRef.set(h.tableRef, Option.some(table(version, ...specs)))
      const h = yield* harness({ table: table("v1", ...["r", "c", "d", "o", "s"].map((n) => every(n, false))) })
      yield* TestClock.adjust("90 seconds") // 10:01:30: each ran 10:01
      yield* set("v2", ...["r", "c", "d", "o", "s"].map((n) => every(n, true)))
      yield* TestClock.adjust("40 seconds") // 10:02:10
      assert.deepStrictEqual(yield* h.missed, [])
      yield* set("v3", ...["r", "c", "d", "o"].map((n) => every(n, true)), every("s", false))
      yield* TestClock.adjust(at("10:03:30") - at("10:02:10"))
      // s: one occurrence (10:02) while paused, one record.
      assert.deepStrictEqual(yield* h.missed, [{ schedule: "s", at: "10:02:00", reason: "paused" }])
      yield* set("v4", every("r", false), every("c", true, "*-*-* *:*:30"), every("o", true), every("s", false))
      yield* TestClock.adjust("40 seconds") // 10:04:10
      const show = (m: { schedule: string; at: string; reason: string; until?: string; count?: number | undefined }) =>
        `${m.schedule} ${m.at}${m.until === undefined ? "" : `..${m.until} x${m.count}`} ${m.reason}`
      assert.sameMembers((yield* h.missed).map(show), [
        "s 10:02:00 paused",
        "r 10:02:00..10:03:00 x2 paused", // resumed
        "c 10:02:00..10:03:00 x2 paused", // calendar changed while paused (it stays paused, from now on)
        "d 10:02:00..10:03:00 x2 paused" // removed while paused
      ])
      assert.deepStrictEqual(
        h.started().filter((s) => !s.endsWith("10:01:00 schedule")),
        ["s@10:03:00 schedule", "r@10:04:00 schedule", "s@10:04:00 schedule"]
      )
      yield* set("v5", every("r", false), every("o", false), every("s", false))
      yield* TestClock.adjust(0)
      assert.includeMembers((yield* h.missed).map(show), ["o 10:02:00..10:04:00 x3 paused"])
      // Each paused range moved the schedule's durable last run to the end of the pause.
      assert.strictEqual(Option.getOrUndefined(yield* h.outbox.lastRun("o")), at("10:04:10"))
      assert.strictEqual(Option.getOrUndefined(yield* h.outbox.lastRun("d")), at("10:03:30"))
    }))

  describe("write-ahead (intents armed before the instant)", () => {
    it.scoped("the runs due at an instant are armed armLeadMs before it, in one write, and started with those ids", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(at("10:00:00"))
        const h = yield* harness({ table: table("v1", spec("a", "*-*-* 10:00:30"), spec("b", "*-*-* 10:00:30")) })
        yield* TestClock.adjust(29_899)
        assert.deepStrictEqual(yield* h.outbox.intents, [])
        yield* TestClock.adjust(1) // 10:00:29.900
        const intents = yield* h.outbox.intents
        assert.deepStrictEqual(intents.map((i) => [i.schedule, i.scheduledAt, i.trigger]).sort(), [
          ["a", at("10:00:30"), "schedule"],
          ["b", at("10:00:30"), "schedule"]
        ])
        assert.strictEqual(h.starts.length, 0)
        yield* TestClock.adjust(100)
        assert.deepStrictEqual(h.started(), ["a@10:00:30 schedule", "b@10:00:30 schedule"])
        assert.sameMembers(h.starts.map((s) => s.request.runId), intents.map((i) => i.runId))
        assert.isTrue(h.starts.every((s) => s.request.armed === true && s.now === at("10:00:30")))
        assert.deepStrictEqual(yield* h.outbox.intents, [])
      }))

    it.scoped("a table change after arming drops the intents; the new table's runs are armed afresh", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(at("10:00:29.950"))
        const h = yield* harness({ table: table("v1", spec("a", "*-*-* 10:00:30"), spec("b", "*-*-* 10:00:30")) })
        yield* TestClock.adjust(1)
        assert.strictEqual((yield* h.outbox.intents).length, 2)
        yield* SubscriptionRef.set(h.tableRef, Option.some(table("v2", spec("a", "*-*-* 10:00:40"))))
        yield* TestClock.adjust(1)
        assert.deepStrictEqual(yield* h.outbox.intents, [])
        yield* TestClock.adjust(at("10:00:39.900") - at("10:00:29.952"))
        assert.deepStrictEqual((yield* h.outbox.intents).map((i) => [i.schedule, i.scheduledAt]), [[
          "a",
          at("10:00:40")
        ]])
        yield* TestClock.adjust(100)
        assert.deepStrictEqual(h.started(), ["a@10:00:40 schedule"])
        assert.deepStrictEqual(yield* h.outbox.intents, [])
      }))

    it.scoped("a ticker stopped while armed (shutdown) leaves no intent behind", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(at("10:00:59.950"))
        const h = yield* harness({ table: table("v1", everyMinute) })
        yield* TestClock.adjust(1)
        assert.strictEqual((yield* h.outbox.intents).length, 1)
        yield* Fiber.interrupt(h.fiber)
        assert.deepStrictEqual(yield* h.outbox.intents, [])
        assert.strictEqual(h.starts.length, 0)
      }))

    /**
     * Two "processes" on one state file: the first arms a run, then dies without any cleanup
     * (its database handle is closed under it, so its last-gasp disarm fails as a killed
     * process's would); the second opens the file at `restartAt` with the real Runner (which
     * settles what the first left) and a new ticker.
     */
    const killedWhileArmed = (restartAt: number) =>
      Effect.gen(function*() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "barto-intents-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const options = { path: path.join(dir, "bartoc.db"), maxBytes: 64 * MIB }
        yield* TestClock.setTime(at("10:00:59.950"))
        const first = yield* Scope.make()
        const dying = yield* harness({
          table: table("v1", everyMinute),
          outbox: yield* Outbox.make(options).pipe(Scope.extend(first))
        })
        yield* TestClock.adjust(1)
        const [armed] = yield* dying.outbox.intents
        assert.strictEqual(armed?.scheduledAt, at("10:01:00"))
        yield* Scope.close(first, Exit.void)
        yield* Fiber.interrupt(dying.fiber)
        yield* TestClock.setTime(restartAt)

        const outbox = yield* Outbox.make(options)
        assert.deepStrictEqual(outbox.leftoverIntents, [armed])
        yield* Layer.build(
          runnerLayer({ agentName: "agent", shell: "/bin/sh" }).pipe(
            Layer.provide(Layer.succeed(Outbox.Outbox, outbox))
          )
        )
        const next = yield* harness({ table: table("v1", everyMinute), outbox })
        yield* TestClock.adjust(0)
        return { armed: armed!, next, outbox, records: yield* outbox.pending(-1, 1_000) }
      })

    it.scoped("killed between arming and starting, restarted later: the run is recorded missed (agent_restart), not caught up, not re-run", () =>
      Effect.gen(function*() {
        const { armed, next, outbox, records } = yield* killedWhileArmed(at("10:01:05"))
        // It never started: missed, under its own run id, exactly once.
        assert.deepStrictEqual(records.map((r) => [r._tag, r.runId]), [["RunMissed", armed.runId]])
        const [missed] = records
        assert.isTrue(missed?._tag === "RunMissed" && missed.scheduledAt === at("10:01:00") * 1000)
        assert.isTrue(missed?._tag === "RunMissed" && missed.reason === "agent_restart")
        assert.deepStrictEqual(yield* outbox.intents, [])
        // Burst would catch 10:01 up from the old last run: the missed record moved it past 10:01.
        assert.deepStrictEqual(next.started(), [])
        yield* TestClock.adjust("55 seconds")
        assert.deepStrictEqual(next.started(), ["tick@10:02:00 schedule"])
        assert.strictEqual((yield* outbox.pending(-1, 1_000)).filter((r) => r.runId === armed.runId).length, 1)
      }))

    it.scoped("killed while armed, restarted before the instant: the intent is dropped and the run happens on time", () =>
      Effect.gen(function*() {
        const { armed, next, outbox, records } = yield* killedWhileArmed(at("10:00:59.980"))
        assert.deepStrictEqual(records, [])
        yield* TestClock.adjust(20)
        assert.deepStrictEqual(next.started(), ["tick@10:01:00 schedule"])
        assert.notStrictEqual(next.starts[0]!.request.runId, armed.runId)
        assert.deepStrictEqual((yield* outbox.pending(-1, 1_000)).map((r) => r._tag), ["RunStarted"])
        assert.deepStrictEqual(yield* outbox.intents, [])
      }))

    it.scoped("the ledger identity through a stall, a 3 h forward step, a backward step and a kill: every occurrence once", () =>
      Effect.gen(function*() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "barto-ledger-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const options = { path: path.join(dir, "bartoc.db"), maxBytes: 64 * MIB }
        const every10 = spec("t", "*-*-* *:*:0/10")
        yield* TestClock.setTime(at("10:00:05"))
        const wall = yield* makeWallClock

        // The first process: a stall (its 8th start takes 5 minutes), a suspend-like 3 h forward
        // step, a 30 min backward step, and at last a kill right after arming an instant.
        const first = yield* Scope.make()
        const p1 = yield* harness({
          table: table("v1", every10),
          catchUpLimit: 2,
          clock: wall.clock,
          outbox: yield* Outbox.make(options).pipe(Scope.extend(first)),
          block: (n) => (n === 8 ? 5 * 60_000 : 0)
        })
        yield* TestClock.adjust("7 minutes")
        yield* wall.step(3 * 3_600_000)
        yield* TestClock.adjust("1 minute")
        yield* wall.step(-30 * 60_000)
        yield* TestClock.adjust("35 minutes")
        while ((yield* p1.outbox.intents).length === 0) yield* TestClock.adjust(20)
        yield* Scope.close(first, Exit.void)
        yield* Fiber.interrupt(p1.fiber)

        // Down for two minutes; the next process settles what the first left, then catches up.
        yield* TestClock.adjust("2 minutes")
        const outbox = yield* Outbox.make(options)
        assert.strictEqual(outbox.leftoverIntents.length, 1)
        yield* Layer.build(
          runnerLayer({ agentName: "agent", shell: "/bin/sh" }).pipe(
            Layer.provide(Layer.succeed(Outbox.Outbox, outbox))
          )
        ).pipe(Effect.withClock(wall.clock))
        const p2 = yield* harness({ table: table("v1", every10), catchUpLimit: 2, clock: wall.clock, outbox })
        yield* TestClock.adjust("1 minute")
        yield* Fiber.interrupt(p2.fiber)

        const records = yield* outbox.pending(-1, 1_000_000)
        const entries = records.flatMap((r) => {
          if (r._tag === "RunStarted") {
            return [{ from: r.scheduledAt / 1000, to: r.scheduledAt / 1000, count: 1, label: `started ${r.trigger}` }]
          }
          if (r._tag === "RunMissed") {
            return [{
              from: r.scheduledAt / 1000,
              to: (r.until ?? r.scheduledAt) / 1000,
              count: r.count ?? 1,
              label: `missed ${r.reason}`
            }]
          }
          return []
        })
        assert.deepStrictEqual(
          MissedTicks.ledgerProblems(Either.getOrThrow(Calendar.parse(every10.calendar)), entries),
          []
        )
        // Each fault left its trace: catch-ups, missed ones, the 3 h gap as one range, the kill.
        const labels = new Set(entries.map((e) => e.label))
        for (const l of ["started schedule", "started catch_up", "missed catch_up_limit", "missed agent_restart"]) {
          assert.isTrue(labels.has(l), l)
        }
        assert.isTrue(entries.some((e) => e.label === "missed catch_up_limit" && e.count > 1000))
      }))

    it.scoped("with the blocking wait on, TestClock still fires exactly at the instant (it falls back to a sleep)", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(at("10:00:30"))
        const h = yield* harness({ table: table("v1", everyMinute), preciseMs: 8 })
        yield* TestClock.adjust("2 minutes")
        assert.deepStrictEqual(h.started(), ["tick@10:01:00 schedule", "tick@10:02:00 schedule"])
        assert.deepStrictEqual(h.starts.map((s) => s.now), [at("10:01:00"), at("10:02:00")])
      }))

    it.live("live: the blocking wait ends on the wall clock's edge, never before it", () =>
      Effect.gen(function*() {
        for (const ahead of [0, 1, 3, 6, 40]) {
          const target = Date.now() + ahead
          const reached = yield* Effect.clockWith((clock) => Effect.sync(() => Ticker.blockUntil(clock, target, 8)))
          // Never early: "reached" is only ever said at or after the target. 40 ms ahead is more
          // than it may block (8 ms asleep, a few busy): it normally returns without getting there
          // and the caller sleeps the rest. Whether the shorter waits get there in time depends on
          // the CPU being free (a preempted busy wait gives up), so only the target already due
          // must be reached at once.
          if (reached) assert.isAtLeast(Date.now(), target)
          if (ahead === 0) assert.isTrue(reached)
        }
      }))

    it.scopedLive("live: a per-second schedule never starts before its instant", () =>
      Effect.gen(function*() {
        const h = yield* harness({ table: table("v1", spec("s", "*-*-* *:*:*")), preciseMs: 8 })
        while (h.starts.length < 2) yield* Effect.sleep(50)
        for (const s of h.starts) {
          assert.isAtLeast(s.now, s.request.scheduledAt)
          assert.isTrue(s.request.armed)
        }
        yield* Fiber.interrupt(h.fiber)
      }))
  })

  it.scoped("the current table starts from the durable cache", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.make({ path: ":memory:", maxBytes: MIB })
      const cached = table("cached", spec("a", "*-*-* 03:00:00"))
      yield* outbox.saveTable(cached)
      const ref = yield* Effect.provide(
        Ticker.CurrentTable,
        Ticker.layerCurrentTable.pipe(
          Layer.provide(Layer.succeed(Outbox.Outbox, outbox))
        )
      )
      const current = yield* SubscriptionRef.get(ref)
      assert.strictEqual(Option.getOrThrow(current).version, "cached")
    }))

  it.scoped("waits with no table at all until one arrives", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(at("10:00:00"))
      const h = yield* harness({ table: undefined })
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(h.starts.length, 0)
      yield* SubscriptionRef.set(h.tableRef, Option.some(table("v1", spec("a", "*-*-* 11:00:30"))))
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(h.started(), ["a@11:00:30 schedule"])
      assert.isNull(h.fiber.unsafePoll())
      yield* Fiber.interrupt(h.fiber)
    }))
})
