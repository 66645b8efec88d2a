/**
 * The Runner service (D4). See `Runner.ts` for the contract.
 *
 * Bookkeeping (active runs, per-schedule queues) is plain mutable state touched only inside
 * synchronous `Effect.sync`/`suspend` blocks, so each decision (check overlap, mark active) is
 * atomic on Node's single thread without a lock.
 */
import * as Heartbeat from "@barto/domain/Heartbeat"
import * as Ids from "@barto/domain/Ids"
import { DEFAULT_NICE } from "@barto/domain/Messages"
import type { FinalRunState, Micros, RunId } from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as LineSplitter from "../../LineSplitter.js"
import { Outbox, type OutboxError, type OutboxShape, type RecordDraft } from "../../Outbox.js"
import type { Options, Runner, RunnerShape, RunRequest } from "../../Runner.js"
import { inOwnFiber } from "../ownFiber.js"
import * as Child from "./child.js"
import * as Sink from "./sink.js"

/** `[runner] shutdown_grace_secs` default, in ms. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 60_000

const AGENT_RESTART = "agent_restart"

/**
 * Output work holds off from this long before a prepared run's instant (longer than one batch's
 * append takes on a busy machine, so none is still running when the Ticker's timer fires)…
 */
const QUIET_BEFORE_MS = 40
/** …until the run started, or this long after its instant (it was disarmed, or is late anyway). */
const QUIET_AFTER_MS = 20

/** After SIGKILL, how long to wait for the pipes to close before abandoning them. */
const ABANDON_STREAMS_AFTER = Duration.seconds(2)

type StopReason = "cancel" | "timeout" | "shutdown"

/** The final state of a run a stop request cut short. */
const STOPPED: Record<StopReason, FinalRunState> = {
  cancel: "cancelled",
  timeout: "timed_out",
  shutdown: "interrupted"
}

interface RunCtx {
  readonly request: RunRequest
  readonly runId: RunId
  readonly schedule: string
  stop: StopReason | undefined
  /** Completed by the first stop request; the current command's killer waits on it. */
  readonly stopRequested: Deferred.Deferred<void>
  /** One counter per run across stdout and stderr (the observed interleaving). */
  lineSeq: number
  /** RunStarted is in the outbox (or its append was attempted): not to be recorded again. */
  startRecorded: boolean
  /** The first command, already spawned by `start` (armed runs); the run adopts it. */
  first: Prelaunched | undefined
  /** An intent for the run is durable: its RunStarted may follow its first spawn. */
  armed: boolean
}

interface Prelaunched {
  readonly launched: Child.Launched
  readonly cmdUuid: string
  readonly startedAt: Micros
  readonly env: Record<string, string>
}

const toMicros = (epochMs: number): Micros => Math.floor(epochMs * 1000) as Micros

/** RFC 3339, UTC; whole-second occurrences print without a fraction. */
export const rfc3339 = (epochMs: number): string => new Date(epochMs).toISOString().replace(".000Z", "Z")

/** bartoc's environment minus every `BARTO*` variable (secrets never leak into jobs), plus the run's. */
export const jobEnv = (
  base: Record<string, string | undefined>,
  run: { readonly runId: string; readonly schedule: string; readonly agent: string; readonly scheduledAt: number }
): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(base)) {
    if (value !== undefined && !key.startsWith("BARTO")) env[key] = value
  }
  env.BARTO_RUN_ID = run.runId
  env.BARTO_SCHEDULE = run.schedule
  env.BARTO_AGENT = run.agent
  env.BARTO_SCHEDULED_AT = rfc3339(run.scheduledAt)
  env[Heartbeat.ENV_NAME] = Heartbeat.ENV_VALUE
  return env
}

export const defaultShell = (env: Record<string, string | undefined>): string =>
  env.SHELL !== undefined && env.SHELL !== "" ? env.SHELL : "/bin/sh"

const make = (options: Options) =>
  Effect.gen(function*() {
    const outbox: OutboxShape = yield* Outbox
    // Time stamps through the Clock service (TestClock in tests); read synchronously in callbacks.
    const clock = yield* Effect.clock
    const nowMicros = (): Micros => (clock.unsafeCurrentTimeMillis() * 1000) as Micros
    // Created before the shutdown finalizer is added, so it closes (interrupting leftovers) after it.
    const fibers = yield* FiberSet.make<void, never>()
    // Forks into the set and runs the fiber at once, on the caller's stack, up to its first wait:
    // a run's first spawn happens inside `start`, not after a trip through the scheduler.
    const runNow = yield* FiberSet.runtime(fibers)<never>()
    const killGrace = Duration.millis(options.killGraceMs ?? 5000)
    const shutdownMode = options.shutdown ?? "wait"
    const shutdownGrace = Duration.millis(options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS)
    const shell = options.shell !== undefined && options.shell !== "" ? options.shell : defaultShell(process.env)
    // Jobs run `nice` steps below bartoc (issue 17: busy jobs must not delay the next dispatch).
    const niceBin = Child.findNice(process.env.PATH)
    // Its autogroup as well, or the niceness means nothing against bartoc (see child.ts).
    const autogroup = Child.findAutogroup()
    const niceOf = (request: RunRequest) => ({ nice: request.spec.nice ?? DEFAULT_NICE, niceBin, autogroup })

    /** Environments computed ahead by `prepare`, by run id (reading process.env takes ~0.3 ms). */
    let prepared = new Map<RunId, Record<string, string>>()
    /** Epoch ms of the prepared runs' earliest instant (`prepare` is called ~100 ms ahead of it). */
    let preparedAt = Number.POSITIVE_INFINITY
    /**
     * Waited by every run's sink before it splits and appends output: from QUIET_BEFORE_MS before
     * a prepared run's instant until it started (or QUIET_AFTER_MS passed), so the synchronous
     * work jobs' output causes never stands between the Ticker's timer and the spawn.
     */
    const holdForDispatch: Effect.Effect<void> = Effect.gen(function*() {
      while (prepared.size > 0) {
        const now = yield* Clock.currentTimeMillis
        if (now < preparedAt - QUIET_BEFORE_MS || now >= preparedAt + QUIET_AFTER_MS) return
        yield* Effect.sleep(Duration.millis(Math.min(2, preparedAt + QUIET_AFTER_MS - now)))
      }
    })
    const envOf = (request: RunRequest): Record<string, string> =>
      jobEnv(process.env, {
        runId: request.runId,
        schedule: request.spec.name,
        agent: options.agentName,
        scheduledAt: request.scheduledAt
      })
    const takeEnv = (request: RunRequest): Record<string, string> => {
      const env = prepared.get(request.runId)
      if (env === undefined) return envOf(request)
      prepared.delete(request.runId)
      return env
    }

    const active = new Map<RunId, RunCtx>()
    const activeBySchedule = new Map<string, number>()
    const queues = new Map<string, Array<RunCtx>>()
    const busy = yield* SubscriptionRef.make(0)
    let shuttingDown = false

    // What a previous bartoc left unsettled (killed: kill -9, crash, power loss), in one
    // transaction, before anything of this process starts (the Ticker reads last runs after it):
    // - runs it started and never finished: their processes went with it and no RunFinished will
    //   ever come (bartos would show them `running` for ever). `interrupted`, `agent_restart`.
    // - intents whose instant has passed: runs it armed, planned (catch-up) or queued and never
    //   started. `missed`, `agent_restart`: each RunMissed consumes its intent and moves the
    //   schedule's last run past it, so the Ticker neither catches it up nor runs it again. (An
    //   armed run records its start right after its spawn: a bartoc killed within that fraction
    //   of a millisecond leaves a run that did start recorded as missed; README, run states.)
    // - intents still in the future: dropped; the Ticker runs those occurrences when they come.
    if (outbox.orphanedRuns.length > 0 || outbox.leftoverIntents.length > 0) {
      const now = yield* Clock.currentTimeMillis
      const due = outbox.leftoverIntents.filter((i) => i.scheduledAt <= now)
      const future = outbox.leftoverIntents.filter((i) => i.scheduledAt > now)
      yield* outbox.append([
        ...outbox.orphanedRuns.map((r): RecordDraft => ({
          _tag: "RunFinished",
          runId: r.runId as RunId,
          state: "interrupted",
          finishedAt: toMicros(now),
          reason: AGENT_RESTART
        })),
        ...due.map((i): RecordDraft => ({
          _tag: "RunMissed",
          runId: i.runId as RunId,
          schedule: i.schedule,
          scheduledAt: toMicros(i.scheduledAt),
          reason: AGENT_RESTART,
          ...(i.trigger === "schedule" ? {} : { trigger: i.trigger })
        }))
      ], { disarm: future.map((i) => i.runId) }).pipe(
        Effect.zipRight(Effect.all([
          outbox.orphanedRuns.length === 0 ? Effect.void : Effect.logWarning(
            `${outbox.orphanedRuns.length} run(s) a previous bartoc left running recorded as interrupted ` +
              `(agent_restart): ` + outbox.orphanedRuns.map((r) => `${r.runId} (${r.schedule})`).join(", ")
          ),
          due.length === 0 ? Effect.void : Effect.logWarning(
            `${due.length} run(s) a previous bartoc had not started yet recorded as missed (agent_restart): ` +
              due.map((i) => `${i.runId} (${i.schedule} at ${rfc3339(i.scheduledAt)})`).join(", ")
          )
        ], { discard: true })),
        Effect.catchAll((e) => Effect.logError("recording what a previous bartoc left unsettled failed", e))
      )
    }

    const busyCount = () => {
      let n = active.size
      for (const q of queues.values()) n += q.length
      return n
    }
    const publish = Effect.suspend(() => SubscriptionRef.set(busy, busyCount()))

    const makeCtx = (request: RunRequest): RunCtx => ({
      request,
      runId: request.runId,
      schedule: request.spec.name,
      stop: undefined,
      stopRequested: Deferred.unsafeMake<void>(FiberId.none),
      lineSeq: 0,
      startRecorded: false,
      first: undefined,
      armed: request.armed === true
    })

    const markActive = (ctx: RunCtx) => {
      active.set(ctx.runId, ctx)
      activeBySchedule.set(ctx.schedule, (activeBySchedule.get(ctx.schedule) ?? 0) + 1)
    }

    const requestStop = (ctx: RunCtx, reason: StopReason) => {
      if (ctx.stop !== undefined) return
      ctx.stop = reason
      Deferred.unsafeDone(ctx.stopRequested, Effect.void)
    }

    const missed = (ctxs: ReadonlyArray<RunCtx>, reason: string): Effect.Effect<void, OutboxError> =>
      ctxs.length === 0 ? Effect.void : outbox.append(ctxs.map((ctx): RecordDraft => ({
        _tag: "RunMissed",
        runId: ctx.runId,
        schedule: ctx.schedule,
        scheduledAt: toMicros(ctx.request.scheduledAt),
        reason,
        ...(ctx.request.trigger === "schedule" ? {} : { trigger: ctx.request.trigger })
      }))).pipe(Effect.asVoid)

    // --- one command -------------------------------------------------------------------------

    const killSequence = (child: Child.Child) =>
      Effect.gen(function*() {
        yield* child.signalGroup("SIGTERM")
        yield* Effect.sleep(killGrace)
        yield* child.signalGroup("SIGKILL")
        yield* Effect.sleep(ABANDON_STREAMS_AFTER)
        yield* Effect.logWarning(
          `pid ${child.pid}: output pipes still open after SIGKILL (a descendant left the process group); ` +
            `no longer waiting for them`
        )
        yield* child.abandonStreams
      })

    const runStarted = (ctx: RunCtx, startedAt: Micros): RecordDraft => ({
      _tag: "RunStarted",
      runId: ctx.runId,
      schedule: ctx.schedule,
      trigger: ctx.request.trigger,
      scheduledAt: toMicros(ctx.request.scheduledAt),
      startedAt
    })

    const runCommand = (ctx: RunCtx, sink: Sink.Sink, env: Record<string, string>, index: number, command: string) =>
      Effect.scoped(Effect.gen(function*() {
        const first = index === 0 ? ctx.first : undefined
        ctx.first = undefined
        const cmdUuid = first?.cmdUuid ?? Ids.uuidv4()
        // Stamped right before the spawn. An armed run's RunStarted goes with its first command
        // (same instant), queued ahead of any output and written as soon as the spawn is done.
        const startedAt = first?.startedAt ?? nowMicros()
        if (!ctx.startRecorded) {
          ctx.startRecorded = true
          sink.push(runStarted(ctx, startedAt), true)
        }
        sink.push(
          { _tag: "CommandStarted", runId: ctx.runId, cmdUuid, cmdIndex: index, command, startedAt },
          index === 0
        )
        // Run by the sink's writer, in arrival order (lineSeq follows it), stamped when read.
        const records = (stream: Child.StreamName, lines: ReadonlyArray<LineSplitter.Line>, ts: Micros) =>
          lines.map((line): RecordDraft => ({
            _tag: "OutputLine",
            runId: ctx.runId,
            cmdUuid,
            lineSeq: ctx.lineSeq++,
            stream,
            ts,
            data: line.data,
            continuation: line.continuation
          }))
        const emit = (stream: Child.StreamName, lines: ReadonlyArray<LineSplitter.Line>) => {
          const ts = nowMicros()
          sink.later(() => records(stream, lines, ts))
        }
        const splitters = { stdout: LineSplitter.make(), stderr: LineSplitter.make(), beat: LineSplitter.make() }
        // The stream callbacks only queue the chunk: splitting waits for the writer (issue 17).
        // Heartbeats (fd 3) are few and small: parsed at once, so a beat's time is its arrival.
        const onChunk = (stream: Child.ChunkSource, chunk: Uint8Array) => {
          if (stream !== "beat") {
            const ts = nowMicros()
            sink.later(() => records(stream, splitters[stream].push(chunk), ts))
            return
          }
          for (const line of splitters.beat.push(chunk)) {
            // The rest of a line over the splitter's part size is not a new beat.
            if (line.continuation) continue
            sink.push({ _tag: "Heartbeat", runId: ctx.runId, ts: nowMicros(), ...Heartbeat.parse(line.data) })
          }
        }
        const onEnd = (stream: Child.StreamName) => {
          const ts = nowMicros()
          sink.later(() => records(stream, splitters[stream].end(), ts))
        }
        const child = first === undefined
          ? yield* Child.spawn({ shell, command, env, ...niceOf(ctx.request), onChunk, onEnd })
          : yield* Child.adopt(first.launched, onChunk, onEnd)
        let killed = false
        const killer = yield* Deferred.await(ctx.stopRequested).pipe(
          Effect.zipRight(Effect.suspend(() => {
            killed = true
            return killSequence(child)
          })),
          Effect.interruptible,
          Effect.forkScoped
        )
        const result = yield* child.result
        yield* Fiber.interrupt(killer)
        if (result.spawnError !== undefined) emit("stderr", [{ data: result.spawnError, continuation: false }])
        sink.push({
          _tag: "CommandExited",
          runId: ctx.runId,
          cmdUuid,
          exitCode: result.exitCode,
          signal: result.signal,
          finishedAt: nowMicros()
        })
        yield* sink.flush
        return { ok: result.exitCode === 0 && result.signal === null, killed }
      }))

    // --- one run -----------------------------------------------------------------------------

    const execute = (ctx: RunCtx) =>
      Effect.scoped(Effect.gen(function*() {
        const { spec } = ctx.request
        const sink = yield* Sink.make(outbox, holdForDispatch)
        if (spec.timeoutSecs !== undefined) {
          yield* Effect.sleep(Duration.millis(spec.timeoutSecs * 1000)).pipe(
            Effect.zipRight(Effect.sync(() => requestStop(ctx, "timeout"))),
            Effect.interruptible,
            Effect.forkScoped
          )
        }
        const env = ctx.first?.env ?? takeEnv(ctx.request)
        let allOk = true
        // Whether a stop request actually cut the run short (killed a command or skipped some).
        let stopped = false
        for (let i = 0; i < spec.cmds.length; i++) {
          if (ctx.stop !== undefined) {
            stopped = true
            break
          }
          const { killed, ok } = yield* runCommand(ctx, sink, env, i, spec.cmds[i]!)
          if (killed) stopped = true
          if (!ok) {
            allOk = false
            if (spec.onFailure === "stop") break
          }
        }
        if (!ctx.startRecorded) {
          // No command was started (none configured, or stopped before the first).
          ctx.startRecorded = true
          sink.push(runStarted(ctx, nowMicros()), true)
        }
        const cut = stopped ? ctx.stop : undefined
        const state: FinalRunState = cut !== undefined ? STOPPED[cut] : allOk ? "succeeded" : "failed"
        sink.push({
          _tag: "RunFinished",
          runId: ctx.runId,
          state,
          finishedAt: nowMicros(),
          ...(cut === "shutdown" ? { reason: "shutdown" } : {})
        })
        yield* sink.flush
      }))

    /**
     * Starts a run already marked active, the body in the background. Something durable always
     * comes before the spawn: the run's intent (armed: RunStarted follows the first spawn), or
     * else RunStarted itself, appended here first.
     */
    const begin = (ctx: RunCtx): Effect.Effect<void, OutboxError> => {
      // interruptible: a queued run is begun from the previous run's `ensuring`, an
      // uninterruptible region whose flags a forked fiber would otherwise inherit.
      const body = Effect.sync(() =>
        runNow(Effect.interruptible(execute(ctx).pipe(Effect.ensuring(Effect.zipRight(dropFirst(ctx), finish(ctx))))))
      )
      if (ctx.armed) return Effect.asVoid(body)
      ctx.startRecorded = true
      return outbox.append([runStarted(ctx, nowMicros())]).pipe(
        Effect.tapError(() => finish(ctx)),
        Effect.zipRight(body),
        Effect.asVoid
      )
    }

    /** A first command the run never adopted (it ended before its loop) must not outlive it. */
    const dropFirst = (ctx: RunCtx): Effect.Effect<void> =>
      Effect.suspend(() => {
        const first = ctx.first
        ctx.first = undefined
        return first === undefined ? Effect.void : Child.release(first.launched)
      })

    /**
     * An armed run's first command, spawned at once, before anything else of the run exists:
     * nothing is written first (its intent is durable) and no fiber stands in between.
     */
    const prelaunch = (ctx: RunCtx): Prelaunched | undefined => {
      const command = ctx.request.spec.cmds[0]
      if (command === undefined) return undefined
      const env = takeEnv(ctx.request)
      const cmdUuid = Ids.uuidv4()
      const startedAt = nowMicros()
      return { launched: Child.launch({ shell, command, env, ...niceOf(ctx.request) }), cmdUuid, startedAt, env }
    }

    /** Unmarks a run and starts the next queued run of its schedule, if any. Idempotent. */
    const finish = (ctx: RunCtx): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (active.get(ctx.runId) !== ctx) return Effect.void
        active.delete(ctx.runId)
        const left = (activeBySchedule.get(ctx.schedule) ?? 1) - 1
        if (left > 0) activeBySchedule.set(ctx.schedule, left)
        else activeBySchedule.delete(ctx.schedule)
        let next: RunCtx | undefined
        const queue = queues.get(ctx.schedule)
        if (left === 0 && queue !== undefined && !shuttingDown) {
          next = queue.shift()
          if (queue.length === 0) queues.delete(ctx.schedule)
          if (next !== undefined) markActive(next)
        }
        return publish.pipe(
          Effect.zipRight(
            next === undefined ? Effect.void : begin(next).pipe(
              Effect.catchAll((e) => Effect.logError(`queued run ${next.runId} of ${next.schedule} could not start`, e))
            )
          )
        )
      })

    // --- the service ---------------------------------------------------------------------------

    type Outcome = "started" | "queued" | "skipped" | "refused"

    /** Starts a run at once; an armed one (`prelaunch`) spawns its first command right here. */
    const launch = (ctx: RunCtx, prelaunched: boolean): Effect.Effect<Outcome, OutboxError> => {
      markActive(ctx)
      if (prelaunched) ctx.first = prelaunch(ctx)
      // Published after the start (the count is read when published, so it is right whatever
      // ran in between): nothing but the run itself comes before its spawn.
      return begin(ctx).pipe(Effect.zipRight(publish), Effect.as("started" as const))
    }

    const isBusy = (schedule: string) => {
      const queue = queues.get(schedule)
      return (activeBySchedule.get(schedule) ?? 0) > 0 || (queue !== undefined && queue.length > 0)
    }

    /**
     * Queues a run behind its schedule's running one. One without an intent gets one first (see
     * `armQueued`); the schedule may have become free during that write, then it starts now.
     */
    const enqueue = (ctx: RunCtx): Effect.Effect<Outcome, OutboxError> =>
      (ctx.armed ? Effect.void : armQueued(ctx)).pipe(Effect.zipRight(Effect.suspend(() => {
        if (shuttingDown) return missed([ctx], "shutdown").pipe(Effect.as("refused" as const))
        if (!isBusy(ctx.schedule)) return launch(ctx, false)
        const queue = queues.get(ctx.schedule)
        if (queue === undefined) queues.set(ctx.schedule, [ctx])
        else queue.push(ctx)
        return publish.pipe(Effect.as("queued" as const))
      })))

    const start = (request: RunRequest): Effect.Effect<Outcome, OutboxError> =>
      Effect.suspend(() => {
        const ctx = makeCtx(request)
        if (shuttingDown) return missed([ctx], "shutdown").pipe(Effect.as("refused" as const))
        const alreadyKnown = active.has(request.runId) ||
          [...queues.values()].some((q) => q.some((c) => c.runId === request.runId))
        if (alreadyKnown) {
          return Effect.logWarning(`run ${request.runId} is already running or queued here; not starting it twice`)
            .pipe(Effect.as("skipped" as const))
        }
        switch (request.spec.overlap) {
          case "forbid":
            if ((activeBySchedule.get(ctx.schedule) ?? 0) > 0) {
              return missed([ctx], "overlap").pipe(Effect.as("skipped" as const))
            }
            break
          case "queue":
            if (isBusy(ctx.schedule)) return enqueue(ctx)
            break
          case "allow":
            break
        }
        return launch(ctx, request.armed === true)
      })

    const cancel = (runId: RunId): Effect.Effect<boolean> =>
      Effect.suspend(() => {
        const ctx = active.get(runId)
        if (ctx !== undefined) {
          requestStop(ctx, "cancel")
          return Effect.succeed(true)
        }
        for (const [schedule, queue] of queues) {
          const i = queue.findIndex((c) => c.runId === runId)
          if (i === -1) continue
          const [removed] = queue.splice(i, 1)
          if (queue.length === 0) queues.delete(schedule)
          // It never started: recorded as missed, so bartos still learns what became of it.
          return publish.pipe(
            Effect.zipRight(missed([removed!], "cancelled")),
            Effect.catchAll((e) => Effect.logError(`recording the cancelled queued run ${runId} failed`, e)),
            Effect.as(true)
          )
        }
        return Effect.succeed(false)
      })

    /**
     * A queued run lives in memory until its turn: its intent is what a successor finds if this
     * process dies before then (recorded missed, never silently gone). Written before the run is
     * queued, so that it can never land after the run's RunStarted (which would leave a stale
     * intent). Without the write the run still queues; only that trace is lost.
     */
    const armQueued = (ctx: RunCtx): Effect.Effect<void> =>
      outbox.arm([{
        runId: ctx.runId,
        schedule: ctx.schedule,
        scheduledAt: ctx.request.scheduledAt,
        trigger: ctx.request.trigger
      }]).pipe(
        Effect.tap(() => Effect.sync(() => ctx.armed = true)),
        Effect.catchAll((e) => Effect.logError(`recording queued run ${ctx.runId} of ${ctx.schedule} failed`, e))
      )

    const prepare = (requests: ReadonlyArray<RunRequest>) =>
      Effect.sync(() => {
        prepared = new Map(requests.map((r) => [r.runId, envOf(r)]))
        preparedAt = Math.min(...requests.map((r) => r.scheduledAt))
      })

    const running = Effect.sync(() => [...active.values()].map((c) => ({ runId: c.runId, schedule: c.schedule })))

    const awaitIdle: Effect.Effect<void> = busy.changes.pipe(
      Stream.takeUntil((n) => n === 0),
      Stream.runDrain
    )

    const stopTimeout = Duration.sum(Duration.sum(killGrace, ABANDON_STREAMS_AFTER), Duration.seconds(3))

    const drainOnce = (hurry: Effect.Effect<void>) =>
      Effect.gen(function*() {
        shuttingDown = true
        const dropped = [...queues.values()].flat()
        queues.clear()
        yield* publish
        yield* missed(dropped, "shutdown").pipe(
          Effect.catchAll((e) => Effect.logError("recording queued runs dropped at shutdown failed", e))
        )
        if (shutdownMode === "wait" && active.size > 0) {
          yield* Effect.logInfo(
            `shutting down: waiting up to ${
              Duration.format(shutdownGrace)
            } for ${active.size} running run(s) to finish ` +
              `(${runningList()})`
          )
          const ended = yield* inOwnFiber(Effect.raceFirst(
            awaitIdle.pipe(Effect.as(true)),
            Effect.raceFirst(Effect.sleep(shutdownGrace), hurry).pipe(Effect.as(false))
          ))
          if (!ended) {
            yield* Effect.logWarning(`shutting down: stopping ${active.size} run(s) still running (${runningList()})`)
          }
        }
        for (const ctx of active.values()) requestStop(ctx, "shutdown")
        yield* inOwnFiber(awaitIdle.pipe(Effect.timeout(stopTimeout))).pipe(
          Effect.catchAll(() =>
            Effect.logError("runs still active after the shutdown kill sequence; interrupting them")
          )
        )
      })

    const runningList = () => [...active.values()].map((c) => `${c.runId} (${c.schedule})`).join(", ")

    let drainStarted = false
    const drained = yield* Deferred.make<void>()
    const drain = (options: { readonly hurry?: Effect.Effect<void> } = {}): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (drainStarted) return Deferred.await(drained)
        drainStarted = true
        return drainOnce(options.hurry ?? Effect.never).pipe(Effect.ensuring(Deferred.succeed(drained, undefined)))
      })

    // Shutdown when the layer goes (a program that did not `drain` first, tests): the same drain.
    // Running runs write their CommandExited / RunFinished before the outbox is gone.
    yield* Effect.addFinalizer(() => drain())

    return { start, prepare, cancel, running, awaitIdle, drain } satisfies RunnerShape
  })

export const layer = (tag: Context.Tag<Runner, RunnerShape>, options: Options): Layer.Layer<Runner, never, Outbox> =>
  Layer.scoped(tag, make(options))
