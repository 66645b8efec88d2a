/**
 * The tick loop under TestClock (style.md §3.3): the time is set, the ticker forked, the clock
 * moved, and a recording Runner plus a real in-memory Outbox are checked.
 *
 * TestClock wakes every sleeper exactly at its instant, so a *stall* is made the way it happens
 * in production: the loop is stuck (here in a Runner.start that takes ten minutes) while the
 * clock moves on. Suspend and clock steps are modelled with a wall clock that can jump while the
 * timers (TestClock's sleeps, the monotonic clock) do not, which is what Node does on Linux.
 */
import * as Outbox from "@barto/agent/Outbox"
import { Runner, type RunnerShape, type RunRequest } from "@barto/agent/Runner"
import * as Ticker from "@barto/agent/Ticker"
import { type MissedTick, ScheduleSpec } from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer, Option, SubscriptionRef, TestClock } from "effect"

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
  readonly lastRun: Option.Option<number>
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
}

const harness = (options: HarnessOptions) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox.make({ path: ":memory:", maxBytes: 64 * MIB })
    for (const [name, ms] of Object.entries(options.lastRuns ?? {})) yield* outbox.setLastRun(name, ms)
    const tableRef = yield* SubscriptionRef.make(Option.fromNullable(options.table))
    const starts: Array<Start> = []
    const runner: RunnerShape = {
      start: (request) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const lastRun = yield* outbox.lastRun(request.spec.name)
          starts.push({ request, now, lastRun })
          const block = options.block?.(starts.length) ?? 0
          if (block > 0) yield* Effect.sleep(block)
          return "started" as const
        }),
      cancel: () => Effect.succeed(false),
      running: Effect.succeed([]),
      awaitIdle: Effect.void
    }
    const loop = Ticker.run({
      agentName: "agent",
      missedTick: options.policy ?? "Burst",
      catchUpLimit: options.catchUpLimit ?? 10,
      ...(options.maxSleepMs === undefined ? {} : { maxSleepMs: options.maxSleepMs })
    }).pipe(
      Effect.provideService(Outbox.Outbox, outbox),
      Effect.provideService(Runner, runner),
      Effect.provideService(Ticker.CurrentTable, tableRef)
    )
    const fiber = yield* Effect.fork(options.clock === undefined ? loop : Effect.withClock(loop, options.clock))
    const missed = outbox.pending(-1, 100_000).pipe(
      Effect.map((records) =>
        records.flatMap((r) =>
          r._tag === "RunMissed" ? [{ schedule: r.schedule, at: hms(r.scheduledAt / 1000), reason: r.reason }] : []
        )
      )
    )
    /** `name@hh:mm:ss trigger` of every start so far. */
    const started = () => starts.map((s) => `${s.request.spec.name}@${hms(s.request.scheduledAt)} ${s.request.trigger}`)
    return { outbox, tableRef, starts, started, missed, fiber }
  })

const everyMinute = spec("tick", "*-*-* *:*:00")

describe("Ticker", () => {
  it.scoped("fires at the exact second, with the last run stored before the start", () =>
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
      assert.deepStrictEqual(start.lastRun, Option.some(at("10:00:30")))
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
      assert.deepStrictEqual(h.started(), ["tick@10:01:00 schedule", "tick@10:02:00 schedule", "tick@10:03:00 schedule"])
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

    it.scoped("Skip runs none of the overdue and records each missed", () =>
      Effect.gen(function*() {
        const h = yield* stall("Skip")
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
      assert.deepStrictEqual((yield* h.missed).map((m) => m.at), ["10:01:00", "10:02:00", "10:03:00", "10:04:00", "10:05:00"])
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

  it.scoped("a table update re-arms at once; resumed or changed schedules do not catch up", () =>
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
      // b resumed at 10:03:30 runs from then on; its paused minutes are neither run nor missed.
      yield* TestClock.adjust(at("10:03:30") - at("10:00:10"))
      yield* SubscriptionRef.set(
        h.tableRef,
        Option.some(table("v3", spec("a", "*-*-* 10:00:10"), spec("b", "*-*-* *:*:00")))
      )
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(h.started(), ["a@10:00:10 schedule", "b@10:04:00 schedule"])
      assert.deepStrictEqual(yield* h.missed, [])
      // A schedule removed from the table stops.
      yield* SubscriptionRef.set(h.tableRef, Option.some(table("v4", spec("a", "*-*-* 10:00:10"))))
      yield* TestClock.adjust("5 minutes")
      assert.deepStrictEqual(h.started(), ["a@10:00:10 schedule", "b@10:04:00 schedule"])
    }))

  it.scoped("the current table starts from the durable cache", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.make({ path: ":memory:", maxBytes: MIB })
      const cached = table("cached", spec("a", "*-*-* 03:00:00"))
      yield* outbox.saveTable(cached)
      const ref = yield* Effect.provide(Ticker.CurrentTable, Ticker.layerCurrentTable.pipe(
        Layer.provide(Layer.succeed(Outbox.Outbox, outbox))
      ))
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
