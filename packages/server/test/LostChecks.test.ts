import * as Messages from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import * as LostChecks from "../src/internal/lostChecks.js"

const LIVENESS_MS = 1000
const TICK = LostChecks.tickMs(LIVENESS_MS)
const at = (n: number) => Messages.Micros.make(n)

describe("lost-runs checks (one fiber for all ended sessions)", () => {
  it.scoped("each check runs once, a liveness after its end (within a tick); a name ended again is checked once, for its later end", () =>
    Effect.gen(function*() {
      const ran: Array<string> = []
      const checks = yield* LostChecks.make({
        livenessMs: LIVENESS_MS,
        check: (agent, endedAt) => Effect.sync(() => void ran.push(`${agent}@${endedAt}`))
      })
      checks.schedule("a", at(1))
      yield* TestClock.adjust(400)
      checks.schedule("b", at(2))
      checks.schedule("c", at(3))
      yield* TestClock.adjust(200)
      // c ends again: one check, for the later end, due a liveness after it.
      checks.schedule("c", at(4))
      yield* TestClock.adjust(LIVENESS_MS - 600 - 1)
      assert.deepStrictEqual(ran, [])
      yield* TestClock.adjust(TICK)
      assert.deepStrictEqual(ran, ["a@1"])
      yield* TestClock.adjust(400)
      assert.deepStrictEqual(ran, ["a@1", "b@2"])
      assert.strictEqual(checks.pending(), 1)
      yield* TestClock.adjust(200 + TICK)
      assert.deepStrictEqual(ran, ["a@1", "b@2", "c@4"])
      yield* TestClock.adjust(10 * LIVENESS_MS)
      assert.strictEqual(ran.length, 3)
      assert.strictEqual(checks.pending(), 0)
    }))

  it.scoped("a check that dies costs no other check and no later sweep", () =>
    Effect.gen(function*() {
      const ran: Array<string> = []
      const checks = yield* LostChecks.make({
        livenessMs: LIVENESS_MS,
        check: (agent) => agent === "bad" ? Effect.die("boom") : Effect.sync(() => void ran.push(agent))
      })
      checks.schedule("bad", at(1))
      checks.schedule("good", at(1))
      yield* TestClock.adjust(LIVENESS_MS + TICK)
      checks.schedule("later", at(2))
      yield* TestClock.adjust(LIVENESS_MS + TICK)
      assert.deepStrictEqual(ran, ["good", "later"])
    }))

  it("the tick is a quarter of the liveness, between 25 ms and 1 s", () => {
    assert.deepStrictEqual([300, 4000, 15_000, 40].map(LostChecks.tickMs), [75, 1000, 1000, 25])
  })
})
