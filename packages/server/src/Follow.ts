/**
 * `tail -f` that never ends, like `journalctl -f` (issue 15): run after run of one schedule, with
 * "waiting for the next run at …" between them; or every run of an agent, or of the whole fleet,
 * as they happen (`kubectl logs -f -l`).
 *
 * One schedule reuses `Operations.tail` per run (stored lines first, then live, gaps filled from
 * the Store), skipping the run it just showed. The fleet view is live only: it forwards what
 * `Ingested` publishes (lines of runs already running appear from the moment it subscribed).
 */
import type * as Messages from "@barto/domain/Messages"
import type { LineRow, RunRow } from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import { Ingested, type IngestedBatch } from "./Events.js"
import * as Operations from "./Operations.js"
import { fromStore, isFinal, type Refusal, refuse, type TailPart } from "./Operations.js"
import { Schedules } from "./Schedules.js"
import { Store } from "./Store.js"

/** A tail part, or: no run of this schedule to show now, the next is due at `waiting.nextAt`. */
export type FollowPart = TailPart | { readonly _tag: "Waiting"; readonly waiting: Messages.TailWaiting }

export interface FollowTarget {
  readonly agent?: string | undefined
  readonly schedule?: string | undefined
}

type Services = Store | Ingested | Schedules

/** What the schedule waits for now: its next fire time, or that it is paused or removed. */
const waitingFor = (agent: string, schedule: string) =>
  Effect.gen(function*() {
    const specs = yield* (yield* Schedules).forAgent(agent)
    const spec = specs.find((s) => s.name === schedule)
    const nowMs = yield* Clock.currentTimeMillis
    const paused = spec?.paused ?? false
    const waiting: Messages.TailWaiting = {
      agent,
      schedule,
      nextAt: spec === undefined || paused ? null : Operations.nextAt(spec.calendar, nowMs),
      paused
    }
    return { _tag: "Waiting", waiting } as const
  })

/**
 * Run after run of one schedule. The first run shown is the one running now; a run that already
 * ended is not replayed (the caller asked for what happens from now on, `--once` shows it).
 */
const followSchedule = (agent: string, schedule: string): Stream.Stream<FollowPart, Refusal, Services> => {
  const loop = (skip: string | undefined, first: boolean): Stream.Stream<FollowPart, Refusal, Services> =>
    Stream.unwrap(Effect.gen(function*() {
      const store = yield* Store
      const latest = yield* fromStore(store.latestRun(agent, schedule))
      const stale = Option.filter(latest, (r) => r.runId === skip || (first && isFinal(r.state)))
      const skipped = Option.isSome(stale) ? stale.value.runId : skip
      const waits = Option.isNone(latest) || Option.isSome(stale)
      let shown = skipped
      const run = Operations.tail({ agent, schedule, follow: true, skip: skipped }).pipe(
        Stream.tap((part) => Effect.sync(() => (shown = part.run?.runId ?? shown)))
      )
      const head: Stream.Stream<FollowPart, never, Schedules> = waits
        ? Stream.fromEffect(waitingFor(agent, schedule))
        : Stream.empty
      return Stream.concat(Stream.concat(head, run), Stream.suspend(() => loop(shown, false)))
    }))
  return loop(undefined, true)
}

/**
 * Every run of `agent` (or of every agent) from now on: a head part when a run starts, its lines
 * and heartbeats, a `Done` part when it ends. Lines carry their agent and schedule, so the client
 * can prefix them.
 */
const followFleet = (agent: string | undefined): Stream.Stream<FollowPart, Refusal, Services> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const store = yield* Store
    const subscription = yield* PubSub.subscribe(yield* Ingested)
    // Runs seen in this stream (for the schedule of their lines), dropped when they end.
    const runs = new Map<string, RunRow>()
    const exits = new Map<string, number | null>()
    const runOf = (runId: string) =>
      runs.has(runId)
        ? Effect.succeed(Option.some(runs.get(runId)!))
        : Effect.tap(fromStore(store.getRun(runId)), (row) =>
          Effect.sync(() => Option.map(row, (r) => runs.set(runId, r))))
    const partsOf = (batch: IngestedBatch) =>
      Effect.gen(function*() {
        const parts: Array<FollowPart> = []
        let lines: Array<LineRow> = []
        const flush = () => {
          if (lines.length > 0) parts.push({ _tag: "Lines", run: null, lines })
          lines = []
        }
        for (const r of batch.records) {
          switch (r._tag) {
            case "RunStarted": {
              flush()
              const row = yield* runOf(r.runId)
              if (Option.isSome(row)) parts.push({ _tag: "Lines", run: row.value, lines: [] })
              break
            }
            case "CommandExited":
              exits.set(r.cmdUuid, r.exitCode)
              break
            case "OutputLine": {
              const row = yield* runOf(r.runId)
              if (Option.isNone(row)) break
              lines.push(Operations.liveLine(r, row.value, exits))
              break
            }
            case "Heartbeat": {
              const row = yield* runOf(r.runId)
              if (Option.isNone(row)) break
              flush()
              parts.push({
                _tag: "Beat",
                run: row.value,
                heartbeat: {
                  at: r.ts,
                  progress: r.progress ?? null,
                  status: r.status ?? null,
                  message: r.message ?? null
                }
              })
              break
            }
            case "RunFinished": {
              flush()
              const row = yield* fromStore(store.getRun(r.runId))
              runs.delete(r.runId)
              if (Option.isSome(row)) parts.push({ _tag: "Done", run: row.value })
              break
            }
            default:
              break
          }
        }
        flush()
        return parts
      })
    // An empty first part: the client learns that bartos listens from now on.
    const listening: FollowPart = { _tag: "Lines", run: null, lines: [] }
    return Stream.concat(
      Stream.make(listening),
      Stream.fromQueue(subscription).pipe(
        Stream.filter((batch) => agent === undefined || batch.agent === agent),
        Stream.mapEffect(partsOf),
        Stream.flattenIterables
      )
    )
  }))

/**
 * A continuous tail of one schedule (agent + schedule), of an agent (agent), or of the fleet
 * (neither). An unknown agent or schedule is refused at once (`not_found`) rather than waited for.
 */
export const follow = (target: FollowTarget): Stream.Stream<FollowPart, Refusal, Services> =>
  Stream.unwrap(Effect.gen(function*() {
    const { agent, schedule } = target
    if (agent === undefined) {
      if (schedule !== undefined) return yield* refuse("bad_request", "a schedule needs its agent")
      return followFleet(undefined)
    }
    if (schedule !== undefined) {
      yield* Operations.knownSchedule(agent, schedule)
      return followSchedule(agent, schedule)
    }
    const specs = yield* (yield* Schedules).forAgent(agent)
    if (specs.length === 0) return yield* refuse("not_found", `unknown agent '${agent}' (no schedules configured)`)
    return followFleet(agent)
  }))
