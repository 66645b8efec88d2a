import * as Outbox from "@barto/agent/Outbox"
import * as Codec from "@barto/domain/Codec"
import type { Micros, RunId } from "@barto/domain/Messages"
import { AgentRecord, AgentToServer, recordBatchWire, ScheduleSpec } from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Either, Exit, Fiber, Layer, Option, Schema, Scope, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Sqlite from "../src/internal/outbox/Sqlite.js"

const runId = "0190a000-0000-7000-8000-000000000001" as RunId
const us = (n: number) => n as Micros

const started = (): Outbox.RecordDraft => ({
  _tag: "RunStarted",
  runId,
  schedule: "backup",
  trigger: "schedule",
  scheduledAt: us(1_000_000),
  startedAt: us(1_000_500)
})
const line = (lineSeq: number, data = `line ${lineSeq}`): Outbox.RecordDraft => ({
  _tag: "OutputLine",
  runId,
  cmdUuid: "c1",
  lineSeq,
  stream: "stdout",
  ts: us(2_000_000 + lineSeq),
  data,
  continuation: false
})
const exited = (): Outbox.RecordDraft => ({
  _tag: "CommandExited",
  runId,
  cmdUuid: "c1",
  exitCode: null,
  signal: "SIGKILL",
  finishedAt: us(3_000_000)
})
const finished = (): Outbox.RecordDraft => ({
  _tag: "RunFinished",
  runId,
  state: "timed_out",
  finishedAt: us(3_000_001)
})

const tempFile = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "barto-outbox-"))
  // a nested path: the outbox creates missing parent directories
  return { dir, file: path.join(dir, "db", "nested", "bartoc.db") }
}

/** Runs `f` with an outbox on `file`, closing it afterwards. */
const withOutbox = <A, E>(
  options: Outbox.Options,
  f: (outbox: Outbox.OutboxShape) => Effect.Effect<A, E>
) => Effect.scoped(Effect.flatMap(Outbox.make(options), f))

const table = {
  _tag: "ScheduleTable" as const,
  version: "v1",
  schedules: [
    new ScheduleSpec({
      name: "backup",
      onCalendar: "daily",
      calendar: "*-*-* 00:00:00",
      cmds: ["echo one", "echo two"],
      timeoutSecs: 90,
      overlap: "forbid",
      onFailure: "stop",
      paused: false
    }),
    new ScheduleSpec({
      name: "report",
      onCalendar: "hourly",
      calendar: "*-*-* *:00:00",
      cmds: [],
      overlap: "allow",
      onFailure: "continue",
      paused: true
    })
  ]
}

describe("Outbox", () => {
  it.effect("append stamps consecutive seqs; pending pages; ack deletes", () =>
    withOutbox({ path: ":memory:", maxBytes: 1 << 20 }, (outbox) =>
      Effect.gen(function*() {
        assert.strictEqual(yield* outbox.lastSeq.get, -1)
        const a = yield* outbox.append([started(), line(0), line(1)])
        assert.deepStrictEqual(a.map((r) => r.seq), [0, 1, 2])
        assert.deepStrictEqual(a[1], { ...line(0), seq: 1 } as typeof a[1])
        const b = yield* outbox.append([line(2), exited(), finished()])
        assert.deepStrictEqual(b.map((r) => r.seq), [3, 4, 5])
        assert.strictEqual(yield* outbox.lastSeq.get, 5)
        assert.deepStrictEqual(yield* outbox.append([]), [])

        const all = yield* outbox.pending(-1, 100)
        assert.deepStrictEqual(all, [...a, ...b])
        assert.deepStrictEqual((yield* outbox.pending(1, 2)).map((r) => r.seq), [2, 3])
        assert.deepStrictEqual(yield* outbox.pending(5, 10), [])

        yield* outbox.ack(3)
        assert.deepStrictEqual((yield* outbox.pending(-1, 100)).map((r) => r.seq), [4, 5])
        const stats = yield* outbox.stats
        assert.strictEqual(stats.pending, 2)
        assert.isAbove(stats.bytes, 0)
        assert.strictEqual(stats.dropped, 0)
        // acking past the end or twice is harmless
        yield* outbox.ack(100)
        yield* outbox.ack(100)
        assert.deepStrictEqual(yield* outbox.stats, { pending: 0, bytes: 0, dropped: 0 })
        // seqs are never reused after acks emptied the table
        assert.deepStrictEqual((yield* outbox.append([line(3)])).map((r) => r.seq), [6])
      })))

  it.effect("pendingEncoded is the stored wire form: it encodes to the same batch as the decoded records", () =>
    withOutbox({ path: ":memory:", maxBytes: 1 << 20 }, (outbox) =>
      Effect.gen(function*() {
        yield* outbox.append([started(), line(0), line(1), line(2), exited(), finished()])
        const encoded = yield* outbox.pendingEncoded(-1, 100)
        const decoded = yield* outbox.pending(-1, 100)
        assert.deepStrictEqual(encoded, decoded.map((r) => Schema.encodeSync(AgentRecord)(r)))
        assert.deepStrictEqual((yield* outbox.pendingEncoded(1, 2)).map((r) => r.seq), [2, 3])
        // The sender's frame equals the codec's, and bartos decodes it back to the records.
        const codec = Codec.makeJson()
        const wire = new TextEncoder().encode(JSON.stringify(recordBatchWire(encoded)))
        assert.deepStrictEqual(
          new TextDecoder().decode(wire),
          new TextDecoder().decode(codec.encode(AgentToServer, { _tag: "RecordBatch", records: decoded }))
        )
        assert.deepStrictEqual(
          Either.getOrThrow(codec.decode(AgentToServer, wire)),
          { _tag: "RecordBatch", records: decoded } as typeof AgentToServer.Type
        )
      })))

  it.effect("an invalid record fails the append as a whole and assigns nothing", () =>
    withOutbox({ path: ":memory:", maxBytes: 1 << 20 }, (outbox) =>
      Effect.gen(function*() {
        yield* outbox.append([line(0)])
        const bad = { ...line(1), ts: 1.5 as Micros }
        const exit = yield* Effect.exit(outbox.append([line(1), bad]))
        assert.isTrue(Exit.isFailure(exit))
        assert.strictEqual(yield* outbox.lastSeq.get, 0)
        assert.deepStrictEqual((yield* outbox.append([line(1)])).map((r) => r.seq), [1])
        assert.deepStrictEqual((yield* outbox.pending(-1, 10)).map((r) => r.seq), [0, 1])
      })))

  it.effect("the sequence and the outbox id survive a reopen of the same file", () =>
    Effect.gen(function*() {
      const { dir, file } = tempFile()
      const options = { path: file, maxBytes: 1 << 20 }
      const first = yield* withOutbox(options, (outbox) =>
        Effect.gen(function*() {
          yield* outbox.append([started(), line(0), line(1)])
          yield* outbox.ack(2) // everything acked: the table is empty at close
          return outbox.outboxId
        }))
      assert.isTrue(fs.existsSync(file))
      const second = yield* withOutbox(options, (outbox) =>
        Effect.gen(function*() {
          assert.strictEqual(yield* outbox.lastSeq.get, 2)
          const r = yield* outbox.append([line(2)])
          assert.strictEqual(r[0]!.seq, 3)
          return outbox.outboxId
        }))
      assert.strictEqual(second, first)
      // a different file gets a different id
      const other = yield* withOutbox({ path: ":memory:", maxBytes: 1 << 20 }, (o) => Effect.succeed(o.outboxId))
      assert.notStrictEqual(other, first)
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("over the cap, the oldest output lines go first and run records are never dropped", () =>
    withOutbox({ path: ":memory:", maxBytes: 2_000 }, (outbox) =>
      Effect.gen(function*() {
        yield* outbox.append([started()])
        for (let i = 0; i < 40; i++) yield* outbox.append([line(i, "y".repeat(50))])
        yield* outbox.append([exited(), finished()])
        const stats = yield* outbox.stats
        assert.isAtMost(stats.bytes, 2_000)
        assert.isAbove(stats.dropped, 0)
        const left = yield* outbox.pending(-1, 1000)
        const tags = left.map((r) => r._tag)
        assert.strictEqual(tags[0], "RunStarted")
        assert.deepStrictEqual(tags.slice(-2), ["CommandExited", "RunFinished"])
        // the surviving lines are the newest ones, contiguous up to the last
        const lineSeqs = left.flatMap((r) => r._tag === "OutputLine" ? [r.lineSeq] : [])
        assert.isAbove(lineSeqs.length, 0)
        assert.strictEqual(lineSeqs[lineSeqs.length - 1], 39)
        assert.deepStrictEqual(lineSeqs, lineSeqs.map((_, i) => 40 - lineSeqs.length + i))
        assert.strictEqual(stats.dropped, 40 - lineSeqs.length)
        assert.strictEqual(stats.pending, left.length)
        // the sequence still advances normally
        assert.strictEqual(yield* outbox.lastSeq.get, 42)
      })))

  it.effect("when only run records remain the cap is exceeded, not enforced on them", () =>
    withOutbox({ path: ":memory:", maxBytes: 100 }, (outbox) =>
      Effect.gen(function*() {
        yield* outbox.append([started(), line(0), exited(), finished()])
        const left = yield* outbox.pending(-1, 100)
        assert.deepStrictEqual(left.map((r) => r._tag), ["RunStarted", "CommandExited", "RunFinished"])
        const stats = yield* outbox.stats
        assert.isAbove(stats.bytes, 100)
        assert.strictEqual(stats.dropped, 1)
      })))

  it.effect("the dropped count, table and last runs persist across a reopen", () =>
    Effect.gen(function*() {
      const { dir, file } = tempFile()
      const options = { path: file, maxBytes: 500 }
      yield* withOutbox(options, (outbox) =>
        Effect.gen(function*() {
          assert.isTrue(Option.isNone(yield* outbox.loadTable))
          assert.isTrue(Option.isNone(yield* outbox.lastRun("backup")))
          yield* outbox.saveTable(table)
          yield* outbox.setLastRun("backup", 1_700_000_000_000)
          yield* outbox.setLastRun("report", 1_700_000_100_000)
          yield* outbox.setLastRun("backup", 1_700_000_200_000)
          yield* outbox.append([line(0, "z".repeat(200)), line(1, "z".repeat(200))])
        }))
      yield* withOutbox(options, (outbox) =>
        Effect.gen(function*() {
          const loaded = yield* outbox.loadTable
          assert.isTrue(Option.isSome(loaded))
          assert.deepStrictEqual(Option.getOrThrow(loaded), table)
          assert.strictEqual(Option.getOrUndefined(yield* outbox.lastRun("backup")), 1_700_000_200_000)
          assert.strictEqual(Option.getOrUndefined(yield* outbox.lastRun("report")), 1_700_000_100_000)
          assert.isTrue(Option.isNone(yield* outbox.lastRun("nope")))
          assert.strictEqual((yield* outbox.stats).dropped, 1)
          // a new table replaces the old one
          yield* outbox.saveTable({ ...table, version: "v2", schedules: [] })
          assert.strictEqual(Option.getOrThrow(yield* outbox.loadTable).version, "v2")
        }))
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("the cached table is saved with the agent name and loaded only under that name", () =>
    Effect.gen(function*() {
      const { dir, file } = tempFile()
      yield* withOutbox({ path: file, maxBytes: 1 << 20, agentName: "web1" }, (outbox) => outbox.saveTable(table))
      yield* withOutbox(
        { path: file, maxBytes: 1 << 20, agentName: "web1" },
        (outbox) => Effect.map(outbox.loadTable, (loaded) => assert.deepStrictEqual(Option.getOrThrow(loaded), table))
      )
      // Renamed (or a state file copied to another agent): bartos gave this table to 'web1'.
      yield* withOutbox(
        { path: file, maxBytes: 1 << 20, agentName: "web2" },
        (outbox) => Effect.map(outbox.loadTable, (loaded) => assert.isTrue(Option.isNone(loaded)))
      )
      // A cache saved by a bartoc before the name went with it names nobody: not run either.
      const legacy = Sqlite.open(file)
      legacy.prepare("UPDATE meta SET value = ? WHERE key = 'schedule_table'").run(
        JSON.stringify(
          JSON.parse(
            (legacy.prepare("SELECT value FROM meta WHERE key = 'schedule_table'").get() as { value: string }).value
          ).table
        )
      )
      legacy.close()
      yield* withOutbox(
        { path: file, maxBytes: 1 << 20, agentName: "web1" },
        (outbox) => Effect.map(outbox.loadTable, (loaded) => assert.isTrue(Option.isNone(loaded)))
      )
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.effect("a crashed handle (never closed) loses nothing: another handle sees every append", () =>
    Effect.gen(function*() {
      const { dir, file } = tempFile()
      const options = { path: file, maxBytes: 1 << 20 }
      // The first handle's scope is deliberately left open for the rest of the test: no close,
      // no WAL checkpoint, like a process killed mid-flight.
      const crashed = yield* Scope.make()
      const a = yield* Outbox.make(options).pipe(Scope.extend(crashed))
      const appended = yield* a.append([started(), line(0), line(1)])
      yield* a.saveTable(table)
      yield* a.setLastRun("backup", 42_000)

      const recovered = yield* withOutbox(options, (b) =>
        Effect.gen(function*() {
          assert.strictEqual(b.outboxId, a.outboxId)
          assert.deepStrictEqual(yield* b.pending(-1, 100), appended)
          assert.strictEqual(yield* b.lastSeq.get, 2)
          assert.strictEqual(Option.getOrUndefined(yield* b.lastRun("backup")), 42_000)
          assert.isTrue(Option.isSome(yield* b.loadTable))
          return (yield* b.append([line(2)]))[0]!.seq
        }))
      assert.strictEqual(recovered, 3)
      yield* Scope.close(crashed, Exit.void)
      fs.rmSync(dir, { recursive: true, force: true })
    }))

  describe("intents (runs armed ahead of their instant)", () => {
    const intent = (id: string, schedule: string, scheduledAt: number): Outbox.Intent => ({
      runId: id,
      schedule,
      scheduledAt,
      trigger: "schedule"
    })
    const lastRunOf = (outbox: Outbox.OutboxShape, schedule: string) =>
      Effect.map(outbox.lastRun(schedule), Option.getOrUndefined)

    it.scoped("RunStarted consumes its run's intent and moves the last run to its occurrence, in one append", () =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.make({ path: ":memory:", maxBytes: 1 << 20 })
        yield* outbox.arm([intent(runId, "backup", 1_000), intent("other", "report", 2_000)])
        assert.deepStrictEqual((yield* outbox.intents).map((i) => [i.runId, i.schedule, i.scheduledAt, i.trigger]), [
          [runId, "backup", 1_000, "schedule"],
          ["other", "report", 2_000, "schedule"]
        ])
        assert.isUndefined(yield* lastRunOf(outbox, "backup"))
        yield* outbox.append([started(), line(0)])
        assert.deepStrictEqual((yield* outbox.intents).map((i) => i.runId), ["other"])
        assert.strictEqual(yield* lastRunOf(outbox, "backup"), 1_000)
        // A record of a run without an intent changes nothing else.
        yield* outbox.append([{ ...started(), runId: "0190a000-0000-7000-8000-0000000000ff" as RunId }])
        assert.deepStrictEqual((yield* outbox.intents).map((i) => i.runId), ["other"])
      }))

    it.scoped("RunMissed consumes its intent too; a last run never moves backwards", () =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.make({ path: ":memory:", maxBytes: 1 << 20 })
        yield* outbox.setLastRun("report", 5_000)
        yield* outbox.arm([intent("late", "report", 2_000)])
        yield* outbox.append([{
          _tag: "RunMissed",
          runId: "late" as RunId,
          schedule: "report",
          scheduledAt: us(2_000_000),
          reason: "overlap"
        }])
        assert.deepStrictEqual(yield* outbox.intents, [])
        assert.strictEqual(yield* lastRunOf(outbox, "report"), 5_000)
      }))

    it.scoped("disarm removes intents; re-arming a run id replaces it", () =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.make({ path: ":memory:", maxBytes: 1 << 20 })
        yield* outbox.arm([intent("a", "s", 1_000), intent("b", "s", 1_000)])
        yield* outbox.arm([intent("a", "s", 3_000)])
        yield* outbox.disarm(["b", "unknown"])
        assert.deepStrictEqual((yield* outbox.intents).map((i) => [i.runId, i.scheduledAt]), [["a", 3_000]])
        yield* outbox.disarm([])
        yield* outbox.arm([])
        assert.strictEqual((yield* outbox.intents).length, 1)
        assert.isUndefined(yield* lastRunOf(outbox, "s"))
      }))

    it.effect("intents a process left behind are found by the next one; none when it consumed them", () =>
      Effect.gen(function*() {
        const { dir, file } = tempFile()
        const options = { path: file, maxBytes: 1 << 20 }
        const crashed = yield* Scope.make()
        const a = yield* Outbox.make(options).pipe(Scope.extend(crashed))
        assert.deepStrictEqual(a.leftoverIntents, [])
        yield* a.arm([intent(runId, "backup", 1_000), intent("next", "backup", 2_000)])
        yield* a.append([started()])
        // The first handle is never closed (a killed process); a second one opens the file.
        const left = yield* withOutbox(options, (b) => Effect.succeed(b.leftoverIntents))
        assert.deepStrictEqual(left.map((i) => [i.runId, i.schedule, i.scheduledAt]), [["next", "backup", 2_000]])
        yield* Scope.close(crashed, Exit.void)
        fs.rmSync(dir, { recursive: true, force: true })
      }))

    it.effect("checkpoint moves the WAL into the database file and can run at any time", () =>
      Effect.gen(function*() {
        const { dir, file } = tempFile()
        yield* withOutbox({ path: file, maxBytes: 1 << 20 }, (outbox) =>
          Effect.gen(function*() {
            yield* outbox.checkpoint
            yield* outbox.append(Array.from({ length: 800 }, (_, i) => line(i, "x".repeat(500))))
            const before = fs.statSync(file).size
            yield* outbox.checkpoint
            assert.isAbove(fs.statSync(file).size, before + 300_000)
            // Nothing new since: nothing to do, and nothing breaks.
            yield* outbox.checkpoint
            assert.strictEqual((yield* outbox.pending(-1, 1_000)).length, 800)
          }))
        yield* withOutbox({ path: ":memory:", maxBytes: 1 << 20 }, (outbox) => outbox.checkpoint)
        fs.rmSync(dir, { recursive: true, force: true })
      }))
  })

  it.scoped("lastSeq notifies subscribers on every append", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.make({ path: ":memory:", maxBytes: 1 << 20 })
      const watcher = yield* outbox.lastSeq.changes.pipe(
        Stream.takeUntil((n) => n >= 4),
        Stream.runCollect,
        Effect.fork
      )
      yield* outbox.append([started()])
      yield* outbox.append([line(0), line(1)])
      yield* outbox.append([line(2), line(3)])
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(watcher))
      // a subscriber sees the current value, then each append's last seq, ending at the newest
      assert.strictEqual(seen[seen.length - 1], 4)
      for (const n of seen) assert.include([-1, 0, 2, 4], n)
      assert.deepStrictEqual([...seen].sort((x, y) => x - y), seen)
    }))

  it.effect("the layer provides the service and opens the file", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      yield* outbox.append([started()])
      assert.strictEqual((yield* outbox.stats).pending, 1)
    }).pipe(Effect.provide(Outbox.layer({ path: ":memory:", maxBytes: 1 << 20 }))))

  it.effect("a path that cannot be opened is an OutboxError", () =>
    Effect.gen(function*() {
      const { dir } = tempFile()
      // a directory where the file should be
      const exit = yield* Effect.exit(Layer.build(Outbox.layer({ path: dir, maxBytes: 1 }))).pipe(Effect.scoped)
      assert.isTrue(Exit.isFailure(exit))
      fs.rmSync(dir, { recursive: true, force: true })
    }))
})
