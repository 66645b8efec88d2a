import { type AgentRecord, Micros, type RunId } from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Logger, Option, Ref, Scope, TestClock } from "effect"
import * as Leader from "../src/Leader.js"
import * as Retention from "../src/Retention.js"
import { layerSqlite, Store, StoreError, type StoreShape, type StoreWithAlerts } from "../src/Store.js"

type RetentionArgs = Parameters<StoreShape["retention"]>[0]

/** A Store whose `retention` replays `results` in turn (the last one repeats); anything else dies. */
const fakeStore = (
  calls: Ref.Ref<Array<RetentionArgs>>,
  results: ReadonlyArray<"ok" | "fail" | "die" | { runs: number; lines: number }>
) =>
  Layer.succeed(
    Store,
    new Proxy({} as StoreWithAlerts, {
      get: (_target, prop) => {
        if (prop !== "retention") return () => Effect.dieMessage(`unexpected Store.${String(prop)}`)
        return (args: RetentionArgs) =>
          Ref.modify(calls, (cs) => [cs.length, [...cs, args]]).pipe(Effect.flatMap((n) => {
            const r = results[Math.min(n, results.length - 1)]!
            return r === "fail"
              ? Effect.fail(new StoreError({ message: "connection refused" }))
              : r === "die"
              ? Effect.dieMessage("boom")
              : Effect.succeed(r === "ok" ? { runs: 0, lines: 0 } : r)
          }))
      }
    })
  )

/** Collects log lines as "LEVEL message" so tests can see what the job reported. */
const captureLogs = (logs: Array<string>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    })
  )

/** Builds the retention layer in a fresh scope (closed with the test's); returns it so a test can close it earlier. */
const start = (options: Retention.RetentionOptions, store: Layer.Layer<Store>, logs: Array<string>) =>
  Effect.gen(function*() {
    const scope = yield* Effect.acquireRelease(Scope.make(), (s) => Scope.close(s, Exit.void))
    yield* Layer.buildWithScope(Retention.layer(options), scope).pipe(
      Effect.provide(Layer.mergeAll(store, captureLogs(logs), Leader.layerSingle()))
    )
    return scope
  })

describe("Retention.layer", () => {
  it.scoped("runs shortly after start, then every interval, with the configured limits and now", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<Array<RetentionArgs>>([])
      const logs: Array<string> = []
      yield* TestClock.setTime(1_700_000_000_000)
      const scope = yield* start(
        { maxAgeDays: 30, maxRunsPerSchedule: 100, intervalSecs: 3600 },
        fakeStore(calls, [{ runs: 3, lines: 42 }, "ok"]),
        logs
      )
      yield* TestClock.adjust("9 seconds")
      assert.strictEqual((yield* Ref.get(calls)).length, 0)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Ref.get(calls), [
        { maxAgeDays: 30, maxRunsPerSchedule: 100, now: 1_700_000_010_000_000 as RetentionArgs["now"] }
      ])
      assert.isTrue(logs.some((l) => l === "INFO retention: deleted 3 runs and 42 output lines"))
      yield* TestClock.adjust("1 hour")
      yield* TestClock.adjust("1 hour")
      const cs = yield* Ref.get(calls)
      assert.strictEqual(cs.length, 3)
      assert.strictEqual(cs[2]!.now, 1_700_000_000_000_000 + (10 + 7200) * 1_000_000)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("5 hours")
      assert.strictEqual((yield* Ref.get(calls)).length, 3, "stops with its scope")
    }))

  it.scoped("survives database errors and defects, logging them, and tries again next interval", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<Array<RetentionArgs>>([])
      const logs: Array<string> = []
      yield* start({ maxAgeDays: 7, intervalSecs: 60 }, fakeStore(calls, ["fail", "die", { runs: 1, lines: 0 }]), logs)
      yield* TestClock.adjust("10 seconds")
      yield* TestClock.adjust("60 seconds")
      yield* TestClock.adjust("60 seconds")
      const cs = yield* Ref.get(calls)
      assert.strictEqual(cs.length, 3)
      assert.deepStrictEqual(Object.keys(cs[0]!).sort(), ["maxAgeDays", "now"], "absent limits are not passed")
      assert.strictEqual(logs.filter((l) => l.startsWith("ERROR retention: pass failed")).length, 2)
      assert.isTrue(logs.includes("INFO retention: deleted 1 runs and 0 output lines"))
    }))

  it.scoped("first pass waits at most one interval", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<Array<RetentionArgs>>([])
      yield* start({ maxRunsPerSchedule: 5, intervalSecs: 2 }, fakeStore(calls, ["ok"]), [])
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* Ref.get(calls)).length, 1)
    }))

  it.scoped("does nothing without limits", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make<Array<RetentionArgs>>([])
      yield* start({ intervalSecs: 60 }, fakeStore(calls, ["ok"]), [])
      yield* TestClock.adjust("1 day")
      assert.strictEqual((yield* Ref.get(calls)).length, 0)
    }))

  it.scoped("deletes through the real Store: old runs go, recent ones stay", () =>
    Effect.gen(function*() {
      const DAY = 86_400_000
      const now = Date.UTC(2025, 9, 20, 12, 0, 0)
      yield* TestClock.setTime(now)
      const run = (runId: string, atMs: number, seq: number): Array<AgentRecord> => [
        {
          _tag: "RunStarted",
          seq,
          runId: runId as RunId,
          schedule: "backup",
          trigger: "schedule",
          scheduledAt: Micros.make(atMs * 1000),
          startedAt: Micros.make(atMs * 1000)
        },
        {
          _tag: "RunFinished",
          seq: seq + 1,
          runId: runId as RunId,
          state: "succeeded",
          finishedAt: Micros.make(atMs * 1000 + 5)
        }
      ]
      const old = "0180a000-0000-7000-8000-000000000001"
      const recent = "0190a000-0000-7000-8000-000000000002"
      const s = Context.get(yield* Layer.build(layerSqlite({ filename: ":memory:" })), Store)
      yield* s.ingest("db1", "outbox-1", [...run(old, now - 40 * DAY, 0), ...run(recent, now - 2 * DAY, 2)])
      yield* start({ maxAgeDays: 30, intervalSecs: 3600 }, Layer.succeed(Store, s), [])
      yield* TestClock.adjust("10 seconds")
      assert.isTrue(Option.isNone(yield* s.getRun(old)))
      assert.isTrue(Option.isSome(yield* s.getRun(recent)))
    }))
})
