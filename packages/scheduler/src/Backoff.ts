/**
 * Reconnect backoff for bartoc (improves reference §1.11: no cap, no jitter, overflow).
 *
 * Delay n (0-based) is uniform in [0, min(capMs, baseMs · factor^n)] ("full jitter"), drawn
 * from Effect's `Random` service so tests can fix the sequence (`Effect.withRandom`). With
 * `retries`, the schedule stops after that many recurrences. Growth restarts from `baseMs`
 * either when the caller resets the driver (`Schedule.driver(...).reset` after a successful
 * connect) or, with `resetAfterMs`, when a step comes at least that long after the previous
 * retry was due, i.e. the connection it produced stayed up that long. (Effect's own
 * `Schedule.resetAfter` measures time since the *first* step, which would also reset in the
 * middle of a long outage; hence this state-based variant.)
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"

export interface ReconnectOptions {
  readonly baseMs?: number
  readonly factor?: number
  readonly capMs?: number
  /** Maximum number of recurrences (retries); absent = forever. */
  readonly retries?: number
  /** Restart growth and the retry budget when a step comes this long after the last retry was due. */
  readonly resetAfterMs?: number
}

export const DEFAULTS = { baseMs: 500, factor: 2, capMs: 30_000 } as const

/** Upper bound of the n-th delay (0-based): min(cap, base · factor^n); never overflows. */
export const ceilingMs = (n: number, options: ReconnectOptions = {}): number => {
  const base = options.baseMs ?? DEFAULTS.baseMs
  const factor = options.factor ?? DEFAULTS.factor
  const cap = options.capMs ?? DEFAULTS.capMs
  const grown = base * Math.pow(factor, n)
  return Number.isFinite(grown) ? Math.min(cap, grown) : cap
}

interface State {
  readonly n: number
  /** When the last retry was due (epoch ms of the clock the schedule runs on). */
  readonly dueAt: number | undefined
}

export const reconnect = (options: ReconnectOptions = {}): Schedule.Schedule<Duration.Duration, unknown> =>
  Schedule.makeWithState<State, unknown, Duration.Duration>(
    { n: 0, dueAt: undefined },
    (now, _input, state) => {
      const healthy = options.resetAfterMs !== undefined && state.dueAt !== undefined &&
        now - state.dueAt >= options.resetAfterMs
      const n = healthy ? 0 : state.n
      if (options.retries !== undefined && n >= options.retries) {
        return Effect.succeed([{ n, dueAt: state.dueAt }, Duration.zero, ScheduleDecision.done] as const)
      }
      return Effect.map(Random.next, (r) => {
        const ceiling = ceilingMs(n, options)
        // r ∈ [0, 1): floor(r · (ceiling + 1)) is uniform over the whole milliseconds 0..ceiling.
        const delay = Math.min(ceiling, Math.floor(r * (Math.floor(ceiling) + 1)))
        return [
          { n: n + 1, dueAt: now + delay },
          Duration.millis(delay),
          ScheduleDecision.continueWith(ScheduleInterval.after(now + delay))
        ] as const
      })
    }
  )
