/**
 * "Did the agent come back?": once a session ends, runs the agent still has `running` become
 * `lost` if it is not connected again `livenessMs` later (`WorkerSession.ts` says what is checked).
 *
 * One fiber for all pending checks, not one sleeping fiber per ended session: a mass disconnect
 * (a network cut between bartos and 10,000 agents) made 10,000 fibers with a timer each, all
 * waking at once. Here a check is an entry in a map, swept every `tickMs`; the due ones run a few
 * at a time. A name that ends again before its check is due keeps one entry, with the later end
 * (runs started before it: the earlier end's runs included) and the later due time.
 */
import type { Micros } from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

export interface LostChecks {
  /** Checks `agent` `livenessMs` from now, for the runs it started before `endedAt`. */
  readonly schedule: (agent: string, endedAt: Micros) => void
  /** Checks not yet run. */
  readonly pending: () => number
}

/** Checks run at once, at most (each is a read or two and, on the leader, one UPDATE). */
export const CONCURRENCY = 4

/** How often pending checks are looked at: a quarter of the liveness, between 25 ms and 1 s. */
export const tickMs = (livenessMs: number): number => Math.min(1000, Math.max(25, Math.round(livenessMs / 4)))

export const make = (options: {
  readonly livenessMs: number
  /** The check itself; its own failures are its own (logged), a defect is logged here. */
  readonly check: (agent: string, endedAt: Micros) => Effect.Effect<void>
}): Effect.Effect<LostChecks, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    // In the order they fall due: the liveness is the same for all, and a name scheduled again
    // moves to the end.
    const checks = new Map<string, { readonly endedAt: Micros; readonly due: number }>()
    const sweep = Effect.suspend(() => {
      if (checks.size === 0) return Effect.void
      const now = clock.unsafeCurrentTimeMillis()
      const due: Array<[string, Micros]> = []
      for (const [agent, c] of checks) {
        if (c.due > now) break
        due.push([agent, c.endedAt])
        checks.delete(agent)
      }
      return Effect.forEach(
        due,
        ([agent, endedAt]) =>
          Effect.catchAllDefect(
            options.check(agent, endedAt),
            (cause) => Effect.logError(`defect in the lost-runs check of '${agent}'`, cause)
          ),
        { concurrency: CONCURRENCY, discard: true }
      )
    })
    yield* Effect.forkScoped(
      Effect.forever(Effect.zipRight(Clock.sleep(tickMs(options.livenessMs)), sweep))
    )
    return {
      schedule: (agent, endedAt) => {
        checks.delete(agent)
        checks.set(agent, { endedAt, due: clock.unsafeCurrentTimeMillis() + options.livenessMs })
      },
      pending: () => checks.size
    }
  })
