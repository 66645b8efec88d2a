/**
 * The agent's tick loop (D3): runs the schedules of the cached table at their wall-clock instants.
 *
 * - One timer for the earliest due instant across schedules, computed with `Calendar.next()`;
 *   never a 1-second poll.
 * - Schedules are keyed by **name** (two schedules with the same expression both run; the
 *   reference collapsed them).
 * - The occurrence that fires is the instant the timer was armed for. Node timers fire up to
 *   ~0.3 ms early, when the clock still reads the previous second; then we wait the remainder
 *   instead of re-deriving the occurrence from the clock. They also fire 1-4 ms late on an idle
 *   loop (perf-baselines §5), so the timer is set `preciseMs` before the instant and the rest is
 *   waited in the kernel (`blockUntil`): the thread sleeps and is woken on time. (Polling the
 *   clock on every turn of the loop instead makes the process a CPU hog that the scheduler
 *   preempts for a whole 4 ms tick whenever another process wants the core: measured.)
 * - Timers are at most `maxSleepMs` long: on Linux they run on the monotonic clock, which stops
 *   during suspend and ignores wall-clock steps, so the loop re-reads the wall clock regularly and
 *   `MissedTicks.plan` handles whatever fell into a gap (stall, suspend, forward step).
 * - Write-ahead (D3/D5 without a write at the due instant): `armLeadMs` before the instant, the
 *   runs due then are recorded as intents (schedule, occurrence, pre-minted run id) in one
 *   transaction; at the instant the Runner spawns at once and records RunStarted right after,
 *   which consumes the intent and stores the schedule's last run. A process that dies in between
 *   leaves the intent, and its successor records that run as missed (`agent_restart`; never
 *   re-run, never silently dropped). A late wake-up (stall, suspend, clock step) takes the
 *   general path: `MissedTicks.plan`, whose whole outcome (the missed records, an intent for
 *   every run it will start, the schedule's new last run) is ONE outbox transaction before any
 *   start, so a crash at any point leaves every occurrence accounted for: run, missed, or an
 *   intent the successor records. Either way a crash never re-runs an occurrence, and a clock
 *   stepped backwards never re-runs one either.
 * - A paused schedule runs nothing; when the pause ends (resumed, changed or removed) its
 *   occurrences meanwhile are recorded as one missed range, reason `paused`, with its new last
 *   run in the same transaction.
 * - The quiet moment before arming is when the outbox checkpoints its WAL (two fsyncs), so no
 *   checkpoint lands on a start.
 * - The loop starts from the durably cached table, so an agent restarted while bartos is down
 *   still runs its jobs, and it follows every table update at once (the sleep is interrupted).
 *
 * Shape: a stream of wakes (`upcoming`: the calendars' next occurrence under the newest table)
 * and a `tick` at each (checkpoint, arm, prepare, `sleepUntil`, `fireDue`), whose late
 * occurrences the missed-tick policy settles (`fireLate`). `sleepUntil` is timer slices repeated
 * until the instant, with `blockUntil` as the one imperative leaf for the last milliseconds.
 */
import * as Ids from "@barto/domain/Ids"
import type { Micros, MissedTick, RunId, ScheduleSpec } from "@barto/domain/Messages"
import * as Calendar from "@barto/scheduler/Calendar"
import * as MissedTicks from "@barto/scheduler/MissedTicks"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { CurrentTable, type Table } from "./CurrentTable.js"
import { type Intent, Outbox, type OutboxShape, type RecordDraft } from "./Outbox.js"
import { Runner, type RunnerShape, type RunRequest } from "./Runner.js"

// The table lives in its own module so the link does not import the tick loop; re-exported for
// the loop's readers.
export { CurrentTable, layer as layerCurrentTable, type Table } from "./CurrentTable.js"

export interface Options {
  /** Seeds `R` fields if a calendar still has any (bartos normally resolves them). */
  readonly agentName: string
  readonly missedTick: MissedTick
  readonly catchUpLimit: number
  /** Longest single timer before the wall clock is read again (default 30 s). */
  readonly maxSleepMs?: number
  /** How long before a due instant its runs are armed (intents written; default 100 ms). */
  readonly armLeadMs?: number
  /**
   * The last stretch before a due instant, waited by blocking the thread (default 8 ms; 0 = the
   * timer only). Nothing else runs meanwhile (the timer's own lateness is not blocked: typically
   * 1-2 of those ms), so it stays a few ms.
   */
  readonly preciseMs?: number
}

const DEFAULT_MAX_SLEEP_MS = 30_000
const DEFAULT_ARM_LEAD_MS = 100
/** Above the timer's lateness under load on the reference VM (over 4 ms at times; §5 says ≤ 3.5 idle). */
const DEFAULT_PRECISE_MS = 8
/** Bound on the final busy wait for the clock's next millisecond. */
const MAX_BUSY_MS = 3

/** An occurrence armed for a schedule: its intent is durable; the run has not been handed to the Runner. */
interface Armed {
  readonly intent: Intent
  /** The schedule's occurrence after this one: the run is on time only while it is not due yet. */
  readonly following: number | undefined
}

const waitCell = new Int32Array(new SharedArrayBuffer(4))
/** Woken this long before the instant: covers the futex wake-up; the rest is busy waiting. */
const WAKE_MARGIN_MS = 0.2

/**
 * Blocks the thread until the clock reads `at`: at most `maxMs` asleep in the kernel (a futex
 * wait with a sub-millisecond timeout: `Atomics.wait` on a cell nobody notifies), then a short
 * busy wait (at most MAX_BUSY_MS) for the clock's edge. The clock has whole milliseconds, so the
 * sleep is timed from one of its edges (found by watching it tick, before the sleep) with the
 * monotonic clock, to end just before `at`: the busy part stays ~0.2 ms, which matters on a
 * shared CPU, where a task that keeps running past its slice is preempted for a scheduler tick.
 * Returns whether the clock reached `at` (under TestClock it never does: time moves only with
 * sleeps).
 */
export const blockUntil = (clock: Clock.Clock, at: number, maxMs: number): boolean => {
  const start = clock.unsafeCurrentTimeMillis()
  if (at - start > 1) {
    const edgeBy = performance.now() + MAX_BUSY_MS
    let now = start
    while (now === start && performance.now() < edgeBy) now = clock.unsafeCurrentTimeMillis()
    if (now !== start) {
      const sleep = at - now - WAKE_MARGIN_MS
      if (sleep > 0) Atomics.wait(waitCell, 0, 0, Math.min(sleep, maxMs))
    }
  }
  const giveUp = performance.now() + MAX_BUSY_MS
  while (clock.unsafeCurrentTimeMillis() < at) {
    if (performance.now() >= giveUp) return false
  }
  return true
}

interface Entry {
  readonly spec: ScheduleSpec
  readonly cal: Calendar.Calendar
  /**
   * Epoch ms: every occurrence at or before this one has been handled (run or recorded missed).
   * A paused schedule's stays where the pause began until the pause ends.
   */
  since: number
}

const missedReason = (policy: MissedTick): string =>
  // Burst runs what it can and misses only beyond the limit; Delay and Skip miss by policy.
  policy === "Burst" ? "catch_up_limit" : `missed_tick:${policy}`

const micros = (epochMs: number): Micros => Math.floor(epochMs * 1000) as Micros

/** One record for a range of missed occurrences (a single one when it holds one). */
const missedRange = (schedule: string, range: MissedTicks.MissedRange, reason: string): RecordDraft => ({
  _tag: "RunMissed",
  runId: Ids.newRunId(range.from),
  schedule,
  scheduledAt: micros(range.from),
  reason,
  ...(range.count > 1 ? { until: micros(range.to), count: range.count } : {})
})

/** Stops the tick loop (shutdown: no occurrence starts after this). */
export class Ticker extends Context.Tag("@barto/agent/Ticker")<Ticker, { readonly stop: Effect.Effect<void> }>() {}

/** The loop's services, settings and state, shared by its steps. */
interface Loop {
  readonly options: Options
  readonly maxSleepMs: number
  readonly armLeadMs: number
  readonly preciseMs: number
  /** The calendars wake the loop; a late wake-up is this policy's to settle (`fireLate`). */
  readonly policy: MissedTicks.MissedTickPolicy
  readonly outbox: OutboxShape
  readonly runner: RunnerShape
  /** The newest table seen; none until the first arrives. */
  readonly latest: Ref.Ref<Option.Option<Option.Option<Table>>>
  /** Poked on every table change (a sliding queue of one is a flag). */
  readonly poke: Queue.Queue<void>
  entries: Map<string, Entry>
  /** The table `entries` were built from; undefined before the first. */
  applied: Option.Option<Table> | undefined
  /** Intents written and not yet handed to the Runner; dropped again if they will not run. */
  armed: Map<Entry, Armed>
}

/** The next instant anything is due, and when each active schedule is next due (at or after it). */
interface Wake {
  readonly at: number
  readonly due: ReadonlyMap<Entry, number>
}

/** The earliest next occurrence over the active schedules; undefined when none will ever fire. */
const nextWake = (entries: ReadonlyMap<string, Entry>): Wake | undefined => {
  let at = Number.POSITIVE_INFINITY
  const due = new Map<Entry, number>()
  for (const entry of entries.values()) {
    if (entry.spec.paused) continue
    const next = Calendar.next(entry.cal, entry.since)
    if (next === undefined) continue
    due.set(entry, next)
    if (next < at) at = next
  }
  return at === Number.POSITIVE_INFINITY ? undefined : { at, due }
}

const disarmAll = (l: Loop) =>
  Effect.suspend(() => {
    const ids = [...l.armed.values()].map((a) => a.intent.runId)
    l.armed = new Map()
    return l.outbox.disarm(ids).pipe(
      Effect.catchAll((e) =>
        Effect.logError(`ticker: cannot remove the intents of runs that will not start: ${e.message}`)
      )
    )
  })

const persistedLastRun = (l: Loop, name: string) =>
  l.outbox.lastRun(name).pipe(
    Effect.catchAll((e) =>
      Effect.logError(`ticker: cannot read the last run of '${name}': ${e.message}`).pipe(Effect.as(Option.none()))
    )
  )

/**
 * A paused schedule's occurrences since its pause began, up to now, become one missed range
 * (reason `paused`) together with its new last run: the pause ended (resumed, changed, removed).
 */
const endPause = (l: Loop, entry: Entry, now: number) =>
  Effect.gen(function*() {
    const name = entry.spec.name
    const range = MissedTicks.span(entry.cal, entry.since, now)
    entry.since = Math.max(entry.since, now)
    yield* l.outbox.append(range === undefined ? [] : [missedRange(name, range, "paused")], {
      lastRun: { schedule: name, at: entry.since }
    }).pipe(
      Effect.zipRight(
        range === undefined ? Effect.void : Effect.logInfo(
          `ticker: schedule '${name}': ${range.count} occurrence(s) while paused recorded as missed (paused)`
        )
      ),
      Effect.catchAll((e) => Effect.logError(`ticker: cannot record the paused occurrences of '${name}': ${e.message}`))
    )
  })

/**
 * Builds the set of schedules from a table. A schedule whose calendar is unchanged keeps its
 * place (paused or not); a new or changed one starts at max(last run, now), so editing a
 * schedule never "catches up" occurrences that were not its own, and a resumed one records
 * its paused occurrences first (`endPause`). Only the table the ticker starts with catches up
 * from the durable last run (the agent was down in between).
 */
const rebuild = (l: Loop, table: Option.Option<Table>, initial: boolean) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const next = new Map<string, Entry>()
    const schedules = Option.match(table, { onNone: () => [], onSome: (t) => t.schedules })
    for (const spec of schedules) {
      if (next.has(spec.name)) {
        yield* Effect.logWarning(`ticker: duplicate schedule name '${spec.name}' in the table; keeping the first`)
        continue
      }
      const parsed = Calendar.parse(spec.calendar, { agent: l.options.agentName, schedule: spec.name })
      if (Either.isLeft(parsed)) {
        yield* Effect.logWarning(
          `ticker: schedule '${spec.name}': cannot parse calendar '${spec.calendar}': ${parsed.left.reason}; skipped`
        )
        continue
      }
      const previous = l.entries.get(spec.name)
      if (
        previous !== undefined && previous.spec.paused && !(spec.paused && previous.spec.calendar === spec.calendar)
      ) {
        yield* endPause(l, previous, now)
      }
      if (previous !== undefined && previous.spec.calendar === spec.calendar) {
        next.set(spec.name, { spec, cal: parsed.right, since: previous.since })
        continue
      }
      const persisted = yield* persistedLastRun(l, spec.name)
      const since = initial && Option.isSome(persisted)
        ? persisted.value
        : Math.max(Option.getOrElse(persisted, () => now), now)
      next.set(spec.name, { spec, cal: parsed.right, since })
    }
    for (const [name, previous] of l.entries) {
      if (previous.spec.paused && !next.has(name)) yield* endPause(l, previous, now)
    }
    l.entries = next
    l.applied = table
    yield* Effect.logDebug(
      `ticker: following ${[...next.values()].filter((e) => !e.spec.paused).length} active schedule(s)`
    )
  })

/** The Runner's request for a run whose intent is durable. */
const armedRequest = (spec: ScheduleSpec, intent: Intent): RunRequest => ({
  runId: intent.runId as RunId,
  spec,
  trigger: intent.trigger,
  scheduledAt: intent.scheduledAt,
  armed: true
})

/** Hands an armed run to the Runner; a failure is logged (the loop goes on). */
const start = (l: Loop, spec: ScheduleSpec, intent: Intent) =>
  l.runner.start(armedRequest(spec, intent)).pipe(
    Effect.catchAll((e) =>
      Effect.logError(`ticker: cannot start '${spec.name}': ${e.message}`).pipe(Effect.as("failed" as const))
    ),
    Effect.flatMap((outcome) =>
      Effect.logDebug(
        `ticker: '${spec.name}' occurrence ${
          new Date(intent.scheduledAt).toISOString()
        } (${intent.trigger}): ${outcome}`
      )
    )
  )

// ---------------------------------------------------------------------------------------------
// The steps of one wake: checkpoint, arm, prepare, wait for the instant, fire (or fireLate)
// ---------------------------------------------------------------------------------------------

/** A quiet moment: nothing is due for armLeadMs. The outbox checkpoints here, never at a start. */
const checkpoint = (l: Loop) =>
  l.outbox.checkpoint.pipe(Effect.catchAll((e) => Effect.logWarning(`ticker: outbox checkpoint failed: ${e.message}`)))

/**
 * Records the runs due at the wake's instant as intents, in one write. Unarmed (the write
 * failed), a run takes the general path at the instant: its last run stored before its start.
 */
const arm = (l: Loop, wake: Wake): Effect.Effect<ReadonlyArray<readonly [Entry, Armed]>> =>
  Effect.suspend(() => {
    const toArm: Array<readonly [Entry, Armed]> = []
    for (const [entry, at] of wake.due) {
      if (at !== wake.at) continue
      toArm.push([entry, {
        intent: { runId: Ids.newRunId(at), schedule: entry.spec.name, scheduledAt: at, trigger: "schedule" },
        following: Calendar.next(entry.cal, at)
      }])
    }
    return l.outbox.arm(toArm.map(([, a]) => a.intent)).pipe(
      Effect.matchEffect({
        onFailure: (e) =>
          Effect.logError(`ticker: cannot record the runs due at ${new Date(wake.at).toISOString()}: ${e.message}`),
        onSuccess: () => Effect.sync(() => toArm.forEach(([entry, a]) => l.armed.set(entry, a)))
      }),
      Effect.as(toArm)
    )
  })

/** What the starts need is computed now, not at the instant. */
const prepare = (l: Loop, toArm: ReadonlyArray<readonly [Entry, Armed]>) =>
  l.runner.prepare(toArm.map(([entry, a]) => armedRequest(entry.spec, a.intent)))

/** What a timer slice ended with. */
type Woke = "reached" | "slept" | "table"

/**
 * One timer slice toward `until`, raced with a table change: "reached" when the wall clock
 * already reads `until`. The slice (at most maxSleepMs: the wall clock is re-read after each, so
 * an early timer waits the remainder and a clock step or suspend is noticed) is computed inside
 * the raced fiber, right before it arms the timer: that fiber starts only after the fibers
 * already scheduled (a run just started: spawn, sink, …), and a slice computed before the fork
 * made every next tick late by that delay (measured 10-60 ms).
 */
const slice = (l: Loop, until: number): Effect.Effect<Woke> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    now >= until
      ? Effect.succeed("reached" as const)
      : Effect.raceFirst(
        Effect.flatMap(
          Clock.currentTimeMillis,
          (armedAt) => Effect.sleep(Math.max(0, Math.min(until - armedAt, l.maxSleepMs)))
        ).pipe(Effect.as("slept" as const)),
        Queue.take(l.poke).pipe(Effect.as("table" as const))
      ))

/** Timer slices until the wall clock reads `until` (false) or the table changes (true). */
const sleepTo = (l: Loop, until: number): Effect.Effect<boolean> =>
  slice(l, until).pipe(
    Effect.repeat({ until: (woke) => woke !== "slept" }),
    Effect.map((woke) => woke === "table")
  )

/**
 * The last-millisecond leaf: blocks the thread up to the instant (`blockUntil`), once. Whether
 * the clock reached it; under TestClock it never does, and the timer slices that follow are what
 * moves TestClock.
 */
const block = (l: Loop, at: number): Effect.Effect<boolean> =>
  Effect.clockWith((clock) => Effect.sync(() => blockUntil(clock, at, l.preciseMs)))

/**
 * Sleeps until the wall clock reads `at` (false) or the table changes (true). With `precise`,
 * the timer stops `preciseMs` short and the rest is blocked (`block`); a table change in those
 * few ms is seen after the instant.
 */
const sleepUntil = (l: Loop, at: number, precise: boolean): Effect.Effect<boolean> => {
  const timerUntil = precise && l.preciseMs > 0 ? at - l.preciseMs : at
  if (timerUntil === at) return sleepTo(l, at)
  return Effect.flatMap(
    sleepTo(l, timerUntil),
    (table) =>
      table
        ? Effect.succeed(true)
        : Effect.flatMap(block(l, at), (reached) => reached ? Effect.succeed(false) : sleepTo(l, at))
  )
}

/**
 * Handles every occurrence of one schedule in (since, now]. The common case, its armed
 * occurrence and nothing else on time, goes straight to the Runner: exactly what
 * `MissedTicks.plan` would decide then (one on-time run, no gap), without a write first.
 * Uninterruptible (the starts return at once): a shutdown stops the ticker between
 * occurrences, never between an intent and its start, which would leave the run to the next
 * bartoc as one it "never started".
 */
const fire = (l: Loop, entry: Entry, now: number) =>
  Effect.uninterruptible(Effect.suspend(() => {
    const ready = l.armed.get(entry)
    l.armed.delete(entry)
    if (
      ready !== undefined && ready.intent.scheduledAt <= now &&
      now - ready.intent.scheduledAt <= MissedTicks.DEFAULT_GRACE_MS &&
      (ready.following === undefined || ready.following > now)
    ) {
      entry.since = Math.max(entry.since, now)
      return start(l, entry.spec, ready.intent)
    }
    return fireLate(l, entry, now, ready?.intent)
  }))

/**
 * The general path (a late wake-up): the policy decides, and all it decides is durable in one
 * transaction before any start: the missed records, an intent for each run to start, the new
 * last run. A crash after it leaves intents that the next bartoc records as missed.
 */
const fireLate = (l: Loop, entry: Entry, now: number, intent: Intent | undefined) =>
  Effect.gen(function*() {
    const name = entry.spec.name
    const plan = l.policy.plan(entry.cal, { catchUpLimit: l.options.catchUpLimit, lastRun: entry.since, now })
    // Everything up to the watermark is decided now. In memory first: even if the disk fails
    // below, these occurrences must not come round again.
    const handled = Math.max(entry.since, plan.watermark)
    entry.since = handled

    // The armed occurrence keeps its run id whatever the plan makes of it, so that its
    // RunStarted or RunMissed consumes the intent; one the plan drops (or counts in a range)
    // is disarmed in the same transaction.
    const runIdOf = (at: number): RunId =>
      intent !== undefined && intent.scheduledAt === at ? intent.runId as RunId : Ids.newRunId(at)
    const reason = missedReason(l.options.missedTick)
    const missed: Array<RecordDraft> = plan.missed.map((at) => ({
      _tag: "RunMissed",
      runId: runIdOf(at),
      schedule: name,
      scheduledAt: micros(at),
      reason
    }))
    if (plan.missedRange !== undefined) missed.push(missedRange(name, plan.missedRange, reason))
    const runs: Array<Intent> = plan.run.map((r) => ({
      runId: runIdOf(r.at),
      schedule: name,
      scheduledAt: r.at,
      trigger: r.trigger
    }))
    const settled = intent !== undefined &&
      (runs.some((r) => r.runId === intent.runId) || plan.missed.includes(intent.scheduledAt))
    const saved = yield* l.outbox.append(missed, {
      arm: runs,
      disarm: intent !== undefined && !settled ? [intent.runId] : [],
      lastRun: { schedule: name, at: handled }
    }).pipe(
      Effect.as(true),
      Effect.catchAll((e) =>
        Effect.logError(`ticker: cannot record the plan of '${name}'; starting nothing: ${e.message}`).pipe(
          Effect.as(false)
        )
      )
    )
    if (plan.missedTotal > 0) {
      yield* Effect.logWarning(
        `ticker: schedule '${name}': ${plan.missedTotal} occurrence(s) missed (${reason})` +
          (plan.missedRange === undefined ? "" : ", recorded as one range")
      )
    }
    if (!saved) return
    for (const r of runs) yield* start(l, entry.spec, r)
  })

/** At the instant: every schedule due by now fires, on time or late. */
const fireDue = (l: Loop, wake: Wake) =>
  Effect.gen(function*() {
    // The armed instant is the occurrence; the clock may read later (a stall), never earlier.
    const now = Math.max(yield* Clock.currentTimeMillis, wake.at)
    for (const [entry, at] of wake.due) {
      if (at <= now) yield* fire(l, entry, now)
    }
    // Defensive: every armed entry was due at `wake.at`, so `fire` took each of them.
    if (l.armed.size > 0) yield* disarmAll(l)
  })

/**
 * One wake: the quiet moment armLeadMs before the instant (checkpoint, arm, prepare), then the
 * instant itself (fire). A table change on the way ends it early; arms already written are
 * dropped, and the next wake is computed from the new table.
 */
const tick = (l: Loop, wake: Wake) =>
  Effect.gen(function*() {
    if (yield* sleepUntil(l, wake.at - l.armLeadMs, false)) return
    yield* checkpoint(l)
    const toArm = yield* arm(l, wake)
    yield* prepare(l, toArm)
    if (yield* sleepUntil(l, wake.at, true)) return yield* disarmAll(l)
    yield* fireDue(l, wake)
  })

/**
 * The next wake under the newest table, or none after waiting for a table change: there is no
 * table yet, or nothing in it will ever fire (all paused, or only past dates).
 */
const upcoming = (l: Loop): Effect.Effect<Option.Option<Wake>> =>
  Effect.gen(function*() {
    const seen = yield* Ref.get(l.latest)
    if (Option.isSome(seen)) {
      if (seen.value !== l.applied) yield* rebuild(l, seen.value, l.applied === undefined)
      const wake = nextWake(l.entries)
      if (wake !== undefined) return Option.some(wake)
    }
    yield* Queue.take(l.poke)
    return Option.none()
  })

/**
 * The loop; never ends (interrupt it). The wakes are a stream: the calendars' next occurrence
 * (`Calendar.next` from each schedule's last handled one) under the newest table; each wake is a
 * `tick`, and one that comes late is settled by the missed-tick policy (`fireLate`). Outbox
 * failures are logged and the loop goes on: a broken disk must not stop the jobs that still can
 * run.
 */
export const run = (options: Options): Effect.Effect<never, never, Outbox | Runner | CurrentTable> =>
  Effect.gen(function*() {
    const l: Loop = {
      options,
      maxSleepMs: Math.max(1, options.maxSleepMs ?? DEFAULT_MAX_SLEEP_MS),
      armLeadMs: Math.max(0, options.armLeadMs ?? DEFAULT_ARM_LEAD_MS),
      preciseMs: Math.max(0, options.preciseMs ?? DEFAULT_PRECISE_MS),
      policy: MissedTicks.policyOf(options.missedTick),
      outbox: yield* Outbox,
      runner: yield* Runner,
      latest: yield* Ref.make<Option.Option<Option.Option<Table>>>(Option.none()),
      poke: yield* Queue.sliding<void>(1),
      entries: new Map(),
      applied: undefined,
      armed: new Map()
    }
    // Table updates: remember the newest and poke the loop.
    yield* (yield* CurrentTable).changes.pipe(
      Stream.runForEach((table) =>
        Ref.set(l.latest, Option.some(table)).pipe(Effect.zipRight(Queue.offer(l.poke, void 0)))
      ),
      Effect.fork
    )
    const wakes = Stream.repeatEffect(upcoming(l)).pipe(Stream.filterMap(identity))
    return yield* wakes.pipe(
      Stream.runForEach((wake) => tick(l, wake)),
      Effect.zipRight(Effect.dieMessage("ticker: the stream of wakes ended")),
      // Interrupted (shutdown): intents of runs not handed to the Runner yet will not run.
      Effect.onInterrupt(() => disarmAll(l))
    )
  })

/**
 * Runs the loop for the lifetime of the layer, or until `Ticker.stop`, starting once `gate`
 * completes (bartoc: once the first connection attempt is decided, see `Connection.decided`).
 */
export const layerAfter = <R>(
  gate: Effect.Effect<void, never, R>,
  options: Options
): Layer.Layer<Ticker, never, Outbox | Runner | CurrentTable | R> =>
  Layer.scoped(
    Ticker,
    Effect.map(
      Effect.forkScoped(Effect.zipRight(gate, run(options))),
      (fiber) => ({ stop: Effect.asVoid(Fiber.interrupt(fiber)) })
    )
  )

/** Runs the loop for the lifetime of the layer, or until `Ticker.stop`. */
export const layer = (options: Options): Layer.Layer<Ticker, never, Outbox | Runner | CurrentTable> =>
  layerAfter(Effect.void, options)
