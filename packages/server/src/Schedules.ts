/**
 * The live schedule table (D3): loaded from `[schedules.<agent>]`, validated atomically, `R`
 * resolved stably per agent/schedule, hot-reloaded on SIGHUP and on change of the config file,
 * pause flags persisted in the Store.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type { ScheduleSpec } from "@barto/domain/Messages"
import type { StoreError } from "./Store.js"

/** A schedule table that could not be loaded; names the file, the key path and the reason. */
export class ScheduleLoadError extends Data.TaggedError("ScheduleLoadError")<{
  readonly file: string | undefined
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `${this.file ?? "<defaults>"}: ${this.path}: ${this.reason}`
  }
}

export interface SchedulesShape {
  /** agent -> specs, paused flags applied. */
  readonly all: Effect.Effect<ReadonlyMap<string, ReadonlyArray<ScheduleSpec>>>
  readonly forAgent: (agent: string) => Effect.Effect<ReadonlyArray<ScheduleSpec>>
  /** false: unknown schedule; persists via Store.setPaused, pushes the agent's new table. */
  readonly setPaused: (agent: string, schedule: string, paused: boolean) => Effect.Effect<boolean, StoreError>
  /** Same as SIGHUP. */
  readonly reload: Effect.Effect<"applied" | "unchanged", ScheduleLoadError>
}

export class Schedules extends Context.Tag("@barto/server/Schedules")<Schedules, SchedulesShape>() {}
