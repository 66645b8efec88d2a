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
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import { CurrentTable, type Table } from "./CurrentTable.js"
import { type Intent, Outbox, type RecordDraft } from "./Outbox.js"
import { Runner } from "./Runner.js"

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

/**
 * The loop; never ends (interrupt it). Outbox failures are logged and the loop goes on: a broken
 * disk must not stop the jobs that still can run.
 */
export const run = (options: Options): Effect.Effect<never, never, Outbox | Runner | CurrentTable> =>
  Effect.gen(function*() {
    const outbox = yield* Outbox
    const runner = yield* Runner
    const tableRef = yield* CurrentTable
    const maxSleepMs = Math.max(1, options.maxSleepMs ?? DEFAULT_MAX_SLEEP_MS)
    const armLeadMs = Math.max(0, options.armLeadMs ?? DEFAULT_ARM_LEAD_MS)
    const preciseMs = Math.max(0, options.preciseMs ?? DEFAULT_PRECISE_MS)

    // Table updates: remember the newest and poke the loop (a sliding queue of one is a flag).
    const latest = yield* Ref.make<Option.Option<Option.Option<Table>>>(Option.none())
    const poke = yield* Queue.sliding<void>(1)
    yield* tableRef.changes.pipe(
      Stream.runForEach((table) =>
        Ref.set(latest, Option.some(table)).pipe(Effect.zipRight(Queue.offer(poke, void 0)))
      ),
      Effect.fork
    )

    let entries = new Map<string, Entry>()
    let applied: Option.Option<Table> | undefined = undefined
    /** Intents written and not yet handed to the Runner; dropped again if they will not run. */
    let armed = new Map<Entry, Armed>()

    const disarmAll = Effect.suspend(() => {
      const ids = [...armed.values()].map((a) => a.intent.runId)
      armed = new Map()
      return outbox.disarm(ids).pipe(
        Effect.catchAll((e) =>
          Effect.logError(`ticker: cannot remove the intents of runs that will not start: ${e.message}`)
        )
      )
    })

    const persistedLastRun = (name: string) =>
      outbox.lastRun(name).pipe(
        Effect.catchAll((e) =>
          Effect.logError(`ticker: cannot read the last run of '${name}': ${e.message}`).pipe(Effect.as(Option.none()))
        )
      )

    /**
     * A paused schedule's occurrences since its pause began, up to now, become one missed range
     * (reason `paused`) together with its new last run: the pause ended (resumed, changed, removed).
     */
    const endPause = (entry: Entry, now: number) =>
      Effect.gen(function*() {
        const name = entry.spec.name
        const range = MissedTicks.span(entry.cal, entry.since, now)
        entry.since = Math.max(entry.since, now)
        yield* outbox.append(range === undefined ? [] : [missedRange(name, range, "paused")], {
          lastRun: { schedule: name, at: entry.since }
        }).pipe(
          Effect.zipRight(
            range === undefined ? Effect.void : Effect.logInfo(
              `ticker: schedule '${name}': ${range.count} occurrence(s) while paused recorded as missed (paused)`
            )
          ),
          Effect.catchAll((e) =>
            Effect.logError(`ticker: cannot record the paused occurrences of '${name}': ${e.message}`)
          )
        )
      })

    /**
     * Builds the set of schedules from a table. A schedule whose calendar is unchanged keeps its
     * place (paused or not); a new or changed one starts at max(last run, now), so editing a
     * schedule never "catches up" occurrences that were not its own, and a resumed one records
     * its paused occurrences first (`endPause`). Only the table the ticker starts with catches up
     * from the durable last run (the agent was down in between).
     */
    const rebuild = (table: Option.Option<Table>, initial: boolean) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const next = new Map<string, Entry>()
        const schedules = Option.match(table, { onNone: () => [], onSome: (t) => t.schedules })
        for (const spec of schedules) {
          if (next.has(spec.name)) {
            yield* Effect.logWarning(`ticker: duplicate schedule name '${spec.name}' in the table; keeping the first`)
            continue
          }
          const parsed = Calendar.parse(spec.calendar, { agent: options.agentName, schedule: spec.name })
          if (Either.isLeft(parsed)) {
            yield* Effect.logWarning(
              `ticker: schedule '${spec.name}': cannot parse calendar '${spec.calendar}': ${parsed.left.reason}; skipped`
            )
            continue
          }
          const previous = entries.get(spec.name)
          if (
            previous !== undefined && previous.spec.paused && !(spec.paused && previous.spec.calendar === spec.calendar)
          ) {
            yield* endPause(previous, now)
          }
          if (previous !== undefined && previous.spec.calendar === spec.calendar) {
            next.set(spec.name, { spec, cal: parsed.right, since: previous.since })
            continue
          }
          const persisted = yield* persistedLastRun(spec.name)
          const since = initial && Option.isSome(persisted)
            ? persisted.value
            : Math.max(Option.getOrElse(persisted, () => now), now)
          next.set(spec.name, { spec, cal: parsed.right, since })
        }
        for (const [name, previous] of entries) {
          if (previous.spec.paused && !next.has(name)) yield* endPause(previous, now)
        }
        entries = next
        applied = table
        yield* Effect.logDebug(
          `ticker: following ${[...next.values()].filter((e) => !e.spec.paused).length} active schedule(s)`
        )
      })

    const logStart = (name: string, at: number, trigger: string, outcome: string) =>
      Effect.logDebug(`ticker: '${name}' occurrence ${new Date(at).toISOString()} (${trigger}): ${outcome}`)

    /**
     * Handles every occurrence of one schedule in (since, now]. The common case, its armed
     * occurrence and nothing else on time, goes straight to the Runner: exactly what
     * `MissedTicks.plan` would decide then (one on-time run, no gap), without a write first.
     * Uninterruptible (the starts return at once): a shutdown stops the ticker between
     * occurrences, never between an intent and its start, which would leave the run to the next
     * bartoc as one it "never started".
     */
    const fire = (entry: Entry, now: number) =>
      Effect.uninterruptible(Effect.suspend(() => {
        const ready = armed.get(entry)
        armed.delete(entry)
        if (
          ready !== undefined && ready.intent.scheduledAt <= now &&
          now - ready.intent.scheduledAt <= MissedTicks.DEFAULT_GRACE_MS &&
          (ready.following === undefined || ready.following > now)
        ) {
          const { intent } = ready
          entry.since = Math.max(entry.since, now)
          return runner.start({
            runId: intent.runId as RunId,
            spec: entry.spec,
            trigger: "schedule",
            scheduledAt: intent.scheduledAt,
            armed: true
          }).pipe(
            Effect.catchAll((e) =>
              Effect.logError(`ticker: cannot start '${entry.spec.name}': ${e.message}`).pipe(
                Effect.as("failed" as const)
              )
            ),
            Effect.flatMap((outcome) => logStart(entry.spec.name, intent.scheduledAt, "schedule", outcome))
          )
        }
        return fireLate(entry, now, ready?.intent)
      }))

    /**
     * The general path (a late wake-up): the policy decides, and all it decides is durable in one
     * transaction before any start: the missed records, an intent for each run to start, the new
     * last run. A crash after it leaves intents that the next bartoc records as missed.
     */
    /** The calendar wakes the loop; a late wake-up is this policy's to settle. */
    const policy = MissedTicks.policyOf(options.missedTick)
    const fireLate = (entry: Entry, now: number, intent: Intent | undefined) =>
      Effect.gen(function*() {
        const name = entry.spec.name
        const plan = policy.plan(entry.cal, {
          catchUpLimit: options.catchUpLimit,
          lastRun: entry.since,
          now
        })
        // Everything up to the watermark is decided now. In memory first: even if the disk fails
        // below, these occurrences must not come round again.
        const handled = Math.max(entry.since, plan.watermark)
        entry.since = handled

        // The armed occurrence keeps its run id whatever the plan makes of it, so that its
        // RunStarted or RunMissed consumes the intent; one the plan drops (or counts in a range)
        // is disarmed in the same transaction.
        const runIdOf = (at: number): RunId =>
          intent !== undefined && intent.scheduledAt === at ? intent.runId as RunId : Ids.newRunId(at)
        const reason = missedReason(options.missedTick)
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
        const saved = yield* outbox.append(missed, {
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
        for (const r of runs) {
          const outcome = yield* runner.start({
            runId: r.runId as RunId,
            spec: entry.spec,
            trigger: r.trigger,
            scheduledAt: r.scheduledAt,
            armed: true
          }).pipe(
            Effect.catchAll((e) =>
              Effect.logError(`ticker: cannot start '${name}': ${e.message}`).pipe(Effect.as("failed" as const))
            )
          )
          yield* logStart(name, r.scheduledAt, r.trigger, outcome)
        }
      })

    /**
     * Sleeps until the wall clock reads `at` or the table changes (true). Sleeps in slices of at
     * most `maxSleepMs` and re-reads the clock after each, so an early timer waits the remainder
     * and a clock step or suspend is noticed. With `precise`, the timer stops `preciseMs` short
     * and the rest is blocked (`blockUntil`, tried once; a plain sleep after that, which is what
     * moves TestClock); a table change in those few ms is seen after the instant.
     *
     * The slice is computed inside the raced fiber, right before it arms the timer: that fiber
     * starts only after the fibers already scheduled (a run just started: spawn, sink, …), and a
     * slice computed before the fork made every next tick late by that delay (measured 10-60 ms).
     */
    const sleepUntil = (at: number, precise: boolean): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        const timerUntil = precise && preciseMs > 0 ? at - preciseMs : at
        let blocked = false
        while (true) {
          const now = yield* Clock.currentTimeMillis
          if (now >= at) return false
          if (now >= timerUntil && !blocked) {
            blocked = true
            yield* Effect.clockWith((clock) => Effect.sync(() => blockUntil(clock, at, preciseMs)))
            continue
          }
          const target = now >= timerUntil ? at : timerUntil
          const timer = Effect.flatMap(
            Clock.currentTimeMillis,
            (armedAt) => Effect.sleep(Math.max(0, Math.min(target - armedAt, maxSleepMs)))
          )
          const woke = yield* Effect.raceFirst(
            timer.pipe(Effect.as("timer" as const)),
            Queue.take(poke).pipe(Effect.as("table" as const))
          )
          if (woke === "table") return true
        }
      })

    const loop = Effect.gen(function*() {
      while (true) {
        const seen = yield* Ref.get(latest)
        if (Option.isNone(seen)) {
          yield* Queue.take(poke)
          continue
        }
        if (seen.value !== applied) {
          yield* rebuild(seen.value, applied === undefined)
        }

        let wake = Number.POSITIVE_INFINITY
        const due = new Map<Entry, number>()
        for (const entry of entries.values()) {
          if (entry.spec.paused) continue
          const at = Calendar.next(entry.cal, entry.since)
          if (at === undefined) continue
          due.set(entry, at)
          if (at < wake) wake = at
        }
        if (wake === Number.POSITIVE_INFINITY) {
          // Nothing will ever fire (no table, all paused, or only past dates): wait for a new table.
          yield* Queue.take(poke)
          continue
        }
        if (yield* sleepUntil(wake - armLeadMs, false)) continue

        // A quiet moment: nothing is due for armLeadMs. The outbox checkpoints here, never at a start.
        yield* outbox.checkpoint.pipe(
          Effect.catchAll((e) => Effect.logWarning(`ticker: outbox checkpoint failed: ${e.message}`))
        )
        const toArm: Array<[Entry, Armed]> = []
        for (const [entry, at] of due) {
          if (at !== wake) continue
          toArm.push([entry, {
            intent: { runId: Ids.newRunId(at), schedule: entry.spec.name, scheduledAt: at, trigger: "schedule" },
            following: Calendar.next(entry.cal, at)
          }])
        }
        // Unarmed (the write failed), a run takes the general path: last run stored before its start.
        yield* outbox.arm(toArm.map(([, a]) => a.intent)).pipe(
          Effect.matchEffect({
            onFailure: (e) =>
              Effect.logError(`ticker: cannot record the runs due at ${new Date(wake).toISOString()}: ${e.message}`),
            onSuccess: () => Effect.sync(() => toArm.forEach(([entry, a]) => armed.set(entry, a)))
          })
        )
        // What the starts need is computed now, not at the instant.
        yield* runner.prepare(toArm.map(([entry, a]) => ({
          runId: a.intent.runId as RunId,
          spec: entry.spec,
          trigger: "schedule",
          scheduledAt: a.intent.scheduledAt,
          armed: true
        })))

        if (yield* sleepUntil(wake, true)) {
          yield* disarmAll
          continue
        }
        // The armed instant is the occurrence; the clock may read later (a stall), never earlier.
        const now = Math.max(yield* Clock.currentTimeMillis, wake)
        for (const [entry, at] of due) {
          if (at <= now) yield* fire(entry, now)
        }
        // Defensive: every armed entry was due at `wake`, so `fire` took each of them.
        if (armed.size > 0) yield* disarmAll
      }
    })

    // Interrupted (shutdown): intents of runs not handed to the Runner yet will not run.
    return yield* loop.pipe(Effect.onInterrupt(() => disarmAll))
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
