/**
 * Runs a schedule's commands (D4): sequentially, each through `$SHELL -c` in its own process
 * group, output captured line by line into the Outbox, with timeout, cancel and overlap policy.
 */
import type { RunId, ScheduleSpec, Trigger } from "@barto/domain/Messages"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type { Outbox, OutboxError } from "./Outbox.js"
import * as Impl from "./internal/runner/runner.js"

export interface RunRequest {
  readonly runId: RunId
  readonly spec: ScheduleSpec
  readonly trigger: Trigger
  /** Epoch ms of the occurrence. */
  readonly scheduledAt: number
}

export interface RunnerShape {
  /** Applies the schedule's overlap policy, then starts the run in the background and returns at once. */
  readonly start: (request: RunRequest) => Effect.Effect<"started" | "queued" | "skipped", OutboxError>
  /** false: not running (nor queued) here. */
  readonly cancel: (runId: RunId) => Effect.Effect<boolean>
  readonly running: Effect.Effect<ReadonlyArray<{ readonly runId: RunId; readonly schedule: string }>>
  /** Completes when no run is active or queued (tests, shutdown). */
  readonly awaitIdle: Effect.Effect<void>
}

export class Runner extends Context.Tag("@barto/agent/Runner")<Runner, RunnerShape>() {}

export interface Options {
  readonly agentName: string
  /** Shell override; default `$SHELL`, or `/bin/sh` when unset or empty. */
  readonly shell?: string
  /** SIGTERM → SIGKILL grace on timeout, cancel and shutdown (default 5000). */
  readonly killGraceMs?: number
}

export const layer = (options: Options): Layer.Layer<Runner, never, Outbox> => Impl.layer(Runner, options)
