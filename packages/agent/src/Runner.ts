/**
 * Runs a schedule's commands (D4): sequentially, each through `$SHELL -c` in its own process
 * group, output captured line by line into the Outbox, with timeout, cancel and overlap policy.
 *
 * At start-up it settles what a previous process left behind in the outbox, in one transaction:
 * runs started and never finished (`interrupted`, reason `agent_restart`: their processes went
 * with that bartoc), intents whose instant passed without a start (`missed`, reason
 * `agent_restart`: armed, planned or queued runs that never started), and intents still in the
 * future (dropped: the Ticker runs those occurrences when they come).
 *
 * Shutdown (`drain`, also run by the layer's finalizer): nothing new starts, queued runs are
 * recorded `missed` (reason `shutdown`), and running ones either finish (`shutdown = "wait"`, up
 * to the grace) or are stopped with the kill sequence and recorded `interrupted` (reason
 * `shutdown`).
 */
import type { RunId, ScheduleSpec, Trigger } from "@barto/domain/Messages"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Impl from "./internal/runner/runner.js"
import type { Outbox, OutboxError } from "./Outbox.js"

export interface RunRequest {
  readonly runId: RunId
  readonly spec: ScheduleSpec
  readonly trigger: Trigger
  /** Epoch ms of the occurrence. */
  readonly scheduledAt: number
  /**
   * An intent for this run id is durably recorded (`Outbox.arm`): the run then writes nothing
   * before its first spawn and records `RunStarted` right after it (which consumes the intent).
   * Without one, `RunStarted` is durable before anything is spawned.
   */
  readonly armed?: boolean
}

export interface RunnerShape {
  /**
   * Applies the schedule's overlap policy, then starts the run in the background and returns at
   * once. A run that is not started records a `RunMissed` with its run id: `skipped` (overlap
   * `forbid`), `refused` (shutting down). A queued run without an intent gets one, so that a
   * crash before its turn still leaves a trace of it.
   */
  readonly start: (request: RunRequest) => Effect.Effect<"started" | "queued" | "skipped" | "refused", OutboxError>
  /**
   * Computes ahead what starting these runs needs (their environment), so that their `start`
   * does less at the due instant. Each call replaces what the previous one prepared.
   */
  readonly prepare: (requests: ReadonlyArray<RunRequest>) => Effect.Effect<void>
  /** false: not running (nor queued) here. */
  readonly cancel: (runId: RunId) => Effect.Effect<boolean>
  readonly running: Effect.Effect<ReadonlyArray<{ readonly runId: RunId; readonly schedule: string }>>
  /** Completes when no run is active or queued (tests, shutdown). */
  readonly awaitIdle: Effect.Effect<void>
  /**
   * Shutdown: from now on nothing starts; queued runs are recorded missed; running ones may
   * finish (`wait`: until the grace expires or `hurry` completes), then the rest are stopped
   * and recorded interrupted. Completes when nothing runs any more. Idempotent.
   */
  readonly drain: (options?: { readonly hurry?: Effect.Effect<void> }) => Effect.Effect<void>
}

export class Runner extends Context.Tag("@barto/agent/Runner")<Runner, RunnerShape>() {}

export interface Options {
  readonly agentName: string
  /** Shell override; default `$SHELL`, or `/bin/sh` when unset or empty. */
  readonly shell?: string
  /** SIGTERM → SIGKILL grace on timeout, cancel and shutdown (default 5000). */
  readonly killGraceMs?: number
  /** `[runner] shutdown`: let running jobs finish (`wait`, default) or stop them at once. */
  readonly shutdown?: "wait" | "terminate"
  /** `[runner] shutdown_grace_secs`, in ms: how long `wait` waits (default 60000). */
  readonly shutdownGraceMs?: number
}

export const layer = (options: Options): Layer.Layer<Runner, never, Outbox> => Impl.layer(Runner, options)
