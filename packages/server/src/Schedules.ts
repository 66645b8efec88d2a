/**
 * The live schedule table (D3): loaded from `[schedules.<agent>]`, validated atomically, `R`
 * resolved stably per agent/schedule, hot-reloaded on SIGHUP and on change of the config file,
 * pause flags persisted in the Store.
 *
 * The table lives in a `SubscriptionRef` and is swapped whole. Sessions are told "the table may
 * have changed" and each one compares versions with what its agent last got, so a push never
 * races a session's own initial send (see `WorkerSession`).
 */
import * as Config from "@barto/domain/Config"
import * as Logging from "@barto/domain/Logging"
import { Micros, type ScheduleSpec } from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as fs from "node:fs"
import * as path from "node:path"
import { AgentSessions } from "./internal/agentSessions.js"
import * as ScheduleTable from "./internal/scheduleTable.js"
import type { ScheduleLoadError } from "./internal/scheduleTable.js"
import { Metrics } from "./Metrics.js"
import { Store, type StoreError } from "./Store.js"

// Defined beside the pure table that produces it (`internal/scheduleTable.ts` imports nothing
// from this module, so the two do not form a cycle); public from here.
export { ScheduleLoadError } from "./internal/scheduleTable.js"

/**
 * The last time the configuration was (re)loaded; the start is the first. Exported on /metrics
 * and shown by `barto-cli info`, so a rejected reload is seen without reading the log file.
 */
export interface ReloadState {
  readonly at: Micros
  readonly result: "loaded" | "applied" | "unchanged" | "rejected"
  /** The problems of a rejected reload, one per line. */
  readonly error: string | undefined
  /** The last accepted load (the table in use since then). */
  readonly lastSuccessAt: Micros
}

export interface SchedulesShape {
  /** agent -> specs, paused flags applied. */
  readonly all: Effect.Effect<ReadonlyMap<string, ReadonlyArray<ScheduleSpec>>>
  readonly forAgent: (agent: string) => Effect.Effect<ReadonlyArray<ScheduleSpec>>
  /** false: unknown schedule; persists via Store.setPaused, pushes the agent's new table. */
  readonly setPaused: (agent: string, schedule: string, paused: boolean) => Effect.Effect<boolean, StoreError>
  /**
   * Re-reads the pause flags from the Store and pushes the agents whose table changed: another
   * bartos on the same database paused or resumed one of them (issue 18, `Cluster.ts`).
   */
  readonly refreshPaused: Effect.Effect<void, StoreError>
  /** Same as SIGHUP. */
  readonly reload: Effect.Effect<"applied" | "unchanged", ScheduleLoadError>
  readonly lastReload: Effect.Effect<ReloadState>
}

export class Schedules extends Context.Tag("@barto/server/Schedules")<Schedules, SchedulesShape>() {}

/** The `[schedules]` section of one config load, and the file it came from. */
export interface LoadedSchedules {
  readonly file: string | undefined
  readonly schedules: ScheduleTable.SchedulesConfig
  /** Where a key path is written in `file`, for errors (`Config.keyLocator`). */
  readonly locate?: ScheduleTable.Locate | undefined
}

export interface Options {
  readonly initial: LoadedSchedules
  /** A full config load (same sources and precedence as at start), for every reload. */
  readonly load: Effect.Effect<LoadedSchedules, ScheduleLoadError>
  /** Config file whose changes trigger a reload (its directory is watched); none: SIGHUP only. */
  readonly watchFile?: string | undefined
  /** Listen for SIGHUP (default true). */
  readonly sighup?: boolean
  readonly debounceMs?: number
}

interface State {
  readonly base: ScheduleTable.Table
  readonly paused: ReadonlySet<string>
  readonly view: ScheduleTable.Table
}

type Trigger = "sighup" | "file"

// At WARN, and on stderr too: bartos keeps running on the old table, and the operator who edited
// the file must see that the edit did not take, not only whoever reads the log file.
/** The table of an agent without schedules: one array, so what is derived from it is cached once (WorkerSession). */
const NO_SPECS: ReadonlyArray<ScheduleSpec> = []

const logLoadError = (e: ScheduleLoadError) =>
  Effect.forEach(
    e.problems,
    (p) => Effect.logWarning(`schedule reload rejected, keeping the current table: ${Config.formatProblem(p)}`)
  ).pipe(
    Effect.annotateLogs({ file: e.file ?? "", key: e.path }),
    Logging.toStderr
  )

export const make = (
  options: Options
): Effect.Effect<SchedulesShape, ScheduleLoadError | StoreError, Store | AgentSessions | Metrics | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* Store
    const sessions = yield* AgentSessions
    const metrics = yield* Metrics
    const base = yield* ScheduleTable.build(options.initial.file, options.initial.schedules, options.initial.locate)
    const paused = new Set((yield* store.paused()).map((p) => ScheduleTable.pausedKey(p.agent, p.schedule)))
    const state = yield* SubscriptionRef.make<State>({ base, paused, view: ScheduleTable.applyPaused(base, paused) })
    const lock = yield* Effect.makeSemaphore(1)
    const startedAt = Micros.make((yield* Clock.currentTimeMillis) * 1000)
    const initial: ReloadState = { at: startedAt, result: "loaded", error: undefined, lastSuccessAt: startedAt }
    const lastReload = yield* Ref.make(initial)
    const publish = (s: ReloadState) =>
      Effect.zipRight(
        metrics.set("bartos_config_last_reload_successful", s.result === "rejected" ? 0 : 1),
        metrics.set("bartos_config_last_reload_success_timestamp_seconds", Math.floor(s.lastSuccessAt / 1_000_000))
      )
    yield* publish(initial)
    const recordReload = (result: ReloadState["result"], error?: string) =>
      Effect.gen(function*() {
        const at = Micros.make((yield* Clock.currentTimeMillis) * 1000)
        yield* publish(
          yield* Ref.updateAndGet(lastReload, (previous) => ({
            at,
            result,
            error,
            lastSuccessAt: result === "rejected" ? previous.lastSuccessAt : at
          }))
        )
      })

    const push = (agents: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const wanted = new Set(agents)
        const handles = (yield* sessions.handles).filter((h) => wanted.has(h.connection.agent))
        yield* Effect.forEach(handles, (h) => h.syncTable, { concurrency: 64, discard: true })
      })

    const reload: Effect.Effect<"applied" | "unchanged", ScheduleLoadError> = lock.withPermits(1)(
      Effect.gen(function*() {
        const loaded = yield* options.load
        const next = yield* ScheduleTable.build(loaded.file, loaded.schedules, loaded.locate)
        const current = yield* SubscriptionRef.get(state)
        if (ScheduleTable.equals(next, current.base)) {
          yield* Effect.logInfo("schedules unchanged")
          yield* metrics.add("bartos_schedule_reloads_total", 1, { result: "unchanged" })
          yield* recordReload("unchanged")
          return "unchanged" as const
        }
        const view = ScheduleTable.applyPaused(next, current.paused)
        const changed = ScheduleTable.changedAgents(current.view, view)
        yield* SubscriptionRef.set(state, { base: next, paused: current.paused, view })
        const count = [...next.values()].reduce((n, specs) => n + specs.length, 0)
        yield* Effect.logInfo(
          `schedules reloaded: ${next.size} agents, ${count} schedules; changed: ${changed.join(", ") || "none"}`
        )
        yield* metrics.add("bartos_schedule_reloads_total", 1, { result: "applied" })
        yield* recordReload("applied")
        yield* push(changed)
        return "applied" as const
      }).pipe(
        Effect.tapError((e) =>
          logLoadError(e).pipe(
            Effect.zipRight(metrics.add("bartos_schedule_reloads_total", 1, { result: "rejected" })),
            Effect.zipRight(recordReload("rejected", e.message))
          )
        )
      )
    )

    const setPaused = (agent: string, schedule: string, pause: boolean) =>
      lock.withPermits(1)(
        Effect.gen(function*() {
          const current = yield* SubscriptionRef.get(state)
          const known = (current.base.get(agent) ?? []).some((s) => s.name === schedule)
          if (!known) return false
          yield* store.setPaused(agent, schedule, pause)
          const key = ScheduleTable.pausedKey(agent, schedule)
          const nextPaused = new Set(current.paused)
          if (pause) nextPaused.add(key)
          else nextPaused.delete(key)
          yield* SubscriptionRef.set(state, {
            base: current.base,
            paused: nextPaused,
            view: ScheduleTable.applyPaused(current.base, nextPaused)
          })
          yield* Effect.logInfo(`schedule ${agent}/${schedule} ${pause ? "paused" : "resumed"}`)
          yield* push([agent])
          return true
        })
      )

    const refreshPaused = lock.withPermits(1)(
      Effect.gen(function*() {
        const stored = new Set((yield* store.paused()).map((p) => ScheduleTable.pausedKey(p.agent, p.schedule)))
        const current = yield* SubscriptionRef.get(state)
        if (stored.size === current.paused.size && [...stored].every((k) => current.paused.has(k))) return
        const view = ScheduleTable.applyPaused(current.base, stored)
        const changed = ScheduleTable.changedAgents(current.view, view)
        yield* SubscriptionRef.set(state, { base: current.base, paused: stored, view })
        yield* push(changed)
      })
    )

    // --- triggers: SIGHUP and the config file's directory, debounced, bursts collapsed ---------
    const triggers = yield* Queue.unbounded<Trigger>()
    yield* Effect.addFinalizer(() => Queue.shutdown(triggers))
    if (options.sighup ?? true) {
      const onHup = () => {
        Queue.unsafeOffer(triggers, "sighup")
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => process.on("SIGHUP", onHup)),
        () => Effect.sync(() => process.off("SIGHUP", onHup))
      )
    }
    const watchFile = options.watchFile === undefined ? undefined : path.resolve(options.watchFile)
    const mtimeOf = (file: string) =>
      Effect.sync(() => {
        try {
          return Option.some(fs.statSync(file).mtimeMs)
        } catch {
          return Option.none<number>()
        }
      })
    let lastMtime = watchFile === undefined ? Option.none<number>() : yield* mtimeOf(watchFile)
    if (watchFile !== undefined && fs.existsSync(path.dirname(watchFile))) {
      const base = path.basename(watchFile)
      yield* Effect.acquireRelease(
        Effect.try(() =>
          fs.watch(path.dirname(watchFile), { persistent: false }, (_event, filename) => {
            if (filename === null || filename.toString() === base) Queue.unsafeOffer(triggers, "file")
          })
        ).pipe(
          Effect.tap((w) => Effect.sync(() => w.on("error", () => {}))),
          Effect.map(Option.some),
          Effect.catchAll((e) =>
            Effect.logWarning(`cannot watch ${watchFile} for changes (SIGHUP still reloads): ${String(e.error)}`).pipe(
              Effect.as(Option.none<fs.FSWatcher>())
            )
          )
        ),
        (w) => Effect.sync(() => Option.map(w, (w) => w.close()))
      )
    }
    const debounce = Duration.millis(options.debounceMs ?? 400)
    // The triggers that arrive until none has for `debounce`, as one reload.
    const collapse = (first: Trigger): Effect.Effect<ReadonlySet<Trigger>> =>
      Effect.suspend(() => {
        const seen = new Set<Trigger>([first])
        return Queue.take(triggers).pipe(
          Effect.timeout(debounce),
          Effect.tap((more) => seen.add(more)),
          Effect.forever,
          Effect.catchTag("TimeoutException", () => Effect.succeed(seen))
        )
      })
    yield* Queue.take(triggers).pipe(
      Effect.flatMap(collapse),
      Effect.flatMap((seen) =>
        Effect.gen(function*() {
          if (watchFile !== undefined) {
            const mtime = yield* mtimeOf(watchFile)
            const moved = !Option.getEquivalence<number>((a, b) => a === b)(mtime, lastMtime)
            lastMtime = mtime
            // An event on the file whose mtime did not move is noise (an editor's touch of the
            // directory, a rename of a sibling): the reference skips it too.
            if (!seen.has("sighup") && (!moved || Option.isNone(mtime))) return
          }
          yield* Effect.logInfo(`reloading schedules (${[...seen].join(", ")})`)
          yield* reload.pipe(Effect.ignore)
        })
      ),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )

    const all = SubscriptionRef.get(state).pipe(Effect.map((s) => s.view))
    return {
      all,
      forAgent: (agent) => Effect.map(all, (view) => view.get(agent) ?? NO_SPECS),
      setPaused,
      refreshPaused,
      reload,
      lastReload: Ref.get(lastReload)
    } satisfies SchedulesShape
  })

export const layer = (
  options: Options
): Layer.Layer<Schedules, ScheduleLoadError | StoreError, Store | AgentSessions | Metrics> =>
  Layer.scoped(Schedules, make(options))

/** A validated table outside any service, e.g. to check a config at start. */
export const validate = (loaded: LoadedSchedules): Either.Either<ScheduleTable.Table, ScheduleLoadError> =>
  ScheduleTable.build(loaded.file, loaded.schedules, loaded.locate)
