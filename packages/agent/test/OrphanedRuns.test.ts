import * as Outbox from "@barto/agent/Outbox"
import * as Runner from "@barto/agent/Runner"
import { newRunId } from "@barto/domain/Ids"
import type { Micros } from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

// A bartoc killed mid-run (kill -9) leaves a RunStarted without a RunFinished in its outbox file.
// Its successor must settle that run: otherwise bartos, which saw the agent come back in time,
// shows it `running` for ever (found by the e2e durability suite).

const us = (n: number) => n as Micros

const withFile = <A, E>(f: (file: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "barto-orphans-"))),
    (dir) => f(path.join(dir, "bartoc.db")),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

describe("runs left unfinished by a previous bartoc", () => {
  it.live("are recorded as interrupted (agent_restart) by the next one, exactly once", () =>
    withFile((file) =>
      Effect.gen(function*() {
        const options = { path: file, maxBytes: 1 << 20 }
        const orphan = newRunId()
        const done = newRunId()
        // The first process: two runs started, one finished, then it dies (no Runner finalizer).
        yield* Effect.scoped(Effect.gen(function*() {
          const outbox = yield* Outbox.make(options)
          assert.deepStrictEqual(outbox.orphanedRuns, [])
          yield* outbox.append([
            {
              _tag: "RunStarted",
              runId: orphan,
              schedule: "big",
              trigger: "schedule",
              scheduledAt: us(1),
              startedAt: us(2)
            },
            {
              _tag: "RunStarted",
              runId: done,
              schedule: "small",
              trigger: "manual",
              scheduledAt: us(1),
              startedAt: us(2)
            },
            {
              _tag: "OutputLine",
              runId: orphan,
              cmdUuid: "c1",
              lineSeq: 0,
              stream: "stdout",
              ts: us(3),
              data: "1",
              continuation: false
            },
            { _tag: "RunFinished", runId: done, state: "succeeded", finishedAt: us(4) }
          ])
        }))
        // The next process: the Runner settles the orphan when it starts.
        const records = yield* Effect.gen(function*() {
          const outbox = yield* Outbox.Outbox
          assert.deepStrictEqual(outbox.orphanedRuns, [{ runId: orphan, schedule: "big" }])
          yield* Runner.Runner
          return yield* outbox.pending(-1, 100)
        }).pipe(
          Effect.provide(Layer.provideMerge(Runner.layer({ agentName: "a", shell: "/bin/sh" }), Outbox.layer(options)))
        )
        const finished = records.filter((r) => r._tag === "RunFinished")
        assert.deepStrictEqual(finished.map((r) => [r.runId, r.state, r.reason]), [
          [done, "succeeded", undefined],
          [orphan, "interrupted", "agent_restart"]
        ])
        // …and only once: a third process finds nothing left open.
        yield* Effect.scoped(Effect.gen(function*() {
          const outbox = yield* Outbox.make(options)
          assert.deepStrictEqual(outbox.orphanedRuns, [])
        }))
      })
    ))
})
