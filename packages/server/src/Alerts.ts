/**
 * Alerting on bartos (issue 14): derives events from what agents report and from what they fail
 * to report, keeps incidents, and delivers notifications from the durable queue.
 *
 * Everything runs in `evaluator`, one scoped layer started from one place in Main, so that a
 * leader lease (several bartos on one MariaDB) can gate it as a whole:
 * - from `Ingested` batches (after their transaction committed): `failed`, `timed_out`, `missed`,
 *   and `recovered` (the first success of a schedule with an open incident);
 * - every `[alerts] check_interval`: `late` (an occurrence of the calendar with no run
 *   `late_after` past its time: computed here from the calendar, so an agent that is offline or
 *   silent is caught), `stalled` (a running run with no output and no heartbeat for `stall_after`), `overran`
 *   (running longer than `expected_duration`), `agent_down` (no session for `agent_down_after`)
 *   and `agent_up`, and reminders of notified open incidents;
 * - at start, finished runs of the last `[alerts] catch_up` are derived again: events lost to a
 *   crash between a batch's commit and its derivation are found (each event's dedupe key makes
 *   the second derivation a no-op);
 * - the delivery worker sends due deliveries, each attempt recorded, with capped backoff.
 *
 * Event, incident change and queued deliveries are one transaction (internal/store/alerts.ts).
 */
import type * as Config from "@barto/domain/Config"
import * as Calendar from "@barto/scheduler/Calendar"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import { randomUUID } from "node:crypto"
import { Ingested } from "./Events.js"
import { resolve, type Settings } from "./internal/alerts/policy.js"
import { scheduleSeries } from "./internal/alerts/scheduleMetrics.js"
import type { NewEvent, RunInfo } from "./internal/store/alerts.js"
import { Leader } from "./Leader.js"
import { Metrics } from "./Metrics.js"
import * as Notify from "./Notify.js"
import { Registry } from "./Registry.js"
import { Schedules } from "./Schedules.js"
import { Store, type StoreError } from "./Store.js"

export interface EvaluatorOptions {
  /** The configuration in force: read on every check, so a reload applies without a restart. */
  readonly config: Effect.Effect<Config.BartosConfig>
}

/** How often the per-schedule series of /metrics are recomputed from the database. */
export const METRICS_REFRESH = "10 seconds"

/** The last output lines a run event carries (mail body, webhook `detail.output`). */
export const OUTPUT_LINES = 20

const settingsFor = (config: Config.BartosConfig, agent: string, schedule: string | null): Settings => {
  const section = config.schedules[agent]
  const entry = schedule === null ? undefined : section?.schedules.find((s) => s.name === schedule)
  return resolve([entry, section, config.alerts])
}

const RUN_KINDS: Readonly<Record<string, "failed" | "timed_out" | "missed" | undefined>> = {
  failed: "failed",
  timed_out: "timed_out",
  missed: "missed"
}

const iso = (micros: number | null) => (micros === null ? null : new Date(Math.floor(micros / 1000)).toISOString())

/** The one place alert evaluation and delivery start (Main); a leader lease gates this layer whole. */
export const evaluator = (
  options: EvaluatorOptions
): Layer.Layer<never, never, Store | Schedules | Registry | Ingested | Metrics | Leader> =>
  Layer.scopedDiscard(Effect.gen(function*() {
    // Several bartos on one MariaDB: only the leader derives events and delivers (issue 18);
    // a term's scope holds every fiber below, so losing the lease stops them all.
    const leader = yield* Leader
    yield* Effect.forkScoped(leader.whileLeader("alerts", Effect.scoped(Effect.zipRight(term(options), Effect.never))))
  }))

const term = (options: EvaluatorOptions) =>
  Effect.gen(function*() {
    const store = yield* Store
    const alerts = store.alerts
    const schedules = yield* Schedules
    const registry = yield* Registry
    const ingested = yield* Ingested
    const metrics = yield* Metrics
    const lock = yield* Effect.makeSemaphore(1)
    const wake = yield* Queue.sliding<void>(1)
    const nowMicros = Effect.map(Clock.currentTimeMillis, (ms) => ms * 1000)
    const startMs = yield* Clock.currentTimeMillis

    const logFailure = (what: string) => (e: StoreError) => Effect.logWarning(`alerts: ${what}: ${e.message}`)

    const record = (event: Omit<NewEvent, "eventId">, extra?: Record<string, unknown>) =>
      Effect.gen(function*() {
        const config = yield* options.config
        const now = yield* nowMicros
        const outcome = yield* alerts.record(
          { ...event, eventId: randomUUID() },
          settingsFor(config, event.agent, event.schedule),
          now,
          extra
        )
        if (outcome._tag === "Recorded") {
          yield* metrics.add("bartos_alert_events_total", 1, { kind: event.kind })
          yield* Effect.logInfo(
            `alert event ${event.kind} ${event.agent}${event.schedule === null ? "" : `/${event.schedule}`}` +
              (outcome.queued > 0 ? `: ${outcome.queued} notification(s) queued` : "")
          )
          if (outcome.queued > 0) yield* Queue.offer(wake, undefined)
        }
        return outcome
      }).pipe(lock.withPermits(1))

    const runDetail = (run: RunInfo) =>
      Effect.map(alerts.lastLines(run.runId, OUTPUT_LINES), (output) => ({
        state: run.state,
        exit_code: run.exitCode,
        signal: run.signal,
        reason: run.reason,
        scheduled_at: iso(run.scheduledAt),
        started_at: iso(run.startedAt),
        finished_at: iso(run.finishedAt),
        duration_secs: run.startedAt !== null && run.finishedAt !== null
          ? (run.finishedAt - run.startedAt) / 1e6
          : null,
        output
      }))

    /** A final run: its event, or `recovered` when it succeeded and its schedule has an open incident. */
    const deriveRun = (run: RunInfo) =>
      Effect.gen(function*() {
        const kind = RUN_KINDS[run.state]
        // A paused schedule's occurrences are missed on purpose.
        if (kind === "missed" && run.reason === "paused") return
        if (kind !== undefined) {
          yield* record({
            dedupeKey: `${kind}:${run.runId}`,
            kind,
            agent: run.agent,
            schedule: run.schedule,
            runId: run.runId,
            at: run.finishedAt ?? run.scheduledAt,
            detail: yield* runDetail(run)
          })
          return
        }
        if (run.state !== "succeeded") return
        const open = yield* alerts.openIncident(run.agent, run.schedule)
        if (open === undefined || (run.finishedAt ?? 0) < open.openedAt) return
        yield* record({
          dedupeKey: `recovered:${open.incidentId}`,
          kind: "recovered",
          agent: run.agent,
          schedule: run.schedule,
          runId: run.runId,
          at: run.finishedAt ?? (yield* nowMicros),
          detail: yield* runDetail(run)
        })
      })

    // --- activity of running runs (stall detection) ---------------------------------------------
    /** runId -> newest output line or heartbeat (µs); filled from batches, and from the store for runs seen first. */
    const activity = new Map<string, number>()

    // Subscribe before the catch-up read, so a batch committed in between is seen by one of them.
    const subscription = yield* PubSub.subscribe(ingested)
    const onBatch = Effect.gen(function*() {
      const batch = yield* Queue.take(subscription)
      for (const r of batch.records) {
        if (r._tag === "OutputLine" || r._tag === "Heartbeat") {
          activity.set(r.runId, Math.max(activity.get(r.runId) ?? 0, r.ts))
        } else if (r._tag === "RunFinished") {
          activity.delete(r.runId)
          const run = yield* alerts.run(r.runId)
          if (run !== undefined) yield* deriveRun(run)
        } else if (r._tag === "RunMissed") {
          const run = yield* alerts.run(r.runId)
          if (run !== undefined) yield* deriveRun(run)
        }
      }
    }).pipe(Effect.catchAll(logFailure("deriving events from a batch")))

    // --- late / stalled / overran / agent_down ---------------------------------------------------
    const lateCursor = new Map<string, number>()
    const calendars = new Map<string, Calendar.Calendar | null>()
    const calendarOf = (agent: string, name: string, text: string) => {
      const key = `${agent}\u0000${name}\u0000${text}`
      let cal = calendars.get(key)
      if (cal === undefined) {
        const parsed = Calendar.parse(text, { agent, schedule: name })
        cal = Either.isRight(parsed) ? parsed.right : null
        calendars.set(key, cal)
      }
      return cal
    }
    /** agent -> down since (ms); -1: connected at the last check. */
    const downSince = new Map<string, number>()
    const downReported = new Set<string>()
    for (const incident of yield* alerts.openIncidents().pipe(Effect.orElseSucceed(() => []))) {
      if (incident.schedule === null) downReported.add(incident.agent)
    }

    const checkLate = (config: Config.BartosConfig, nowMs: number) =>
      Effect.gen(function*() {
        const table = yield* schedules.all
        for (const [agent, specs] of table) {
          for (const spec of specs) {
            const key = `${agent}\u0000${spec.name}`
            const lateAfter = settingsFor(config, agent, spec.name).lateAfterSecs
            if (lateAfter === undefined || spec.paused) {
              lateCursor.set(key, nowMs)
              continue
            }
            const cal = calendarOf(agent, spec.name, spec.calendar)
            if (cal === null) continue
            let cursor = lateCursor.get(key) ?? startMs
            // Bounded per check: a calendar firing every second cannot stall the loop.
            for (let i = 0; i < 100; i++) {
              const at = Calendar.next(cal, cursor)
              if (at === undefined || at + lateAfter * 1000 > nowMs) break
              cursor = at
              if (yield* alerts.occurrenceSeen(agent, spec.name, at * 1000)) continue
              yield* record({
                dedupeKey: `late:${agent}\u0000${spec.name}@${at}`,
                kind: "late",
                agent,
                schedule: spec.name,
                runId: null,
                at: (at + lateAfter * 1000) * 1000,
                detail: {
                  occurrence: new Date(at).toISOString(),
                  late_after_secs: lateAfter,
                  message: `the occurrence of ${new Date(at).toISOString()} did not start within ${lateAfter}s`
                }
              })
            }
            lateCursor.set(key, cursor)
          }
        }
      })

    /** Dedupe keys of stalled/overran events recorded by this process; forgotten when the run ends. */
    const firedRunEvents = new Set<string>()
    const checkRunning = (config: Config.BartosConfig, nowUs: number) =>
      Effect.gen(function*() {
        const running = yield* alerts.running()
        if (firedRunEvents.size > 0) {
          const live = new Set(running.map((r) => r.runId))
          for (const key of firedRunEvents) if (!live.has(key.slice(key.indexOf(":") + 1))) firedRunEvents.delete(key)
        }
        for (const run of running) {
          const s = settingsFor(config, run.agent, run.schedule)
          if (s.stallAfterSecs === undefined && s.expectedDurationSecs === undefined) continue
          const started = run.startedAt ?? run.scheduledAt
          /** A once-per-run event of a running run (remembered, so later checks skip the store). */
          const runningEvent = (kind: "stalled" | "overran", detail: Record<string, unknown>) => {
            const dedupeKey = `${kind}:${run.runId}`
            if (firedRunEvents.has(dedupeKey)) return Effect.void
            firedRunEvents.add(dedupeKey)
            return record({
              dedupeKey,
              kind,
              agent: run.agent,
              schedule: run.schedule,
              runId: run.runId,
              at: nowUs,
              detail: { state: "running", started_at: iso(started), ...detail }
            })
          }
          if (s.stallAfterSecs !== undefined) {
            let last = activity.get(run.runId)
            if (last === undefined) {
              last = Math.max(started, (yield* alerts.lastOutputAt(run.runId)) ?? 0)
              activity.set(run.runId, last)
            }
            const silent = nowUs - Math.max(last, started)
            if (silent >= s.stallAfterSecs * 1e6) {
              yield* runningEvent("stalled", {
                last_activity_at: iso(Math.max(last, started)),
                stall_after_secs: s.stallAfterSecs,
                output: yield* alerts.lastLines(run.runId, OUTPUT_LINES),
                message: `no output and no heartbeat for ${Math.round(silent / 1e5) / 10}s`
              })
            }
          }
          if (s.expectedDurationSecs !== undefined && nowUs - started > s.expectedDurationSecs * 1e6) {
            yield* runningEvent("overran", {
              expected_duration_secs: s.expectedDurationSecs,
              message: `running for more than ${s.expectedDurationSecs}s (expected_duration); not stopped`
            })
          }
        }
      })

    const checkAgents = (config: Config.BartosConfig, nowMs: number) =>
      Effect.gen(function*() {
        const table = yield* schedules.all
        for (const agent of table.keys()) {
          const connected = Option.isSome(yield* registry.get(agent))
          if (connected) {
            // Down from the first check that finds it gone (within check_interval of the drop).
            downSince.set(agent, -1)
            if (!downReported.has(agent)) continue
            downReported.delete(agent)
            const open = yield* alerts.openIncident(agent, null)
            if (open === undefined) continue
            yield* record({
              dedupeKey: `agent_up:${open.incidentId}`,
              kind: "agent_up",
              agent,
              schedule: null,
              runId: null,
              at: nowMs * 1000,
              detail: { message: `${agent} is connected again` }
            })
            continue
          }
          // Never connected since this bartos started: down since the start.
          const known = downSince.get(agent)
          const since = known === undefined ? startMs : known === -1 ? nowMs : known
          downSince.set(agent, since)
          if (downReported.has(agent) || nowMs - since < config.alerts.agent_down_after * 1000) continue
          downReported.add(agent)
          yield* record({
            dedupeKey: `agent_down:${agent}@${since}`,
            kind: "agent_down",
            agent,
            schedule: null,
            runId: null,
            at: nowMs * 1000,
            detail: {
              down_since: new Date(since).toISOString(),
              agent_down_after_secs: config.alerts.agent_down_after,
              message: `${agent} has had no session since ${new Date(since).toISOString()}`
            }
          })
        }
      })

    const checkReminders = (config: Config.BartosConfig, nowUs: number) =>
      Effect.gen(function*() {
        const interval = config.alerts.reminder_interval
        if (interval === undefined) return
        for (const incident of yield* alerts.openIncidents()) {
          if (incident.notifiedAt === null || (incident.lastNoticeAt ?? 0) + interval * 1e6 > nowUs) continue
          const s = settingsFor(config, incident.agent, incident.schedule)
          if (s.to.length === 0) continue
          const queued = yield* alerts.remind(
            incident,
            {
              eventId: randomUUID(),
              dedupeKey: `reminder:${incident.incidentId}#${incident.reminders + 1}`,
              kind: incident.firstKind as NewEvent["kind"],
              agent: incident.agent,
              schedule: incident.schedule,
              runId: null,
              at: nowUs,
              detail: { message: `incident open since ${iso(incident.openedAt)}, ${incident.badEvents} bad event(s)` }
            },
            s.to,
            nowUs
          ).pipe(lock.withPermits(1))
          if (queued > 0) yield* Queue.offer(wake, undefined)
        }
      })

    const check = Effect.gen(function*() {
      const config = yield* options.config
      const nowMs = yield* Clock.currentTimeMillis
      yield* checkLate(config, nowMs).pipe(Effect.catchAll(logFailure("late check")))
      yield* checkRunning(config, nowMs * 1000).pipe(Effect.catchAll(logFailure("stall check")))
      yield* checkAgents(config, nowMs).pipe(Effect.catchAll(logFailure("agent check")))
      yield* checkReminders(config, nowMs * 1000).pipe(Effect.catchAll(logFailure("reminders")))
    })

    // --- delivery --------------------------------------------------------------------------------
    const deliverDue = Effect.gen(function*() {
      const config = yield* options.config
      const now = yield* nowMicros
      const due = yield* alerts.due(now, 50)
      for (const d of due) {
        const channel = config.notify[d.channel]
        const attempts = d.attempts + 1
        if (channel === undefined) {
          yield* alerts.attemptFailed(
            d.deliveryId,
            attempts,
            `no [notify.${d.channel}] channel configured`,
            now,
            undefined
          )
          yield* metrics.add("bartos_alert_deliveries_total", 1, { channel: d.channel, result: "failed" })
          continue
        }
        const result = yield* Effect.either(Notify.deliver(channel, d.eventId, d.payload))
        const after = yield* nowMicros
        if (Either.isRight(result)) {
          yield* alerts.delivered(d.deliveryId, attempts, after)
          yield* metrics.add("bartos_alert_deliveries_total", 1, { channel: d.channel, result: "delivered" })
          yield* Effect.logInfo(`notification ${d.deliveryId} delivered (attempt ${attempts})`)
        } else {
          const giveUp = attempts >= channel.max_attempts
          const nextAt = giveUp ? undefined : after + Notify.backoffSecs(channel, attempts) * 1e6
          yield* alerts.attemptFailed(d.deliveryId, attempts, result.left.reason, after, nextAt)
          yield* metrics.add("bartos_alert_deliveries_total", 1, {
            channel: d.channel,
            result: giveUp ? "failed" : "retry"
          })
          yield* Effect.logWarning(
            `notification ${d.deliveryId} attempt ${attempts} failed: ${result.left.reason}` +
              (giveUp ? "; giving up (max_attempts)" : "")
          )
        }
      }
    }).pipe(Effect.catchAll(logFailure("delivering notifications")))

    const catchUp = Effect.gen(function*() {
      const config = yield* options.config
      const since = (startMs - config.alerts.catch_up * 1000) * 1000
      const runs = yield* alerts.finishedSince(since, 100_000)
      for (const run of runs) yield* deriveRun(run)
    }).pipe(Effect.catchAll(logFailure("catch-up")))

    const refreshMetrics = Effect.gen(function*() {
      const config = yield* options.config
      const table = yield* schedules.all
      const stats = yield* alerts.scheduleStats()
      const connected = new Set((yield* registry.list).map((c) => c.name))
      const configured = [...table].map(([agent, specs]) => [agent, specs.map((s) => s.name)] as const)
      for (const [name, series] of scheduleSeries(configured, stats, config.limits.metrics_max_schedules, connected)) {
        yield* metrics.replace(name, series)
      }
    }).pipe(Effect.catchAll(logFailure("metrics refresh")))

    // `[retention] max_age_days` applies to the alert tables too (settled rows only).
    const prune = Effect.gen(function*() {
      const days = (yield* options.config).retention.max_age_days
      if (days === undefined) return
      const deleted = yield* alerts.prune((yield* nowMicros) - days * 86_400 * 1e6)
      if (deleted > 0) yield* Effect.logInfo(`retention: deleted ${deleted} alert rows`)
    }).pipe(Effect.catchAll(logFailure("retention of alert tables")))

    const interval = yield* Effect.map(options.config, (c) => Math.max(50, Math.round(c.alerts.check_interval * 1000)))
    yield* Effect.forkScoped(Effect.zipRight(catchUp, Effect.forever(onBatch)))
    yield* Effect.forkScoped(Effect.delay(Effect.forever(Effect.zipRight(prune, Effect.sleep("1 hour"))), "1 minute"))
    // Database-wide reads: often enough for a scrape interval, rare enough for a big runs table.
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(refreshMetrics, Effect.sleep(METRICS_REFRESH))))
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(check, Effect.sleep(interval))))
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(
      deliverDue,
      Effect.race(Queue.take(wake), Effect.sleep(interval))
    )))
  })
