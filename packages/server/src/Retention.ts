/**
 * The retention job (D8): `[retention] max_age_days` and `max_runs_per_schedule`, enforced by a
 * background fiber that lives as long as the layer's scope. A failing database never stops it:
 * the error is logged and the next interval tries again.
 */
import { Micros } from "@barto/domain/Messages"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { Leader } from "./Leader.js"
import { Store } from "./Store.js"

export interface RetentionOptions {
  readonly maxAgeDays?: number | undefined
  readonly maxRunsPerSchedule?: number | undefined
  readonly intervalSecs: number
  /** Delay before the first pass; default 10 s (or the interval, if shorter): late enough not to slow start-up. */
  readonly initialDelaySecs?: number | undefined
}

const DEFAULT_INITIAL_DELAY_SECS = 10

/** One pass: applies the limits now; never fails (errors and defects are logged). */
export const runOnce = (options: RetentionOptions): Effect.Effect<void, never, Store> =>
  Effect.gen(function*() {
    const store = yield* Store
    const now = Micros.make((yield* Clock.currentTimeMillis) * 1000)
    const deleted = yield* store.retention({
      ...(options.maxAgeDays !== undefined ? { maxAgeDays: options.maxAgeDays } : {}),
      ...(options.maxRunsPerSchedule !== undefined ? { maxRunsPerSchedule: options.maxRunsPerSchedule } : {}),
      now
    })
    if (deleted.runs > 0 || deleted.lines > 0) {
      yield* Effect.logInfo(`retention: deleted ${deleted.runs} runs and ${deleted.lines} output lines`)
    } else {
      yield* Effect.logDebug("retention: nothing to delete")
    }
  }).pipe(
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.interrupt
        : Effect.logError("retention: pass failed, retrying at the next interval", cause)
    ),
    Effect.annotateLogs({ maxAgeDays: options.maxAgeDays, maxRunsPerSchedule: options.maxRunsPerSchedule }),
    Effect.withSpan("Retention.runOnce")
  )

/**
 * Forks the retention loop into the layer's scope, on the leader only (several bartos on one
 * database delete once; `Leader.whileLeader` restarts the loop, initial delay included, when
 * this instance becomes leader, and its deletes carry the lease). Without any limit configured it
 * does nothing (the reference keeps everything until `cleanup`).
 */
export const layer = (options: RetentionOptions): Layer.Layer<never, never, Store | Leader> =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const leader = yield* Leader
      if (options.maxAgeDays === undefined && options.maxRunsPerSchedule === undefined) {
        yield* Effect.logDebug("retention: no limits configured, keeping everything")
        return
      }
      const interval = Duration.seconds(Math.max(1, options.intervalSecs))
      const initialDelay = Duration.min(
        Duration.seconds(Math.max(0, options.initialDelaySecs ?? DEFAULT_INITIAL_DELAY_SECS)),
        interval
      )
      yield* Effect.sleep(initialDelay).pipe(
        Effect.zipRight(Effect.repeat(runOnce(options), Schedule.spaced(interval))),
        (loop) => leader.whileLeader("retention", loop),
        Effect.forkScoped
      )
    })
  )
