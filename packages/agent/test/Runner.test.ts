import * as Outbox from "@barto/agent/Outbox"
import * as Runner from "@barto/agent/Runner"
import { newRunId } from "@barto/domain/Ids"
import type { AgentRecord, RunId } from "@barto/domain/Messages"
import { ScheduleSpec } from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Scope, Stream, TestClock } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import { findAutogroup, parseAutogroup } from "../src/internal/runner/child.js"
import { defaultShell, jobEnv, rfc3339 } from "../src/internal/runner/runner.js"

// Real child processes through a real shell, against an in-memory outbox. Every wait is on a
// condition (awaitIdle, or a record showing up in the outbox), never a fixed sleep.

const spec = (
  name: string,
  cmds: ReadonlyArray<string>,
  extra: Partial<ConstructorParameters<typeof ScheduleSpec>[0]> = {}
) =>
  new ScheduleSpec({
    name,
    onCalendar: "minutely",
    calendar: "*-*-* *:*:00",
    cmds,
    overlap: "allow",
    onFailure: "continue",
    paused: false,
    ...extra
  })

const SCHEDULED_AT = Date.UTC(2025, 0, 2, 3, 4, 5)

const outboxLayer = Outbox.layer({ path: ":memory:", maxBytes: 512 << 20 })
const runnerLayer = (options: Partial<Runner.Options> = {}) =>
  Runner.layer({ agentName: "agent-1", shell: "/bin/sh", killGraceMs: 300, ...options })
const provide = (options: Partial<Runner.Options> = {}) =>
  Effect.provide(Layer.provideMerge(runnerLayer(options), outboxLayer))

const start = (s: ScheduleSpec, runId: RunId = newRunId()) =>
  Effect.gen(function*() {
    const runner = yield* Runner.Runner
    const outcome = yield* runner.start({ runId, spec: s, trigger: "manual", scheduledAt: SCHEDULED_AT })
    return { runId, outcome }
  })

const all = Effect.flatMap(Outbox.Outbox, (o) => o.pending(-1, 1_000_000))
const recordsOf = (runId: RunId) => Effect.map(all, (rs) => rs.filter((r) => r.runId === runId))
const awaitIdle = Effect.flatMap(Runner.Runner, (r) => r.awaitIdle)

/** Waits until the outbox holds a record matching `pred` (re-checked on every append). */
const waitForRecord = (pred: (r: AgentRecord) => boolean) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox.Outbox
    return yield* outbox.lastSeq.changes.pipe(
      Stream.mapEffect(() => outbox.pending(-1, 1_000_000)),
      Stream.map((rs) => rs.find(pred)),
      Stream.filter((r): r is AgentRecord => r !== undefined),
      Stream.runHead,
      Effect.map(Option.getOrThrow),
      Effect.timeoutFail({ duration: Duration.seconds(10), onTimeout: () => new Error("record never appeared") })
    )
  })

const tags = (rs: ReadonlyArray<AgentRecord>) => rs.map((r) => r._tag)
const lines = (rs: ReadonlyArray<AgentRecord>) => rs.flatMap((r) => r._tag === "OutputLine" ? [r] : [])
const exits = (rs: ReadonlyArray<AgentRecord>) => rs.flatMap((r) => r._tag === "CommandExited" ? [r] : [])
const finalState = (rs: ReadonlyArray<AgentRecord>) => {
  const f = rs.find((r) => r._tag === "RunFinished")
  return f?._tag === "RunFinished" ? f.state : undefined
}

/** True once `pid` is gone (or a zombie waiting for a reaper outside our control). */
const processGone = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z")
  } catch {
    return true
  }
}
const waitGone = (pid: number) =>
  Effect.gen(function*() {
    while (!processGone(pid)) yield* Effect.sleep(Duration.millis(20))
  }).pipe(Effect.timeoutFail({ duration: Duration.seconds(5), onTimeout: () => new Error(`pid ${pid} survived`) }))

describe("Runner", () => {
  it.live("runs commands in order and records the whole run; on_failure=continue runs all", () =>
    Effect.gen(function*() {
      const { outcome, runId } = yield* start(spec("seq", ["echo a", "exit 3", "echo b; echo c >&2"]))
      assert.strictEqual(outcome, "started")
      yield* awaitIdle
      const rs = yield* recordsOf(runId)
      assert.deepStrictEqual(tags(rs), [
        "RunStarted",
        "CommandStarted",
        "OutputLine",
        "CommandExited",
        "CommandStarted",
        "CommandExited",
        "CommandStarted",
        "OutputLine",
        "OutputLine",
        "CommandExited",
        "RunFinished"
      ])
      const first = rs[0]!
      assert.isTrue(first._tag === "RunStarted" && first.schedule === "seq" && first.trigger === "manual")
      assert.isTrue(first._tag === "RunStarted" && first.scheduledAt === SCHEDULED_AT * 1000)
      const cmds = rs.flatMap((r) => r._tag === "CommandStarted" ? [[r.cmdIndex, r.command]] : [])
      assert.deepStrictEqual(cmds, [[0, "echo a"], [1, "exit 3"], [2, "echo b; echo c >&2"]])
      assert.deepStrictEqual(exits(rs).map((e) => [e.exitCode, e.signal]), [[0, null], [3, null], [0, null]])
      assert.deepStrictEqual(lines(rs).map((l) => l.data), ["a", "b", "c"])
      assert.deepStrictEqual(lines(rs).map((l) => l.lineSeq), [0, 1, 2])
      // each command has its own uuid, shared by its lines and its exit
      const uuids = rs.flatMap((r) => r._tag === "CommandStarted" ? [r.cmdUuid] : [])
      assert.strictEqual(new Set(uuids).size, 3)
      assert.deepStrictEqual(exits(rs).map((e) => e.cmdUuid), uuids)
      assert.strictEqual(finalState(rs), "failed")
      // seqs are strictly increasing in record order
      const seqs = rs.map((r) => r.seq)
      assert.deepStrictEqual(seqs, [...seqs].sort((x, y) => x - y))
    }).pipe(provide()))

  it.live("on_failure=stop stops after the first failing command; all zero is success", () =>
    Effect.gen(function*() {
      const stopped = yield* start(spec("stop", ["true", "false", "echo never"], { onFailure: "stop" }))
      const ok = yield* start(spec("ok", ["true", "echo fine"], { onFailure: "stop" }))
      const empty = yield* start(spec("empty", []))
      yield* awaitIdle
      const rs = yield* recordsOf(stopped.runId)
      assert.deepStrictEqual(exits(rs).map((e) => e.exitCode), [0, 1])
      assert.deepStrictEqual(lines(rs), [])
      assert.strictEqual(finalState(rs), "failed")
      assert.strictEqual(finalState(yield* recordsOf(ok.runId)), "succeeded")
      assert.deepStrictEqual(tags(yield* recordsOf(empty.runId)), ["RunStarted", "RunFinished"])
      assert.strictEqual(finalState(yield* recordsOf(empty.runId)), "succeeded")
    }).pipe(provide()))

  it.live("a command killed by a signal has no exit code, the signal name, and fails the run", () =>
    Effect.gen(function*() {
      const { runId } = yield* start(spec("sig", ["echo before; kill -9 $$", "echo after"]))
      yield* awaitIdle
      const rs = yield* recordsOf(runId)
      assert.deepStrictEqual(exits(rs).map((e) => [e.exitCode, e.signal]), [[null, "SIGKILL"], [0, null]])
      assert.deepStrictEqual(lines(rs).map((l) => l.data), ["before", "after"])
      assert.strictEqual(finalState(rs), "failed")
    }).pipe(provide()))

  it.live("a timeout kills the whole process group, grandchildren included, and skips the rest", () =>
    Effect.gen(function*() {
      const { runId } = yield* start(
        spec("slow", ["sleep 30 & echo $!; sleep 30; wait", "echo never"], { timeoutSecs: 0.5 })
      )
      const pidLine = yield* waitForRecord((r) => r.runId === runId && r._tag === "OutputLine")
      const grandchild = Number(pidLine._tag === "OutputLine" ? pidLine.data : NaN)
      assert.isTrue(Number.isInteger(grandchild) && grandchild > 1)
      yield* awaitIdle
      const rs = yield* recordsOf(runId)
      assert.strictEqual(rs.filter((r) => r._tag === "CommandStarted").length, 1)
      assert.deepStrictEqual(exits(rs).map((e) => [e.exitCode, e.signal]), [[null, "SIGTERM"]])
      assert.strictEqual(finalState(rs), "timed_out")
      yield* waitGone(grandchild)
    }).pipe(provide()))

  it.live("a group that ignores SIGTERM gets SIGKILL after the grace period", () =>
    Effect.gen(function*() {
      const { runId } = yield* start(spec("stubborn", ["trap '' TERM; echo ready; sleep 30"], { timeoutSecs: 0.3 }))
      yield* awaitIdle
      const rs = yield* recordsOf(runId)
      assert.deepStrictEqual(exits(rs).map((e) => [e.exitCode, e.signal]), [[null, "SIGKILL"]])
      assert.strictEqual(finalState(rs), "timed_out")
      assert.deepStrictEqual(lines(rs).map((l) => l.data), ["ready"])
    }).pipe(provide({ killGraceMs: 200 })))

  it.live("cancel kills the running command; unknown runs answer false", () =>
    Effect.gen(function*() {
      const runner = yield* Runner.Runner
      const { runId } = yield* start(spec("long", ["echo ready; sleep 30", "echo never"]))
      yield* waitForRecord((r) => r.runId === runId && r._tag === "OutputLine")
      assert.deepStrictEqual(yield* runner.running, [{ runId, schedule: "long" }])
      assert.isTrue(yield* runner.cancel(runId))
      yield* awaitIdle
      const rs = yield* recordsOf(runId)
      assert.deepStrictEqual(exits(rs).map((e) => [e.exitCode, e.signal]), [[null, "SIGTERM"]])
      assert.strictEqual(finalState(rs), "cancelled")
      assert.deepStrictEqual(yield* runner.running, [])
      assert.isFalse(yield* runner.cancel(runId))
      assert.isFalse(yield* runner.cancel(newRunId()))
    }).pipe(provide()))

  it.live("overlap=allow runs concurrently; forbid records a missed run; queue waits its turn", () =>
    Effect.gen(function*() {
      const runner = yield* Runner.Runner
      const block = ["echo ready; sleep 30"]

      const a1 = yield* start(spec("allow", block))
      const a2 = yield* start(spec("allow", block))
      assert.deepStrictEqual([a1.outcome, a2.outcome], ["started", "started"])

      const f1 = yield* start(spec("forbid", block, { overlap: "forbid" }))
      const f2 = yield* start(spec("forbid", ["echo no"], { overlap: "forbid" }))
      assert.deepStrictEqual([f1.outcome, f2.outcome], ["started", "skipped"])
      const missed = yield* recordsOf(f2.runId)
      assert.deepStrictEqual(missed.map((r) => r._tag === "RunMissed" ? [r.schedule, r.reason, r.scheduledAt] : []), [[
        "forbid",
        "overlap",
        SCHEDULED_AT * 1000
      ]])

      const q1 = yield* start(spec("queue", block, { overlap: "queue" }))
      const q2 = yield* start(spec("queue", ["echo second"], { overlap: "queue" }))
      const q3 = yield* start(spec("queue", ["echo third"], { overlap: "queue" }))
      assert.deepStrictEqual([q1.outcome, q2.outcome, q3.outcome], ["started", "queued", "queued"])
      assert.deepStrictEqual(yield* recordsOf(q2.runId), [])

      const running = (yield* runner.running).map((r) => r.runId)
      assert.sameMembers(running, [a1.runId, a2.runId, f1.runId, q1.runId])

      for (const r of [a1, a2, f1, q1]) assert.isTrue(yield* runner.cancel(r.runId))
      yield* awaitIdle

      // the queued runs ran after the one they waited for, in order
      const rs = yield* all
      const pos = (runId: RunId, tag: AgentRecord["_tag"]) => rs.findIndex((r) => r.runId === runId && r._tag === tag)
      assert.isBelow(pos(q1.runId, "RunFinished"), pos(q2.runId, "RunStarted"))
      assert.isBelow(pos(q2.runId, "RunFinished"), pos(q3.runId, "RunStarted"))
      assert.strictEqual(finalState(yield* recordsOf(q2.runId)), "succeeded")
      assert.deepStrictEqual(lines(yield* recordsOf(q3.runId)).map((l) => l.data), ["third"])
      // once the schedule is free, forbid starts again
      assert.strictEqual((yield* start(spec("forbid", ["true"], { overlap: "forbid" }))).outcome, "started")
      yield* awaitIdle
    }).pipe(provide()))

  // The niceness of the process that runs the command, and of one it forks (field 19 of stat).
  const NICENESS = "awk '{print $19}' /proc/self/stat; (awk '{print $19}' /proc/self/stat)"
  const niceAs = (offset: number) => String(Math.min(19, os.getPriority() + offset))

  it.live("commands run `nice` steps below bartoc (default 10), and what they fork inherits it", () =>
    Effect.gen(function*() {
      const byDefault = yield* start(spec("nice-default", [NICENESS]))
      const zero = yield* start(spec("nice-0", [NICENESS], { nice: 0 }))
      const lowest = yield* start(spec("nice-19", [NICENESS, NICENESS], { nice: 19 }))
      yield* awaitIdle
      assert.deepStrictEqual(lines(yield* recordsOf(byDefault.runId)).map((l) => l.data), [niceAs(10), niceAs(10)])
      assert.deepStrictEqual(lines(yield* recordsOf(zero.runId)).map((l) => l.data), [niceAs(0), niceAs(0)])
      assert.deepStrictEqual(lines(yield* recordsOf(lowest.runId)).map((l) => l.data), Array(4).fill("19"))
    }).pipe(provide()))

  it("reads an autogroup line of /proc", () => {
    assert.deepStrictEqual(parseAutogroup("/autogroup-85 nice 0\n"), { name: "/autogroup-85", nice: 0 })
    assert.deepStrictEqual(parseAutogroup("/autogroup-7 nice -3"), { name: "/autogroup-7", nice: -3 })
    assert.strictEqual(parseAutogroup("garbage"), undefined)
  })

  // A detached job has a session and so a scheduler autogroup of its own: its niceness alone
  // would not put it below bartoc (child.ts). Where the kernel has autogroups, the job's group
  // gets the same steps below bartoc's; where it has none, the job still runs at its niceness.
  it.live("with autogroups, a job's autogroup is niced like the job, never bartoc's own", () =>
    Effect.gen(function*() {
      const own = findAutogroup()
      // bartoc sets the group right after the spawn returns, so a job may run its first
      // instructions before that under load: the job waits (≤ 1 s) for a nice other than 0.
      const AUTOGROUP = "for i in $(seq 50); do grep -q ' nice 0$' /proc/self/autogroup 2>/dev/null || break; " +
        "sleep 0.02; done; cat /proc/self/autogroup 2>/dev/null || echo none"
      const byDefault = yield* start(spec("ag-default", [AUTOGROUP]))
      const zero = yield* start(spec("ag-0", [AUTOGROUP], { nice: 0 }))
      yield* awaitIdle
      const groupOf = (lines: ReadonlyArray<string>) => parseAutogroup(lines[0] ?? "")
      const niced = groupOf(lines(yield* recordsOf(byDefault.runId)).map((l) => l.data))
      const plain = groupOf(lines(yield* recordsOf(zero.runId)).map((l) => l.data))
      if (own === undefined) {
        assert.strictEqual(niced?.nice ?? 0, plain?.nice ?? 0)
        return
      }
      assert.deepStrictEqual(niced?.nice, Math.min(19, own.nice + 10))
      assert.notStrictEqual(niced?.name, own.name)
      assert.deepStrictEqual(plain?.nice, own.nice)
      assert.deepStrictEqual(findAutogroup(), own)
    }).pipe(provide()))

  describe("armed runs (an intent written ahead, nothing written before the spawn)", () => {
    const armedRequest = (
      name: string,
      cmds: ReadonlyArray<string>,
      extra: Partial<ConstructorParameters<typeof ScheduleSpec>[0]> = {}
    ) => {
      const runId = newRunId()
      return {
        runId,
        spec: spec(name, cmds, extra),
        trigger: "schedule" as const,
        scheduledAt: SCHEDULED_AT,
        armed: true
      }
    }
    const arm = (r: Runner.RunRequest) =>
      Effect.flatMap(
        Outbox.Outbox,
        (o) => o.arm([{ runId: r.runId, schedule: r.spec.name, scheduledAt: r.scheduledAt, trigger: r.trigger }])
      )

    it.live("spawns at once and records its start with the first command's instant; the intent is consumed", () =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
        const runner = yield* Runner.Runner
        const request = armedRequest("armed", ["echo one $BARTO_RUN_ID", "echo two $BARTO_SCHEDULE"])
        yield* arm(request)
        yield* runner.prepare([request])
        assert.strictEqual(yield* runner.start(request), "started")
        yield* awaitIdle
        const rs = yield* recordsOf(request.runId)
        assert.deepStrictEqual(tags(rs), [
          "RunStarted",
          "CommandStarted",
          "OutputLine",
          "CommandExited",
          "CommandStarted",
          "OutputLine",
          "CommandExited",
          "RunFinished"
        ])
        const [runStarted, cmdStarted] = rs
        assert.isTrue(runStarted?._tag === "RunStarted" && runStarted.trigger === "schedule")
        assert.isTrue(runStarted?._tag === "RunStarted" && runStarted.scheduledAt === SCHEDULED_AT * 1000)
        assert.isTrue(
          runStarted?._tag === "RunStarted" && cmdStarted?._tag === "CommandStarted" &&
            runStarted.startedAt === cmdStarted.startedAt
        )
        // The prepared environment serves every command of the run.
        assert.deepStrictEqual(lines(rs).map((l) => l.data), [`one ${request.runId}`, "two armed"])
        assert.strictEqual(finalState(rs), "succeeded")
        assert.deepStrictEqual(yield* outbox.intents, [])
        assert.strictEqual(Option.getOrUndefined(yield* outbox.lastRun("armed")), SCHEDULED_AT)
      }).pipe(provide()))

    it.live("its first command, spawned by start itself, runs at the schedule's niceness too", () =>
      Effect.gen(function*() {
        const runner = yield* Runner.Runner
        const request = armedRequest("armed-nice", [NICENESS, NICENESS], { nice: 5 })
        yield* arm(request)
        assert.strictEqual(yield* runner.start(request), "started")
        yield* awaitIdle
        assert.deepStrictEqual(lines(yield* recordsOf(request.runId)).map((l) => l.data), Array(4).fill(niceAs(5)))
      }).pipe(provide()))

    it.live("without prepare, or with no commands, it still runs and records its start", () =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
        const runner = yield* Runner.Runner
        const plain = armedRequest("plain", ["echo $BARTO_SCHEDULE"])
        const empty = armedRequest("empty", [])
        yield* arm(plain)
        yield* arm(empty)
        yield* runner.start(plain)
        yield* runner.start(empty)
        yield* awaitIdle
        assert.deepStrictEqual(lines(yield* recordsOf(plain.runId)).map((l) => l.data), ["plain"])
        assert.deepStrictEqual(tags(yield* recordsOf(empty.runId)), ["RunStarted", "RunFinished"])
        assert.deepStrictEqual(yield* outbox.intents, [])
      }).pipe(provide()))

    // Under TestClock, so that "near the instant" lasts as long as the test needs: the job and its
    // pipes are real, the runner's clock stands still until the test moves it.
    it.effect("output of running jobs waits while a prepared run's instant is near, and goes out once it started", () =>
      Effect.gen(function*() {
        const runner = yield* Runner.Runner
        const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 20)))
        const due = armedRequest("due", ["true"])
        yield* TestClock.setTime(due.scheduledAt - 30)
        yield* arm(due)
        yield* runner.prepare([due])
        const marker = `${fs.mkdtempSync(`${os.tmpdir()}/barto-hold-`)}/done`
        const chatty = yield* start(spec("chatty", [`echo one; echo two; touch ${marker}`]))
        while (!fs.existsSync(marker)) yield* realPause
        // The chatty job has printed; its sink lingers (20 ms), then holds: the instant is 10 ms away.
        yield* realPause
        yield* TestClock.adjust(20)
        for (let i = 0; i < 3; i++) yield* realPause
        assert.deepStrictEqual(lines(yield* recordsOf(chatty.runId)), [])
        assert.strictEqual(yield* runner.start(due), "started")
        // Until both are idle: the sinks' lingers and holds need the clock moved.
        const idle = yield* Effect.fork(awaitIdle)
        while (idle.unsafePoll() === null) {
          yield* TestClock.adjust(20)
          yield* realPause
        }
        const dueStarted = (yield* recordsOf(due.runId)).find((r) => r._tag === "RunStarted")!
        const chattyLines = lines(yield* recordsOf(chatty.runId))
        assert.deepStrictEqual(chattyLines.map((l) => l.data), ["one", "two"])
        assert.isTrue(chattyLines.every((l) => l.seq > dueStarted.seq))
      }).pipe(provide()))

    it.live("one that overlap=forbid refuses is recorded missed, which consumes its intent", () =>
      Effect.gen(function*() {
        const outbox = yield* Outbox.Outbox
        const runner = yield* Runner.Runner
        const first = yield* start(spec("busy", ["sleep 30"], { overlap: "forbid" }))
        const refused = armedRequest("busy", ["echo no"], { overlap: "forbid" })
        yield* arm(refused)
        assert.strictEqual(yield* runner.start(refused), "skipped")
        assert.deepStrictEqual(
          (yield* recordsOf(refused.runId)).map((r) => r._tag === "RunMissed" ? r.reason : r._tag),
          [
            "overlap"
          ]
        )
        assert.deepStrictEqual(yield* outbox.intents, [])
        assert.isTrue(yield* runner.cancel(first.runId))
        yield* awaitIdle
      }).pipe(provide()))

    it.live("a cancel kills an armed run's first command like any other", () =>
      Effect.gen(function*() {
        const runner = yield* Runner.Runner
        const slow = armedRequest("slow", ["sleep 30", "echo never"])
        yield* arm(slow)
        yield* runner.start(slow)
        assert.isTrue(yield* runner.cancel(slow.runId))
        yield* awaitIdle
        const rs = yield* recordsOf(slow.runId)
        assert.strictEqual(finalState(rs), "cancelled")
        assert.deepStrictEqual(exits(rs).map((e) => e.signal), ["SIGTERM"])
        assert.deepStrictEqual(lines(rs), [])
      }).pipe(provide()))
  })

  it.live("cancelling a queued run records it as missed and never starts it", () =>
    Effect.gen(function*() {
      const runner = yield* Runner.Runner
      const q1 = yield* start(spec("q", ["sleep 30"], { overlap: "queue" }))
      const q2 = yield* start(spec("q", ["echo no"], { overlap: "queue" }))
      assert.strictEqual(q2.outcome, "queued")
      assert.isTrue(yield* runner.cancel(q2.runId))
      assert.isTrue(yield* runner.cancel(q1.runId))
      yield* awaitIdle
      assert.deepStrictEqual((yield* recordsOf(q2.runId)).map((r) => r._tag === "RunMissed" ? r.reason : r._tag), [
        "cancelled"
      ])
    }).pipe(provide()))

  it.live("lines written to the heartbeat pipe become Heartbeat records, not output", () =>
    Effect.gen(function*() {
      const { runId } = yield* start(spec("beats", [
        `echo out; echo "progress=1/2 status=ok half way" >&3; echo >&3; echo "status=degraded" >&3`
      ]))
      yield* awaitIdle
      const rs = yield* recordsOf(runId)
      const beats = rs.filter((r) => r._tag === "Heartbeat").map(({ progress, status, message }: any) => ({
        progress,
        status,
        message
      }))
      assert.deepStrictEqual(beats, [
        { progress: "1/2", status: "ok", message: "half way" },
        { progress: undefined, status: undefined, message: undefined },
        { progress: undefined, status: "degraded", message: undefined }
      ])
      assert.deepStrictEqual(lines(rs).map((l) => l.data), ["out"])
      assert.strictEqual(rs.find((r) => r._tag === "RunFinished")?._tag, "RunFinished")
    }).pipe(provide()))

  it.live("the job sees bartoc's environment minus BARTO* plus the run's variables", () =>
    Effect.gen(function*() {
      const saved = { ...process.env }
      process.env.BARTO_SECRET = "s3cret"
      process.env.BARTOC_HMAC_KEY = "k3y"
      process.env.BARTO_RUN_ID = "spoofed"
      process.env.JOB_VISIBLE = "yes"
      const { runId } = yield* start(spec("env", ["env"])).pipe(
        Effect.zipLeft(awaitIdle),
        Effect.ensuring(Effect.sync(() => {
          for (const k of ["BARTO_SECRET", "BARTOC_HMAC_KEY", "BARTO_RUN_ID", "JOB_VISIBLE"]) {
            if (saved[k] === undefined) delete process.env[k]
            else process.env[k] = saved[k]
          }
        }))
      )
      yield* awaitIdle
      const env = lines(yield* recordsOf(runId)).map((l) => l.data)
      assert.include(env, "JOB_VISIBLE=yes")
      assert.include(env, `BARTO_RUN_ID=${runId}`)
      assert.include(env, "BARTO_SCHEDULE=env")
      assert.include(env, "BARTO_AGENT=agent-1")
      assert.include(env, "BARTO_SCHEDULED_AT=2025-01-02T03:04:05Z")
      assert.isFalse(env.some((l) => l.includes("s3cret") || l.includes("k3y") || l.startsWith("BARTOC_")))
      assert.sameMembers(env.filter((l) => l.startsWith("BARTO")), [
        "BARTO_AGENT=agent-1",
        `BARTO_RUN_ID=${runId}`,
        "BARTO_SCHEDULED_AT=2025-01-02T03:04:05Z",
        "BARTO_SCHEDULE=env",
        "BARTO_HEARTBEAT=fd:3"
      ])
    }).pipe(provide()))

  it.live("binary output is captured without a crash", () =>
    Effect.gen(function*() {
      const { runId } = yield* start(spec("bin", ["head -c 100000 /dev/urandom", "echo after"]))
      yield* awaitIdle
      const rs = yield* recordsOf(runId)
      assert.deepStrictEqual(exits(rs).map((e) => e.exitCode), [0, 0])
      assert.strictEqual(finalState(rs), "succeeded")
      const ls = lines(rs)
      assert.isAbove(ls.length, 1)
      assert.strictEqual(ls[ls.length - 1]!.data, "after")
      assert.deepStrictEqual(ls.map((l) => l.lineSeq), ls.map((_, i) => i))
    }).pipe(provide()))

  it.live("huge output: seq 1 100000 gives exactly 100,000 lines, in order, lineSeq contiguous", () =>
    Effect.gen(function*() {
      const { runId } = yield* start(spec("huge", ["seq 1 100000"]))
      yield* awaitIdle
      const rs = yield* recordsOf(runId)
      const ls = lines(rs)
      assert.strictEqual(ls.length, 100_000)
      for (let i = 0; i < ls.length; i++) {
        if (ls[i]!.data !== String(i + 1) || ls[i]!.lineSeq !== i || ls[i]!.stream !== "stdout") {
          assert.fail(`line ${i}: ${JSON.stringify(ls[i])}`)
        }
      }
      assert.strictEqual(finalState(rs), "succeeded")
      assert.strictEqual(rs[rs.length - 2]!._tag, "CommandExited")
    }).pipe(provide()))

  it.live("stdout and stderr share one line sequence in the order they were written", () =>
    Effect.gen(function*() {
      // the pauses make the order observable: each write is read before the next one happens
      const { runId } = yield* start(
        spec("mix", [
          "echo o1; sleep 0.1; echo e1 >&2; sleep 0.1; echo o2; sleep 0.1; echo e2 >&2; sleep 0.1; printf o3"
        ])
      )
      yield* awaitIdle
      const ls = lines(yield* recordsOf(runId))
      assert.deepStrictEqual(ls.map((l) => [l.lineSeq, l.stream, l.data]), [
        [0, "stdout", "o1"],
        [1, "stderr", "e1"],
        [2, "stdout", "o2"],
        [3, "stderr", "e2"],
        [4, "stdout", "o3"]
      ])
      // line sequence continues across commands of the same run
    }).pipe(provide()))

  it.live("the line sequence continues across the commands of a run", () =>
    Effect.gen(function*() {
      const { runId } = yield* start(spec("multi", ["echo a; echo b", "echo c >&2"]))
      yield* awaitIdle
      assert.deepStrictEqual(lines(yield* recordsOf(runId)).map((l) => [l.lineSeq, l.data]), [[0, "a"], [1, "b"], [
        2,
        "c"
      ]])
    }).pipe(provide()))

  // nice = 0 spawns the shell itself (Node reports ENOENT); otherwise `nice` runs it and says so.
  for (const [nice, error] of [[0, "ENOENT"], [10, "No such file or directory"]] as const) {
    it.live(`a shell that cannot be started is exit 127 with the error on stderr, not a crash (nice = ${nice})`, () =>
      Effect.gen(function*() {
        const { runId } = yield* start(spec("nosh", ["echo hi", "echo again"], { nice }))
        yield* awaitIdle
        const rs = yield* recordsOf(runId)
        assert.deepStrictEqual(exits(rs).map((e) => [e.exitCode, e.signal]), [[127, null], [127, null]])
        const ls = lines(rs)
        assert.strictEqual(ls.length, 2)
        assert.strictEqual(ls[0]!.stream, "stderr")
        assert.include(ls[0]!.data, "/nonexistent/shell")
        assert.include(ls[0]!.data, error)
        assert.strictEqual(finalState(rs), "failed")
      }).pipe(provide({ shell: "/nonexistent/shell" })))
  }

  it.live("shutdown = terminate kills running groups at once and records their exit and an interrupted finish (shutdown)", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(runnerLayer({ killGraceMs: 200, shutdown: "terminate" }), scope).pipe(
        Effect.provideService(Outbox.Outbox, outbox)
      )
      const runner = Layer.succeedContext(ctx)
      const s1 = yield* start(spec("down", ["echo ready; sleep 30", "echo never"])).pipe(Effect.provide(runner))
      const s2 = yield* start(spec("down", ["trap '' TERM; echo ready; sleep 30"])).pipe(Effect.provide(runner))
      const s3 = yield* start(spec("downq", ["sleep 30"], { overlap: "queue" })).pipe(Effect.provide(runner))
      const s4 = yield* start(spec("downq", ["echo queued"], { overlap: "queue" })).pipe(Effect.provide(runner))
      assert.strictEqual(s4.outcome, "queued")
      yield* waitForRecord((r) => r.runId === s1.runId && r._tag === "OutputLine")
      yield* waitForRecord((r) => r.runId === s2.runId && r._tag === "OutputLine")
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      assert.isBelow(Date.now() - started, 10_000)

      const interrupted = (rs: ReadonlyArray<AgentRecord>) =>
        rs.flatMap((r) => (r._tag === "RunFinished" ? [`${r.state} ${r.reason}`] : []))
      const r1 = yield* recordsOf(s1.runId)
      assert.deepStrictEqual(exits(r1).map((e) => e.signal), ["SIGTERM"])
      assert.deepStrictEqual(interrupted(r1), ["interrupted shutdown"])
      const r2 = yield* recordsOf(s2.runId)
      assert.deepStrictEqual(exits(r2).map((e) => e.signal), ["SIGKILL"])
      assert.deepStrictEqual(interrupted(r2), ["interrupted shutdown"])
      assert.deepStrictEqual(interrupted(yield* recordsOf(s3.runId)), ["interrupted shutdown"])
      // The queued run never started: missed, and its intent (written when it queued) consumed.
      assert.deepStrictEqual((yield* recordsOf(s4.runId)).map((r) => r._tag === "RunMissed" ? r.reason : r._tag), [
        "shutdown"
      ])
      assert.deepStrictEqual(yield* outbox.intents, [])
    }).pipe(Effect.provide(outboxLayer)))

  it.live("shutdown = wait: nothing new starts, running runs finish; past the grace, or asked again, the rest are interrupted", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(
        runnerLayer({ killGraceMs: 200, shutdown: "wait", shutdownGraceMs: 60_000 }),
        scope
      ).pipe(Effect.provideService(Outbox.Outbox, outbox))
      const runner = Layer.succeedContext(ctx)
      const dir = fs.mkdtempSync(`${os.tmpdir()}/barto-drain-`)
      const gate = `${dir}/go`
      // Finishes once the test creates the gate file, printing after the drain began.
      const soon = yield* start(spec("soon", [`echo ready; while [ ! -e ${gate} ]; do sleep 0.05; done; echo done`]))
        .pipe(Effect.provide(runner))
      const long = yield* start(spec("long", ["echo ready; sleep 30"])).pipe(Effect.provide(runner))
      const queued = yield* start(spec("long", ["echo queued"], { overlap: "queue" })).pipe(Effect.provide(runner))
      yield* waitForRecord((r) => r.runId === soon.runId && r._tag === "OutputLine")
      yield* waitForRecord((r) => r.runId === long.runId && r._tag === "OutputLine")
      const hurry = yield* Deferred.make<void>()
      const drain = yield* Effect.fork(
        Effect.flatMap(Runner.Runner, (r) => r.drain({ hurry: Deferred.await(hurry) })).pipe(
          Effect.provide(runner)
        )
      )
      // Draining: the queued run is recorded missed (the drain's first step), a new start is
      // refused (and recorded).
      yield* waitForRecord((r) => r.runId === queued.runId && r._tag === "RunMissed" && r.reason === "shutdown")
      const late = yield* start(spec("late", ["echo no"])).pipe(Effect.provide(runner))
      assert.strictEqual(late.outcome, "refused")
      assert.deepStrictEqual((yield* recordsOf(late.runId)).map((r) => r._tag === "RunMissed" ? r.reason : r._tag), [
        "shutdown"
      ])
      // The running ones keep running and keep their output flowing.
      fs.writeFileSync(gate, "")
      yield* waitForRecord((r) => r.runId === soon.runId && r._tag === "RunFinished")
      assert.deepStrictEqual(lines(yield* recordsOf(soon.runId)).map((l) => l.data), ["ready", "done"])
      assert.strictEqual(finalState(yield* recordsOf(soon.runId)), "succeeded")
      assert.isUndefined(finalState(yield* recordsOf(long.runId)))
      // Asked again (a second SIGTERM): the rest are stopped now.
      yield* Deferred.succeed(hurry, undefined)
      yield* Fiber.join(drain)
      const rs = yield* recordsOf(long.runId)
      assert.deepStrictEqual(rs.flatMap((r) => (r._tag === "RunFinished" ? [`${r.state} ${r.reason}`] : [])), [
        "interrupted shutdown"
      ])
      assert.deepStrictEqual(exits(rs).map((e) => e.signal), ["SIGTERM"])
      // The finalizer's drain is the same, already done.
      yield* Scope.close(scope, Exit.void)
      fs.rmSync(dir, { recursive: true, force: true })
    }).pipe(Effect.provide(outboxLayer)))

  it.live("shutdown = wait past the grace interrupts what still runs", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(runnerLayer({ killGraceMs: 200, shutdownGraceMs: 300 }), scope).pipe(
        Effect.provideService(Outbox.Outbox, outbox)
      )
      const long = yield* start(spec("long", ["echo ready; sleep 30"])).pipe(Effect.provide(Layer.succeedContext(ctx)))
      yield* waitForRecord((r) => r.runId === long.runId && r._tag === "OutputLine")
      yield* Scope.close(scope, Exit.void)
      const finished = (yield* recordsOf(long.runId)).flatMap((
        r
      ) => (r._tag === "RunFinished" ? [`${r.state} ${r.reason}`] : []))
      assert.deepStrictEqual(finished, ["interrupted shutdown"])
    }).pipe(Effect.provide(outboxLayer)))

  it.live("the drain waits even in the finalizer of an interrupted fiber (bartoc's SIGTERM path)", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const started = yield* Deferred.make<RunId>()
      const program = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const ctx = yield* Layer.build(runnerLayer({ shutdownGraceMs: 60_000 })).pipe(
          Effect.provideService(Outbox.Outbox, outbox)
        )
        const s = yield* start(spec("x", ["echo ready; sleep 1; echo done"])).pipe(
          Effect.provide(Layer.succeedContext(ctx))
        )
        yield* Deferred.succeed(started, s.runId)
        return yield* Effect.never
      })))
      const runId = yield* Deferred.await(started)
      yield* waitForRecord((r) => r.runId === runId && r._tag === "OutputLine")
      // What SIGTERM does to bartoc's main fiber; the interruption completes once the run ended.
      yield* Fiber.interrupt(program)
      const rs = yield* recordsOf(runId)
      assert.strictEqual(finalState(rs), "succeeded")
      assert.deepStrictEqual(lines(rs).map((l) => l.data), ["ready", "done"])
    }).pipe(Effect.provide(outboxLayer)))

  it.live("a queued manual run gets an intent: a bartoc killed before its turn leaves it to be recorded missed", () =>
    Effect.gen(function*() {
      const outbox = yield* Outbox.Outbox
      const q1 = yield* start(spec("q", ["sleep 30"], { overlap: "queue" }))
      const q2 = yield* start(spec("q", ["echo later"], { overlap: "queue" }))
      assert.strictEqual(q2.outcome, "queued")
      assert.deepStrictEqual((yield* outbox.intents).map((i) => [i.runId, i.trigger, i.scheduledAt]), [
        [q2.runId, "manual", SCHEDULED_AT]
      ])
      // A manual run's intent stands for no occurrence: it never moves the schedule's last run.
      const runner = yield* Runner.Runner
      assert.isTrue(yield* runner.cancel(q1.runId))
      yield* waitForRecord((r) => r.runId === q2.runId && r._tag === "RunFinished")
      assert.deepStrictEqual(yield* outbox.intents, [])
      assert.isTrue(Option.isNone(yield* outbox.lastRun("q")))
    }).pipe(provide()))

  it("environment and shell helpers", () => {
    assert.strictEqual(defaultShell({}), "/bin/sh")
    assert.strictEqual(defaultShell({ SHELL: "" }), "/bin/sh")
    assert.strictEqual(defaultShell({ SHELL: "/bin/bash" }), "/bin/bash")
    assert.strictEqual(rfc3339(Date.UTC(2025, 0, 2, 3, 4, 5)), "2025-01-02T03:04:05Z")
    assert.strictEqual(rfc3339(Date.UTC(2025, 0, 2, 3, 4, 5, 250)), "2025-01-02T03:04:05.250Z")
    const env = jobEnv(
      { PATH: "/bin", BARTO: "x", BARTOS_API_KEY: "k", BARTO_X: "y", barto_lower: "kept", UNSET: undefined },
      { runId: "r", schedule: "s", agent: "a", scheduledAt: 0 }
    )
    assert.deepStrictEqual(env, {
      PATH: "/bin",
      barto_lower: "kept",
      BARTO_RUN_ID: "r",
      BARTO_SCHEDULE: "s",
      BARTO_AGENT: "a",
      BARTO_SCHEDULED_AT: "1970-01-01T00:00:00Z",
      BARTO_HEARTBEAT: "fd:3"
    })
  })
})
