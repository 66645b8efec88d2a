/**
 * The agent's tick loop (D3): runs the schedules of the cached table at their wall-clock instants.
 *
 * - One timer for the earliest due instant across schedules, computed with `Calendar.next()`;
 *   never a 1-second poll.
 * - Schedules are keyed by **name** (two schedules with the same expression both run; the
 *   reference collapsed them).
 * - The occurrence that fires is the instant the timer was armed for. Node timers fire up to
 *   ~0.3 ms early, when the clock still reads the previous second; then we wait the remainder
 *   instead of re-deriving the occurrence from the clock.
 * - Timers are at most `maxSleepMs` long: on Linux they run on the monotonic clock, which stops
 *   during suspend and ignores wall-clock steps, so the loop re-reads the wall clock regularly and
 *   `MissedTicks.plan` handles whatever fell into a gap (stall, suspend, forward step).
 * - The last handled occurrence per schedule is stored durably **before** its run starts: a crash
 *   never re-runs it, and a clock stepped backwards never re-runs one either.
 * - The loop starts from the durably cached table, so an agent restarted while bartos is down
 *   still runs its jobs, and it follows every table update at once (the sleep is interrupted).
 */
import * as Ids from "@barto/domain/Ids"
import type { Micros, MissedTick, ScheduleSpec, ScheduleTable } from "@barto/domain/Messages"
import * as Calendar from "@barto/scheduler/Calendar"
import * as MissedTicks from "@barto/scheduler/MissedTicks"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { Outbox, type OutboxError, type RecordDraft } from "./Outbox.js"
import { Runner } from "./Runner.js"

export type Table = typeof ScheduleTable.Type

/**
 * The schedule table the agent currently follows: written by the Connection when bartos pushes
 * one (after saving it durably), read by the Ticker. `None` until a table was ever received.
 */
export class CurrentTable extends Context.Tag("@barto/agent/CurrentTable")<
  CurrentTable,
  SubscriptionRef.SubscriptionRef<Option.Option<Table>>
>() {}

/**
 * Starts from the table cached in the Outbox, so the agent runs its jobs while bartos is down. An
 * unreadable cache is logged and treated as no cache: bartos sends the table again on connect.
 */
export const layerCurrentTable: Layer.Layer<CurrentTable, never, Outbox> = Layer.effect(
  CurrentTable,
  Effect.flatMap(Outbox, (outbox) => outbox.loadTable).pipe(
    Effect.catchAll((e: OutboxError) =>
      Effect.logError(`cannot read the cached schedule table, starting without one: ${e.message}`).pipe(
        Effect.as(Option.none<Table>())
      )
    ),
    Effect.flatMap(SubscriptionRef.make)
  )
)

export interface Options {
  /** Seeds `R` fields if a calendar still has any (bartos normally resolves them). */
  readonly agentName: string
  readonly missedTick: MissedTick
  readonly catchUpLimit: number
  /** Longest single timer before the wall clock is read again (default 30 s). */
  readonly maxSleepMs?: number
}

const DEFAULT_MAX_SLEEP_MS = 30_000

interface Entry {
  readonly spec: ScheduleSpec
  readonly cal: Calendar.Calendar
  /** Epoch ms: every occurrence at or before this one has been handled (run or recorded missed). */
  since: number
}

const missedReason = (policy: MissedTick): string =>
  // Burst runs what it can and misses only beyond the limit; Delay and Skip miss by policy.
  policy === "Burst" ? "catch_up_limit" : `missed_tick:${policy}`

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

    // Table updates: remember the newest and poke the loop (a sliding queue of one is a flag).
    const latest = yield* Ref.make<Option.Option<Option.Option<Table>>>(Option.none())
    const poke = yield* Queue.sliding<void>(1)
    yield* tableRef.changes.pipe(
      Stream.runForEach((table) => Ref.set(latest, Option.some(table)).pipe(Effect.zipRight(Queue.offer(poke, void 0)))),
      Effect.fork
    )

    let entries = new Map<string, Entry>()
    let applied: Option.Option<Table> | undefined = undefined

    const persistedLastRun = (name: string) =>
      outbox.lastRun(name).pipe(
        Effect.catchAll((e) =>
          Effect.logError(`ticker: cannot read the last run of '${name}': ${e.message}`).pipe(Effect.as(Option.none()))
        )
      )

    /**
     * Builds the active set from a table. A schedule whose calendar is unchanged keeps its place;
     * a new, changed or resumed one starts at max(last run, now), so editing or resuming a
     * schedule never "catches up" occurrences that were not its own. Only the table the ticker
     * starts with catches up from the durable last run (the agent was down in between).
     */
    const rebuild = (table: Option.Option<Table>, initial: boolean) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const next = new Map<string, Entry>()
        const schedules = Option.match(table, { onNone: () => [], onSome: (t) => t.schedules })
        for (const spec of schedules) {
          if (spec.paused) continue
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
        entries = next
        applied = table
        yield* Effect.logDebug(`ticker: following ${next.size} active schedule(s)`)
      })

    /** Handles every occurrence of one schedule in (since, now]. */
    const fire = (entry: Entry, now: number) =>
      Effect.gen(function*() {
        const name = entry.spec.name
        const plan = MissedTicks.plan(entry.cal, {
          policy: options.missedTick,
          catchUpLimit: options.catchUpLimit,
          lastRun: entry.since,
          now
        })
        // Everything up to the watermark is decided now. In memory first: even if the disk fails
        // below, these occurrences must not come round again.
        const handled = Math.max(entry.since, plan.watermark)
        entry.since = handled

        if (plan.missed.length > 0) {
          const reason = missedReason(options.missedTick)
          const drafts: Array<RecordDraft> = plan.missed.map((at) => ({
            _tag: "RunMissed",
            runId: Ids.newRunId(at),
            schedule: name,
            scheduledAt: (at * 1000) as Micros,
            reason
          }))
          yield* outbox.append(drafts).pipe(
            Effect.catchAll((e) => Effect.logError(`ticker: cannot record missed runs of '${name}': ${e.message}`))
          )
        }
        if (plan.missedTotal > plan.missed.length) {
          yield* Effect.logWarning(
            `ticker: schedule '${name}': ${plan.missedTotal} occurrence(s) missed, ` +
              `${plan.missed.length} recorded individually`
          )
        } else if (plan.missed.length > 0) {
          yield* Effect.logWarning(`ticker: schedule '${name}': ${plan.missed.length} occurrence(s) missed`)
        }

        // Durable before the start: a crash between the two loses the run rather than repeating it.
        const saved = yield* outbox.setLastRun(name, handled).pipe(
          Effect.as(true),
          Effect.catchAll((e) =>
            Effect.logError(`ticker: cannot store the last run of '${name}'; not starting it: ${e.message}`).pipe(
              Effect.as(false)
            )
          )
        )
        if (!saved) return
        for (const r of plan.run) {
          const startedAt = yield* Clock.currentTimeMillis
          const outcome = yield* runner.start({
            runId: Ids.newRunId(startedAt),
            spec: entry.spec,
            trigger: r.trigger,
            scheduledAt: r.at
          }).pipe(
            Effect.catchAll((e) =>
              Effect.logError(`ticker: cannot start '${name}': ${e.message}`).pipe(Effect.as("failed" as const))
            )
          )
          yield* Effect.logDebug(
            `ticker: '${name}' occurrence ${new Date(r.at).toISOString()} (${r.trigger}): ${outcome}`
          )
        }
      })

    /**
     * Sleeps until the wall clock reads `at` or the table changes (true). Sleeps in slices of at
     * most `maxSleepMs` and re-reads the clock after each, so an early timer waits the remainder
     * and a clock step or suspend is noticed.
     *
     * The slice is computed inside the raced fiber, right before it arms the timer: that fiber
     * starts only after the fibers already scheduled (a run just started: spawn, sink, …), and a
     * slice computed before the fork made every next tick late by that delay (measured 10-60 ms).
     */
    const sleepUntil = (at: number): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        while (true) {
          const now = yield* Clock.currentTimeMillis
          if (now >= at) return false
          const timer = Effect.flatMap(
            Clock.currentTimeMillis,
            (armed) => Effect.sleep(Math.max(0, Math.min(at - armed, maxSleepMs)))
          )
          const woke = yield* Effect.raceFirst(
            timer.pipe(Effect.as("timer" as const)),
            Queue.take(poke).pipe(Effect.as("table" as const))
          )
          if (woke === "table") return true
        }
      })

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
      if (yield* sleepUntil(wake)) continue
      // The armed instant is the occurrence; the clock may read later (a stall), never earlier.
      const now = Math.max(yield* Clock.currentTimeMillis, wake)
      for (const [entry, at] of due) {
        if (at <= now) yield* fire(entry, now)
      }
    }
  })

/** Runs the loop for the lifetime of the layer. */
export const layer = (options: Options): Layer.Layer<never, never, Outbox | Runner | CurrentTable> =>
  Layer.scopedDiscard(Effect.forkScoped(run(options)))
