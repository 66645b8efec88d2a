/**
 * What bartos can be asked, once for every front end: the CLI link (`CliHandler`) and the HTTP
 * API (`Web`) both call these, so a rule (who may run what, which runs a cleanup deletes, how a
 * tail ends) lives in one place. Each operation answers from the Store, Registry and Schedules and
 * fails with a `Refusal` (a code and a message for the operator); the front ends map the code to a
 * `CliError` or an HTTP status.
 */
import { isRunIdInput, MIN_RUN_ID_INPUT, newRunId, uuidv4 } from "@barto/domain/Ids"
import * as Messages from "@barto/domain/Messages"
import type { AgentRecord, LineRow, RunRow, RunState } from "@barto/domain/Messages"
import * as Calendar from "@barto/scheduler/Calendar"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import { Ingested, type IngestedBatch } from "./Events.js"
import { Registry } from "./Registry.js"
import { Schedules } from "./Schedules.js"
import { ServerInfo } from "./ServerInfo.js"
import { recentKey, type RunsFilter, Store, type StoreError } from "./Store.js"

export type RefusalCode = typeof Messages.CliError.Type["code"]

/** A request we answer with an error the operator can act on (or `internal`: ours). */
export class Refusal extends Data.TaggedError("Refusal")<{ readonly code: RefusalCode; readonly message: string }> {}

export const refuse = (code: RefusalCode, message: string) => Effect.fail(new Refusal({ code, message }))

/** Database trouble is ours, not the user's: `internal`, with the driver's message (never a secret). */
export const fromStore = <A, R>(effect: Effect.Effect<A, StoreError, R>): Effect.Effect<A, Refusal, R> =>
  Effect.mapError(effect, (e) => new Refusal({ code: "internal", message: `database error: ${e.message}` }))

/** Largest `runs --limit` we honour; bigger asks are clamped. */
export const MAX_RUNS = 10_000
/** Lines read from the Store per page while tailing. */
export const TAIL_PAGE_LINES = 500
/** How often a follower re-reads its run, to notice an end no record announced (lost, cleanup). */
export const TAIL_POLL = "5 seconds"

export const nowMicros = Effect.map(Clock.currentTimeMillis, (ms) => Messages.Micros.make(Math.floor(ms) * 1000))

/** Every state but `running` is final, including states added after this code (they never move). */
export const isFinal = (state: RunState | string): boolean => state !== "running"

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

export const info = Effect.gen(function*() {
  const server = yield* ServerInfo
  const registry = yield* Registry
  const store = yield* Store
  const now = yield* nowMicros
  const clients = yield* registry.list
  const reload = yield* (yield* Schedules).lastReload
  return {
    version: server.version,
    protocol: Messages.PROTOCOL_VERSION,
    startedAt: server.startedAt,
    uptimeSecs: Math.max(0, Math.floor((now - server.startedAt) / 1_000_000)),
    database: store.kind,
    databaseLocation: store.location,
    listeners: server.listeners,
    connectedAgents: clients.length,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    configReload: {
      at: reload.at,
      result: reload.result,
      error: reload.error ?? null,
      lastSuccessAt: reload.lastSuccessAt
    }
  }
})

/** `runs`: newest first; a limit below 1 is refused, above `MAX_RUNS` clamped. */
export const runs = (filter: RunsFilter) =>
  Effect.gen(function*() {
    if (!Number.isInteger(filter.limit) || filter.limit < 1) {
      return yield* refuse("bad_request", `limit must be a positive integer, got ${filter.limit}`)
    }
    if (filter.runIdMatch !== undefined && !isRunIdInput(filter.runIdMatch)) {
      return yield* refuse(
        "bad_request",
        `'${filter.runIdMatch}' is not a run id: ${MIN_RUN_ID_INPUT} to 36 lower-case hex digits and dashes`
      )
    }
    const store = yield* Store
    return yield* fromStore(store.runs({ ...filter, limit: Math.min(filter.limit, MAX_RUNS) }))
  })

/** Next fire time strictly after `nowMs`, in micros; null if it never fires again. */
export const nextAt = (calendar: string, nowMs: number): Messages.Micros | null => {
  const parsed = Calendar.parse(calendar)
  if (Either.isLeft(parsed)) return null
  const next = Calendar.next(parsed.right, nowMs)
  return next === undefined ? null : Messages.Micros.make(next * 1000)
}

/**
 * The `missed_tick` and `catch_up_limit` each agent reported in its hello: a connected agent's from
 * `Registry.list` (its session, here or on another bartos), an offline one's from its latest
 * session as stored in `agents`. Unknown ones are absent.
 */
const missedTicks = (clients: ReadonlyArray<Messages.ClientRow>) =>
  Effect.gen(function*() {
    const out = new Map<string, { readonly missedTick: Messages.MissedTick; readonly catchUpLimit: number | null }>()
    for (const a of yield* fromStore((yield* Store).agents())) {
      if (a.missedTick !== null) out.set(a.name, { missedTick: a.missedTick, catchUpLimit: a.catchUpLimit })
    }
    for (const c of clients) {
      if (c.missedTick === undefined) out.delete(c.name)
      else out.set(c.name, { missedTick: c.missedTick, catchUpLimit: c.catchUpLimit ?? null })
    }
    return out
  })

/** Every schedule (of `agent`, or of all agents by name) with its next fire time. */
export const scheduleRows = (agent: string | undefined) =>
  Effect.gen(function*() {
    const schedules = yield* Schedules
    const registry = yield* Registry
    const clients = yield* registry.list
    const connected = new Set(clients.map((c) => c.name))
    const table: ReadonlyMap<string, ReadonlyArray<Messages.ScheduleSpec>> = agent === undefined
      ? yield* schedules.all
      : new Map([[agent, yield* schedules.forAgent(agent)]])
    if (agent !== undefined && table.get(agent)!.length === 0 && !connected.has(agent)) {
      return yield* refuse("not_found", `unknown agent '${agent}'`)
    }
    const nowMs = yield* Clock.currentTimeMillis
    const names = [...table.keys()].sort()
    // The newest run of every schedule in one round trip per chunk, not one query each.
    const store = yield* Store
    const last = yield* fromStore(
      store.recentRuns(names.flatMap((agent) => table.get(agent)!.map((s) => ({ agent, schedule: s.name }))), 1)
    )
    const reported = yield* missedTicks(clients)
    const rows: Array<Messages.ScheduleRow> = []
    for (const name of names) {
      const missed = reported.get(name)
      for (const spec of table.get(name)!) {
        const at = nextAt(spec.calendar, nowMs)
        const parsed = Calendar.parse(spec.calendar)
        if (at === null && Either.isLeft(parsed)) {
          yield* Effect.logWarning(`schedule ${name}/${spec.name}: stored calendar '${spec.calendar}' does not parse`)
        }
        rows.push(
          new Messages.ScheduleRow({
            agent: name,
            name: spec.name,
            onCalendar: spec.onCalendar,
            calendar: spec.calendar,
            cmds: spec.cmds,
            paused: spec.paused,
            connected: connected.has(name),
            nextAt: at,
            timeoutSecs: spec.timeoutSecs ?? null,
            overlap: spec.overlap,
            onFailure: spec.onFailure,
            ...(Either.isRight(parsed) ? { timezone: parsed.right.tz } : {}),
            missedTick: missed?.missedTick ?? null,
            catchUpLimit: missed?.catchUpLimit ?? null,
            lastRun: last.get(recentKey(name, spec.name))?.last ?? null
          })
        )
      }
    }
    return rows
  })

/** States a run can fail in: what `status` counts as a failure. */
export const FAILURE_STATES: ReadonlyArray<RunState> = ["failed", "timed_out", "lost"]

/**
 * The fleet at a glance (`barto-cli status`): every agent (configured, ever seen, or connected)
 * online or not with when it was last heard from, the runs in progress, failures of the last
 * 24 hours, every schedule, and the last config reload. Connected agents come from
 * `Registry.list` only, so a registry shared by several bartos shows the whole fleet.
 */
export const status = Effect.gen(function*() {
  const store = yield* Store
  const registry = yield* Registry
  const schedules = yield* scheduleRows(undefined)
  const online = new Map((yield* registry.list).map((c) => [c.name, c]))
  const seen = new Map((yield* fromStore(store.agents())).map((a) => [a.name, a]))
  const counts = new Map<string, number>()
  for (const s of schedules) counts.set(s.agent, (counts.get(s.agent) ?? 0) + 1)
  const names = [...new Set([...counts.keys(), ...seen.keys(), ...online.keys()])].sort()
  const now = yield* nowMicros
  const since = Messages.Micros.make(now - 24 * 3600 * 1_000_000)
  const agents = names.map((name): Messages.AgentStatus => {
    const client = online.get(name)
    const row = seen.get(name)
    return {
      name,
      online: client !== undefined,
      connectedAt: client?.connectedAt ?? null,
      lastSeenAt: client !== undefined ? now : row?.lastSeenAt ?? null,
      agentVersion: client?.info?.agentVersion ?? row?.agentVersion ?? null,
      schedules: counts.get(name) ?? 0
    }
  })
  return {
    agents,
    running: yield* fromStore(store.runs({ state: "running", limit: 100 })),
    failures24h: yield* fromStore(store.countRuns({ states: FAILURE_STATES, since })),
    recentFailures: yield* fromStore(store.runs({ states: FAILURE_STATES, since, limit: 5 })),
    schedules,
    configReload: (yield* info).configReload
  }
})

// ---------------------------------------------------------------------------------------------
// Actions (admin only: the front ends check the role before calling)
// ---------------------------------------------------------------------------------------------

/** Today's 00:00 in bartos' local time zone (reference `cleanup` meaning). */
export const localMidnight = Effect.map(Clock.currentTimeMillis, (ms) => {
  const d = new Date(ms)
  d.setHours(0, 0, 0, 0)
  return Messages.Micros.make(d.getTime() * 1000)
})

/** Deletes (or counts, `dryRun`) what finished before `before` (default: local midnight); tells agents. */
export const cleanup = (options: { readonly before?: Messages.Micros | undefined; readonly dryRun: boolean }) =>
  Effect.gen(function*() {
    const store = yield* Store
    const before = options.before ?? (yield* localMidnight)
    const counts = yield* fromStore(store.cleanup(before, options.dryRun))
    let agentsSignalled = 0
    if (!options.dryRun) {
      const registry = yield* Registry
      agentsSignalled = yield* registry.broadcast({ _tag: "AgentCleanup", before })
      yield* Effect.logInfo(
        `cleanup before ${before}: deleted ${counts.runs} runs, ${counts.commands} commands, ` +
          `${counts.lines} lines; signalled ${agentsSignalled} agents`
      )
    }
    return { before, dryRun: options.dryRun, ...counts, agentsSignalled }
  })

/** Fails with `not_found` unless `agent` has a schedule called `schedule`. */
export const knownSchedule = (agent: string, schedule: string) =>
  Effect.gen(function*() {
    const schedules = yield* Schedules
    const specs = yield* schedules.forAgent(agent)
    if (specs.length === 0) return yield* refuse("not_found", `unknown agent '${agent}' (no schedules configured)`)
    const spec = specs.find((s) => s.name === schedule)
    if (spec === undefined) return yield* refuse("not_found", `unknown schedule '${schedule}' on agent '${agent}'`)
    return spec
  })

/** Sends `RunNow` with a run id minted here, so the caller can follow the run it started. */
export const runNow = (agent: string, schedule: string) =>
  Effect.gen(function*() {
    yield* knownSchedule(agent, schedule)
    const registry = yield* Registry
    const runId = newRunId(yield* Clock.currentTimeMillis)
    const sent = yield* registry.send(agent, { _tag: "RunNow", requestId: uuidv4(), schedule, runId })
    if (!sent) return yield* refuse("not_connected", `agent '${agent}' is not connected`)
    yield* Effect.logInfo(`run now: ${agent}/${schedule} as run ${runId}`)
    return { runId, agent, schedule }
  })

export const cancel = (runId: string) =>
  Effect.gen(function*() {
    const store = yield* Store
    const found = yield* fromStore(store.getRun(runId))
    if (Option.isNone(found)) return yield* refuse("not_found", `unknown run ${runId}`)
    const run = found.value
    if (isFinal(run.state)) return yield* refuse("bad_request", `run ${run.runId} already ${run.state}`)
    const registry = yield* Registry
    const delivered = yield* registry.send(run.agent, { _tag: "CancelRun", requestId: uuidv4(), runId: run.runId })
    yield* Effect.logInfo(`cancel run ${run.runId} on ${run.agent}: ${delivered ? "delivered" : "agent not connected"}`)
    return { runId: run.runId, delivered }
  })

export const setPaused = (agent: string, schedule: string, paused: boolean) =>
  Effect.gen(function*() {
    const schedules = yield* Schedules
    const known = yield* fromStore(schedules.setPaused(agent, schedule, paused))
    if (!known) return yield* refuse("not_found", `unknown schedule '${schedule}' on agent '${agent}'`)
    return { agent, schedule, paused }
  })

// ---------------------------------------------------------------------------------------------
// tail
// ---------------------------------------------------------------------------------------------

export interface TailTarget {
  readonly runId?: string | undefined
  readonly agent?: string | undefined
  readonly schedule?: string | undefined
  readonly follow: boolean
  /** Only lines with a larger `lineSeq` (resuming a page or a dropped stream); default -1. */
  readonly after?: number | undefined
  /** With agent+schedule and `follow`: a run already shown; wait for the next one instead. */
  readonly skip?: string | undefined
}

/**
 * One step of a tail: lines (`run` set on the first part only, and on a head part with no lines
 * that names the run being followed before its first line), or the end with the final row.
 */
export type TailPart =
  | { readonly _tag: "Lines"; readonly run: RunRow | null; readonly lines: ReadonlyArray<LineRow> }
  | { readonly _tag: "Done"; readonly run: RunRow }
  /** The run's job sent a heartbeat newer than the last one this tail showed (issue 14). */
  | { readonly _tag: "Beat"; readonly run: RunRow; readonly heartbeat: Messages.RunHeartbeat }

type TailEvent = { readonly _tag: "Batch"; readonly batch: IngestedBatch } | { readonly _tag: "Tick" }

type TailState =
  /** Follow mode, no run yet: waiting for its RunStarted. */
  | { readonly _tag: "Waiting" }
  /**
   * Paging through the stored lines after `after`, a page per step (a follower far behind never
   * reads them all at once); `end`: the run is over, finish with the done part.
   */
  | {
    readonly _tag: "Reading"
    readonly run: RunRow
    readonly after: number
    readonly first: boolean
    readonly end: boolean
    /** The `at` of the newest heartbeat shown (-1: none), so a beat is shown once. */
    readonly beatAt: number
  }
  /** Live: lines come from Ingested batches. */
  | {
    readonly _tag: "Following"
    readonly run: RunRow
    readonly after: number
    readonly exits: ReadonlyMap<string, number | null>
    readonly beatAt: number
  }
  | { readonly _tag: "Done" }

const isStartOf = (target: TailTarget, batch: IngestedBatch, record: AgentRecord): boolean =>
  record._tag === "RunStarted" &&
  (target.runId !== undefined
    ? record.runId === target.runId
    : batch.agent === target.agent && record.schedule === target.schedule)

/** A line as it arrives (not yet stored) of a running `run`; `exits`: exit codes by command so far. */
export const liveLine = (
  r: typeof Messages.OutputLine.Type,
  run: { readonly agent: string; readonly schedule: string },
  exits: ReadonlyMap<string, number | null>
): LineRow =>
  new Messages.LineRow({
    runId: r.runId,
    agent: run.agent,
    schedule: run.schedule,
    cmdUuid: r.cmdUuid,
    lineSeq: r.lineSeq,
    stream: r.stream,
    ts: r.ts,
    data: r.data,
    continuation: r.continuation,
    exitCode: exits.get(r.cmdUuid) ?? null,
    runState: "running"
  })

/** The run row carries the beat it had when read; a tail shows only newer ones. */
const beatOf = (run: RunRow): number => run.heartbeat?.at ?? -1

const linesPart = (run: RunRow | null, lines: ReadonlyArray<LineRow>): Array<TailPart> =>
  lines.length > 0 ? [{ _tag: "Lines", run, lines }] : []

/**
 * The stored lines of one run, then (with `follow`) its live lines until it ends. Ends with a
 * `Done` part carrying the run row (final when following).
 *
 * Following subscribes to `Ingested` before the first read, so a batch committed between the
 * read and the subscription cannot be missed; lines are de-duplicated by `lineSeq`. A gap in
 * `lineSeq` (a dropped event) is filled from the Store, and a periodic re-read notices an end that
 * no record announces (the run marked lost, or deleted).
 */
export const tail = (target: TailTarget): Stream.Stream<TailPart, Refusal, Store | Ingested> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const hasTarget = target.agent !== undefined && target.schedule !== undefined
    if (target.runId === undefined && !hasTarget) {
      return yield* refuse("bad_request", "tail needs a run id, or an agent and a schedule")
    }
    const start = target.after ?? -1
    const store = yield* Store
    const ingested = yield* Ingested
    const events = target.follow
      ? yield* Stream.toPull(
        Stream.merge(
          Stream.fromQueue(yield* PubSub.subscribe(ingested)).pipe(
            Stream.map((batch): TailEvent => ({ _tag: "Batch", batch }))
          ),
          Stream.tick(TAIL_POLL).pipe(Stream.drop(1), Stream.as<TailEvent>({ _tag: "Tick" }))
        )
      ).pipe(Effect.map(Effect.catchAll(() => refuse("internal", "server is shutting down"))))
      : Effect.succeed(Chunk.empty<TailEvent>())

    const lookup = target.runId !== undefined
      ? store.getRun(target.runId)
      : store.latestRun(target.agent!, target.schedule!)
    const fresh = (run: Option.Option<RunRow>) => Option.filter(run, (r) => r.runId !== target.skip)
    const found = fresh(yield* fromStore(lookup))
    if (Option.isNone(found) && !target.follow) {
      return yield* refuse(
        "not_found",
        target.runId !== undefined
          ? `unknown run ${target.runId}`
          : `no runs of schedule '${target.schedule}' on agent '${target.agent}'`
      )
    }

    const step = (state: TailState) =>
      Effect.gen(function*() {
        switch (state._tag) {
          case "Done":
            return Option.none()
          case "Waiting": {
            let started: string | undefined
            let tick = false
            for (const ev of yield* events) {
              if (ev._tag === "Tick") tick = true
              else {
                for (const r of ev.batch.records) if (isStartOf(target, ev.batch, r)) started ??= r.runId
              }
            }
            // The event is only a hint; the Store is the truth (the batch committed before it was published).
            const run = started !== undefined
              ? yield* fromStore(store.getRun(started))
              : tick
              ? fresh(yield* fromStore(lookup))
              : Option.none<RunRow>()
            const next: TailState = Option.isSome(run)
              ? { _tag: "Reading", run: run.value, after: start, first: true, end: false, beatAt: beatOf(run.value) }
              : state
            return Option.some([Chunk.empty<TailPart>(), next] as const)
          }
          case "Reading": {
            const { after, first, run } = state
            const page = yield* fromStore(store.runLines(run.runId, after, TAIL_PAGE_LINES))
            const last = page.length > 0 ? page[page.length - 1]!.lineSeq : after
            const parts = linesPart(first ? run : null, page)
            if (page.length === TAIL_PAGE_LINES) {
              const more: TailState = { ...state, after: last, first: false }
              return Option.some([Chunk.fromIterable(parts), more] as const)
            }
            if (state.end || !target.follow || isFinal(run.state)) {
              const end: Array<TailPart> = [...parts, { _tag: "Done", run }]
              return Option.some([Chunk.fromIterable(end), { _tag: "Done" }] as const)
            }
            // Tell the client which run it follows even before its first line.
            const head: Array<TailPart> = first && parts.length === 0 ? [{ _tag: "Lines", run, lines: [] }] : parts
            return Option.some(
              [Chunk.fromIterable(head), {
                _tag: "Following",
                run,
                after: last,
                exits: new Map(),
                beatAt: state.beatAt
              }] as const
            )
          }
          case "Following": {
            const { run } = state
            let after = state.after
            const exits = new Map(state.exits)
            const fresh: Array<LineRow> = []
            let gap = false
            let finished = false
            let tick = false
            let beat: Messages.RunHeartbeat | undefined
            for (const ev of yield* events) {
              if (ev._tag === "Tick") {
                tick = true
                continue
              }
              if (ev.batch.agent !== run.agent) continue
              for (const r of ev.batch.records) {
                if (r.runId !== run.runId) continue
                switch (r._tag) {
                  case "CommandExited":
                    exits.set(r.cmdUuid, r.exitCode)
                    break
                  case "RunFinished":
                    finished = true
                    break
                  case "Heartbeat":
                    if (r.ts > (beat?.at ?? state.beatAt)) {
                      beat = {
                        at: r.ts,
                        progress: r.progress ?? null,
                        status: r.status ?? null,
                        message: r.message ?? null
                      }
                    }
                    break
                  case "OutputLine": {
                    if (gap || r.lineSeq <= after) break
                    if (r.lineSeq !== after + 1) {
                      gap = true
                      break
                    }
                    after = r.lineSeq
                    fresh.push(liveLine(r, run, exits))
                    break
                  }
                }
              }
            }
            let latest = Option.none<RunRow>()
            if (finished || tick) {
              latest = yield* fromStore(store.getRun(run.runId))
              finished ||= Option.isNone(latest) || isFinal(latest.value.state)
            }
            // A beat ingested by another bartos reaches this one through the Store only (issue 18).
            const stored = Option.isSome(latest) ? latest.value.heartbeat : undefined
            if (stored !== undefined && stored.at > (beat?.at ?? state.beatAt)) beat = stored
            const beatAt = beat?.at ?? state.beatAt
            const parts = Chunk.fromIterable<TailPart>([
              ...linesPart(null, fresh),
              ...(beat === undefined ? [] : [{ _tag: "Beat", run, heartbeat: beat } as const])
            ])
            // What the Store holds beyond the live lines (a gap, or the rest of a run that ended)
            // is read page by page; then the done part with the current row, or live again.
            if (finished) {
              const row = Option.getOrElse(latest, () => run)
              return Option.some(
                [parts, { _tag: "Reading", run: row, after, first: false, end: true, beatAt }] as const
              )
            }
            // On a tick the Store is read too: with several bartos the run's lines may be ingested
            // by another instance, whose batches never reach this one's `Ingested` (issue 18).
            if (gap || tick) {
              return Option.some([parts, { _tag: "Reading", run, after, first: false, end: false, beatAt }] as const)
            }
            return Option.some([parts, { _tag: "Following", run, after, exits, beatAt }] as const)
          }
        }
      })

    const initial: TailState = Option.isSome(found)
      ? { _tag: "Reading", run: found.value, after: start, first: true, end: false, beatAt: beatOf(found.value) }
      : { _tag: "Waiting" }
    return Stream.unfoldChunkEffect(initial, step)
  }))
