import { assert, describe, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Random, Ref, Schedule, TestClock } from "effect"
import * as Backoff from "../src/Backoff.js"

const runDelays = (schedule: Schedule.Schedule<Duration.Duration, unknown>, steps: number) =>
  Schedule.run(schedule, 0, Array.from({ length: steps }, (_, i) => i)).pipe(
    Effect.map((c) => Chunk.toReadonlyArray(c).map(Duration.toMillis))
  )

// Just below 1: each delay sits at its ceiling.
const TOP = Random.fixed([0.999999999])

describe("Backoff.reconnect", () => {
  it.effect("grows exponentially from base, capped at cap (jitter at its top)", () =>
    Effect.gen(function*() {
      const delays = yield* runDelays(Backoff.reconnect({ baseMs: 500, factor: 2, capMs: 30_000 }), 9)
      assert.deepStrictEqual(delays, [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000])
    }).pipe(Effect.withRandom(TOP)))

  it.effect("defaults are base 500 ms, factor 2, cap 30 s", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* runDelays(Backoff.reconnect(), 3), [500, 1000, 2000])
      assert.strictEqual(Backoff.ceilingMs(100), 30_000)
      assert.strictEqual(Backoff.ceilingMs(5000), 30_000, "no overflow for huge attempt counts")
    }).pipe(Effect.withRandom(TOP)))

  it.effect("full jitter: a random draw of 0 gives no delay, 0.5 half the ceiling", () =>
    Effect.gen(function*() {
      const zero = yield* runDelays(Backoff.reconnect(), 4).pipe(Effect.withRandom(Random.fixed([0])))
      assert.deepStrictEqual(zero, [0, 0, 0, 0])
      const half = yield* runDelays(Backoff.reconnect({ baseMs: 1000 }), 3).pipe(Effect.withRandom(Random.fixed([0.5])))
      assert.deepStrictEqual(half, [500, 1000, 2000])
    }))

  it.effect("deterministic for a seeded Random, each delay within [0, ceiling], spread over it", () =>
    Effect.gen(function*() {
      const schedule = Backoff.reconnect({ baseMs: 1000, capMs: 1000 })
      const a = yield* runDelays(schedule, 2000).pipe(Effect.withRandom(Random.make("barto")))
      const b = yield* runDelays(schedule, 2000).pipe(Effect.withRandom(Random.make("barto")))
      assert.deepStrictEqual(a, b)
      for (const d of a) assert.isTrue(d >= 0 && d <= 1000 && Number.isInteger(d))
      const mean = a.reduce((x, y) => x + y, 0) / a.length
      assert.isTrue(mean > 440 && mean < 560, `mean ${mean}`)
      assert.isTrue(a.some((d) => d < 100) && a.some((d) => d > 900))
    }))

  it.effect("retries bounds the number of recurrences", () =>
    Effect.gen(function*() {
      const delays = yield* runDelays(Backoff.reconnect({ retries: 3 }), 10)
      // Three delays, then the schedule is done (Schedule.run appends the final output).
      assert.deepStrictEqual(delays, [500, 1000, 2000, 0])
      assert.deepStrictEqual(yield* runDelays(Backoff.reconnect({ retries: 0 }), 3), [0])
    }).pipe(Effect.withRandom(TOP)))

  it.effect("with TestClock: Effect.retry waits the drawn delays, then gives up after the budget", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make<Array<number>>([])
      const connect = Effect.gen(function*() {
        const now = yield* TestClock.currentTimeMillis
        yield* Ref.update(attempts, (xs) => [...xs, now])
        return yield* Effect.fail("refused" as const)
      })
      const fiber = yield* Effect.fork(Effect.retry(connect, Backoff.reconnect({ retries: 4, baseMs: 100 })))
      yield* TestClock.adjust("10 seconds")
      const exit = yield* Fiber.await(fiber)
      assert.strictEqual(exit._tag, "Failure")
      assert.deepStrictEqual(yield* Ref.get(attempts), [0, 100, 300, 700, 1500])
    }).pipe(Effect.withRandom(TOP)))

  it.effect("resetAfterMs: a step long after the last retry was due starts again from base and a full budget", () =>
    Effect.gen(function*() {
      const driver = yield* Schedule.driver(Backoff.reconnect({ baseMs: 100, retries: 3, resetAfterMs: 60_000 }))
      const step = driver.next(undefined).pipe(Effect.map(Duration.toMillis))
      const sleepsOf = (n: number) =>
        Effect.gen(function*() {
          const out: Array<number> = []
          for (let i = 0; i < n; i++) {
            const f = yield* Effect.fork(step)
            yield* TestClock.adjust("1 hour")
            // driver.next sleeps the delay on the TestClock; the hour above covers it.
            out.push(yield* Fiber.join(f))
          }
          return out
        })
      // Each step arrives an hour after the previous retry was due: always healthy in between.
      assert.deepStrictEqual(yield* sleepsOf(5), [100, 100, 100, 100, 100])
      const tight = yield* Schedule.driver(Backoff.reconnect({ baseMs: 100, retries: 3, resetAfterMs: 60_000 }))
      const delays: Array<number> = []
      for (let i = 0; i < 3; i++) {
        const f = yield* Effect.fork(tight.next(undefined))
        yield* TestClock.adjust(Duration.millis(100 * 2 ** i))
        yield* Fiber.join(f)
        delays.push(Duration.toMillis(yield* tight.last))
      }
      assert.deepStrictEqual(delays, [100, 200, 400])
      const exhausted = yield* Effect.either(tight.next(undefined))
      assert.strictEqual(exhausted._tag, "Left", "budget spent when the failures come back to back")
    }).pipe(Effect.withRandom(TOP)))
})
