/**
 * Alert persistence (issue 14): events, incidents and the delivery queue, with their migrations
 * (0022–0028, in migrations.ts). Kept out of make.ts: the store core ingests records, this file records what they
 * mean.
 *
 * - `alert_events`: every derived event, unique on `dedupe_key` ("failed:<run>", "late:<agent>
 *   <schedule>@<occurrence>"), so deriving again after a crash or a re-sent batch is a no-op.
 * - `alert_incidents`: `open_key` is the subject while open and NULL once closed; its UNIQUE index
 *   keeps one open incident per subject (NULLs never collide on either database).
 * - `alert_deliveries`: one row per (event, channel), written in the event's transaction, so a
 *   notification is queued exactly when its event is recorded and survives a restart; the worker
 *   delivers at least once, receivers deduplicate by event id.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import {
  decide,
  type Decision,
  type EventKind,
  type OpenIncident,
  type Settings,
  subjectKey
} from "../alerts/policy.js"
import { StoreError } from "./errors.js"

export const ALERT_TABLES = ["alert_events", "alert_incidents", "alert_deliveries"] as const

/** An event as derived, before it is recorded. `at` and every instant: microseconds UTC. */
export interface NewEvent {
  readonly eventId: string
  readonly dedupeKey: string
  readonly kind: EventKind
  readonly agent: string
  /** null: the agent itself (agent_down, agent_up). */
  readonly schedule: string | null
  readonly runId: string | null
  readonly at: number
  readonly detail: Readonly<Record<string, unknown>>
}

export interface IncidentRow {
  readonly incidentId: string
  readonly agent: string
  readonly schedule: string | null
  readonly firstKind: string
  readonly openedAt: number
  readonly closedAt: number | null
  readonly badEvents: number
  readonly notifiedAt: number | null
  readonly lastNoticeAt: number | null
  readonly reminders: number
  readonly lastEventId: string
}

export interface DeliveryRow {
  readonly deliveryId: string
  readonly eventId: string
  readonly channel: string
  readonly state: "pending" | "delivered" | "failed"
  readonly attempts: number
  readonly createdAt: number
  readonly nextAt: number
  readonly updatedAt: number
  readonly lastError: string | null
  /** The body every attempt sends, byte for byte (the signature covers it). */
  readonly payload: string
}

/** A recorded event as the console lists it (`detail`: the JSON it was stored with). */
export interface EventRow {
  readonly eventId: string
  readonly kind: string
  readonly agent: string
  readonly schedule: string | null
  readonly runId: string | null
  readonly at: number
  readonly incidentId: string | null
  readonly detail: string
}

export interface RecordOutcome {
  readonly _tag: "Duplicate" | "Recorded"
  readonly decision: Decision | undefined
  readonly incidentId: string | null
  /** Deliveries queued with it. */
  readonly queued: number
}

/** The JSON body of a notification (README "Webhook body"); `incident` as after the event. */
export const payloadOf = (
  event: NewEvent,
  incident: {
    readonly incidentId: string
    readonly openedAt: number
    readonly state: "open" | "closed"
    readonly badEvents: number
  } | null,
  extra: Readonly<Record<string, unknown>> = {}
): string =>
  JSON.stringify({
    id: event.eventId,
    kind: event.kind,
    agent: event.agent,
    schedule: event.schedule,
    run_id: event.runId,
    at: new Date(Math.floor(event.at / 1000)).toISOString(),
    incident: incident === null ? null : {
      id: incident.incidentId,
      state: incident.state,
      opened_at: new Date(Math.floor(incident.openedAt / 1000)).toISOString(),
      bad_events: incident.badEvents
    },
    ...extra,
    detail: event.detail
  })

const num = (u: unknown): number => (typeof u === "number" ? u : Number(u))
const numOrNull = (u: unknown): number | null => (u === null || u === undefined ? null : num(u))
const strOrNull = (u: unknown): string | null => (u === null || u === undefined ? null : String(u))

const toIncident = (r: Record<string, unknown>): IncidentRow => ({
  incidentId: String(r.incident_id),
  agent: String(r.agent),
  schedule: strOrNull(r.schedule),
  firstKind: String(r.first_kind),
  openedAt: num(r.opened_at),
  closedAt: numOrNull(r.closed_at),
  badEvents: num(r.bad_events),
  notifiedAt: numOrNull(r.notified_at),
  lastNoticeAt: numOrNull(r.last_notice_at),
  reminders: num(r.reminders),
  lastEventId: String(r.last_event_id)
})

const toDelivery = (r: Record<string, unknown>): DeliveryRow => ({
  deliveryId: String(r.delivery_id),
  eventId: String(r.event_id),
  channel: String(r.channel),
  state: String(r.state) as DeliveryRow["state"],
  attempts: num(r.attempts),
  createdAt: num(r.created_at),
  nextAt: num(r.next_at),
  updatedAt: num(r.updated_at),
  lastError: strOrNull(r.last_error),
  payload: String(r.payload)
})

export interface RunInfo {
  readonly runId: string
  readonly agent: string
  readonly schedule: string
  readonly state: string
  readonly scheduledAt: number
  readonly startedAt: number | null
  readonly finishedAt: number | null
  readonly exitCode: number | null
  readonly signal: string | null
  readonly reason: string | null
}

const toEvent = (r: Record<string, unknown>): EventRow => ({
  eventId: String(r.event_id),
  kind: String(r.kind),
  agent: String(r.agent),
  schedule: strOrNull(r.schedule),
  runId: strOrNull(r.run_id),
  at: num(r.at),
  incidentId: strOrNull(r.incident_id),
  detail: String(r.detail)
})

const toRun = (r: Record<string, unknown>): RunInfo => ({
  runId: String(r.run_id),
  agent: String(r.agent),
  schedule: String(r.schedule),
  state: String(r.state),
  scheduledAt: num(r.scheduled_at),
  startedAt: numOrNull(r.started_at),
  finishedAt: numOrNull(r.finished_at),
  exitCode: numOrNull(r.exit_code),
  signal: strOrNull(r.exit_signal),
  reason: strOrNull(r.reason)
})

const RUN_COLUMNS =
  "run_id, agent, schedule, state, scheduled_at, started_at, finished_at, exit_code, exit_signal, reason"

export interface ScheduleStats {
  readonly runs: ReadonlyArray<{
    readonly agent: string
    readonly schedule: string
    readonly state: string
    readonly count: number
    readonly lastFinishedAt: number | null
  }>
  /** The newest finished run of each schedule that has one. */
  readonly last: ReadonlyArray<{ readonly agent: string; readonly schedule: string; readonly durationSecs: number }>
  readonly events: ReadonlyArray<
    { readonly agent: string; readonly schedule: string; readonly kind: string; readonly count: number }
  >
  readonly openIncidents: number
  readonly deliveries: ReadonlyArray<{ readonly state: string; readonly count: number }>
}

export interface AlertStoreShape {
  /**
   * Records the event unless its dedupe key is known, applies `decide` to its subject's incident
   * and queues one delivery per channel when it notifies: one transaction.
   */
  readonly record: (
    event: NewEvent,
    settings: Settings,
    now: number,
    extra?: Readonly<Record<string, unknown>>
  ) => Effect.Effect<RecordOutcome, StoreError>
  /** Whether an event with this dedupe key was recorded. */
  readonly known: (dedupeKey: string) => Effect.Effect<boolean, StoreError>
  readonly openIncident: (agent: string, schedule: string | null) => Effect.Effect<IncidentRow | undefined, StoreError>
  readonly openIncidents: () => Effect.Effect<ReadonlyArray<IncidentRow>, StoreError>
  /** Records a reminder event for a notified incident and queues its deliveries; returns how many. */
  readonly remind: (
    incident: IncidentRow,
    event: NewEvent,
    to: ReadonlyArray<string>,
    now: number
  ) => Effect.Effect<number, StoreError>
  /** Queues one delivery outside any incident (`barto-cli notify test`). */
  readonly enqueue: (eventId: string, channel: string, payload: string, now: number) => Effect.Effect<void, StoreError>
  readonly due: (now: number, limit: number) => Effect.Effect<ReadonlyArray<DeliveryRow>, StoreError>
  readonly delivered: (deliveryId: string, attempts: number, now: number) => Effect.Effect<void, StoreError>
  /** A failed attempt: `nextAt` undefined means given up (`failed`). */
  readonly attemptFailed: (
    deliveryId: string,
    attempts: number,
    error: string,
    now: number,
    nextAt: number | undefined
  ) => Effect.Effect<void, StoreError>
  readonly recentDeliveries: (limit: number) => Effect.Effect<ReadonlyArray<DeliveryRow>, StoreError>
  /** The newest `limit` events, newest first (the console's alerts page). */
  readonly recentEvents: (limit: number) => Effect.Effect<ReadonlyArray<EventRow>, StoreError>
  /** Events per kind, all time (the metrics' counters survive restarts). */
  readonly eventCounts: () => Effect.Effect<
    ReadonlyArray<{ readonly kind: string; readonly count: number }>,
    StoreError
  >
  readonly deliveryCounts: () => Effect.Effect<
    ReadonlyArray<{ readonly state: string; readonly count: number }>,
    StoreError
  >
  /**
   * Deletes what is older than `before` and settled: deliveries no longer pending, events of no
   * open incident and no pending delivery, closed incidents. Returns the rows deleted.
   */
  readonly prune: (before: number) => Effect.Effect<number, StoreError>
  /** What the per-schedule series of /metrics are computed from (every schedule; the caller caps). */
  readonly scheduleStats: () => Effect.Effect<ScheduleStats, StoreError>
  // --- reads of the run tables the evaluator needs -------------------------------------------
  readonly run: (runId: string) => Effect.Effect<RunInfo | undefined, StoreError>
  /** Final runs finished (missed: scheduled) at or after `since`, oldest first, at most `limit`. */
  readonly finishedSince: (since: number, limit: number) => Effect.Effect<ReadonlyArray<RunInfo>, StoreError>
  readonly running: () => Effect.Effect<ReadonlyArray<RunInfo>, StoreError>
  /** The newest output line's or heartbeat's timestamp of a run, or null. */
  readonly lastOutputAt: (runId: string) => Effect.Effect<number | null, StoreError>
  /** The last `n` output lines of a run, oldest first. */
  readonly lastLines: (runId: string, n: number) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /** Whether a run (of any state, a missed range included) stands for the occurrence at `at`. */
  readonly occurrenceSeen: (agent: string, schedule: string, at: number) => Effect.Effect<boolean, StoreError>
}

const storeError = (what: string) => (e: unknown) =>
  new StoreError({ message: `alerts: ${what}: ${e instanceof Error ? e.message : String(e)}`, cause: e })

export const makeAlertStore: Effect.Effect<AlertStoreShape, never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const forUpdate = sql.onDialectOrElse({ mysql: () => " FOR UPDATE", orElse: () => "" })
  const q = <A = Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) =>
    sql.unsafe<A & object>(text, params as Array<never>)

  const openIncidentTx = (agent: string, schedule: string | null) =>
    q(`SELECT * FROM alert_incidents WHERE open_key = ?${forUpdate}`, [subjectKey(agent, schedule)]).pipe(
      Effect.map((rows) => (rows[0] === undefined ? undefined : toIncident(rows[0])))
    )

  const insertEvent = (event: NewEvent, incidentId: string | null) =>
    q(
      `INSERT INTO alert_events (event_id, dedupe_key, kind, agent, schedule, run_id, at, incident_id, detail)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        event.eventId,
        event.dedupeKey,
        event.kind,
        event.agent,
        event.schedule,
        event.runId,
        event.at,
        incidentId,
        JSON.stringify(event.detail)
      ]
    )

  const insertDelivery = (eventId: string, channel: string, payload: string, now: number) =>
    q(
      `INSERT INTO alert_deliveries (delivery_id, event_id, channel, state, attempts, created_at, next_at, updated_at, payload)
       VALUES (?, ?, ?, 'pending', 0, ?, ?, ?, ?)`,
      [`${eventId}:${channel}`, eventId, channel, now, now, now, payload]
    )

  const record: AlertStoreShape["record"] = (event, settings, now, extra) =>
    sql.withTransaction(Effect.gen(function*() {
      const dup = yield* q(`SELECT event_id FROM alert_events WHERE dedupe_key = ?`, [event.dedupeKey])
      if (dup.length > 0) {
        return { _tag: "Duplicate", decision: undefined, incidentId: null, queued: 0 } as RecordOutcome
      }
      const open = yield* openIncidentTx(event.agent, event.schedule)
      const openView: OpenIncident | undefined = open === undefined
        ? undefined
        : { incidentId: open.incidentId, badEvents: open.badEvents, notified: open.notifiedAt !== null }
      const decision = decide(event.kind, openView, settings)
      let incident: { incidentId: string; openedAt: number; state: "open" | "closed"; badEvents: number } | null =
        open ===
            undefined
          ? null
          : { incidentId: open.incidentId, openedAt: open.openedAt, state: "open", badEvents: open.badEvents }
      switch (decision._tag) {
        case "Record":
          break
        case "Open": {
          incident = { incidentId: event.eventId, openedAt: event.at, state: "open", badEvents: 1 }
          yield* q(
            `INSERT INTO alert_incidents (incident_id, open_key, agent, schedule, first_kind, opened_at, bad_events,
               notified_at, last_notice_at, reminders, last_event_id)
             VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, 0, ?)`,
            [
              event.eventId,
              subjectKey(event.agent, event.schedule),
              event.agent,
              event.schedule,
              event.kind,
              event.at,
              decision.notify ? now : null,
              decision.notify ? now : null,
              event.eventId
            ]
          )
          break
        }
        case "Count": {
          incident = { ...incident!, badEvents: incident!.badEvents + 1 }
          yield* q(
            `UPDATE alert_incidents SET bad_events = bad_events + 1, last_event_id = ?,
               notified_at = COALESCE(notified_at, ?), last_notice_at = COALESCE(last_notice_at, ?)
             WHERE incident_id = ?`,
            [event.eventId, decision.notify ? now : null, decision.notify ? now : null, decision.incidentId]
          )
          break
        }
        case "Close": {
          incident = { ...incident!, state: "closed" }
          yield* q(
            `UPDATE alert_incidents SET open_key = NULL, closed_at = ?, last_event_id = ? WHERE incident_id = ?`,
            [event.at, event.eventId, decision.incidentId]
          )
          break
        }
      }
      yield* insertEvent(event, incident?.incidentId ?? null)
      const notify = decision._tag !== "Record" && decision.notify
      if (notify) {
        const payload = payloadOf(event, incident, extra)
        for (const channel of settings.to) yield* insertDelivery(event.eventId, channel, payload, now)
      }
      return {
        _tag: "Recorded",
        decision,
        incidentId: incident?.incidentId ?? null,
        queued: notify ? settings.to.length : 0
      } as RecordOutcome
    })).pipe(Effect.mapError(storeError("record event")))

  const remind: AlertStoreShape["remind"] = (incident, event, to, now) =>
    sql.withTransaction(Effect.gen(function*() {
      const dup = yield* q(`SELECT event_id FROM alert_events WHERE dedupe_key = ?`, [event.dedupeKey])
      if (dup.length > 0) return 0
      yield* insertEvent(event, incident.incidentId)
      yield* q(`UPDATE alert_incidents SET reminders = reminders + 1, last_notice_at = ? WHERE incident_id = ?`, [
        now,
        incident.incidentId
      ])
      const payload = payloadOf(event, {
        incidentId: incident.incidentId,
        openedAt: incident.openedAt,
        state: "open",
        badEvents: incident.badEvents
      }, { reminder: incident.reminders + 1 })
      for (const channel of to) yield* insertDelivery(event.eventId, channel, payload, now)
      return to.length
    })).pipe(Effect.mapError(storeError("record reminder")))

  return {
    record,
    remind,
    known: (key) =>
      q(`SELECT event_id FROM alert_events WHERE dedupe_key = ?`, [key]).pipe(
        Effect.map((rows) => rows.length > 0),
        Effect.mapError(storeError("read events"))
      ),
    openIncident: (agent, schedule) =>
      openIncidentTx(agent, schedule).pipe(Effect.mapError(storeError("read incidents"))),
    openIncidents: () =>
      q(`SELECT * FROM alert_incidents WHERE open_key IS NOT NULL ORDER BY opened_at, incident_id`).pipe(
        Effect.map((rows) => rows.map(toIncident)),
        Effect.mapError(storeError("read incidents"))
      ),
    enqueue: (eventId, channel, payload, now) =>
      insertDelivery(eventId, channel, payload, now).pipe(Effect.asVoid, Effect.mapError(storeError("queue delivery"))),
    due: (now, limit) =>
      q(
        `SELECT * FROM alert_deliveries WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, delivery_id LIMIT ${
          Math.max(1, Math.floor(limit))
        }`,
        [now]
      ).pipe(Effect.map((rows) => rows.map(toDelivery)), Effect.mapError(storeError("read deliveries"))),
    delivered: (id, attempts, now) =>
      q(
        `UPDATE alert_deliveries SET state = 'delivered', attempts = ?, updated_at = ?, last_error = NULL WHERE delivery_id = ?`,
        [
          attempts,
          now,
          id
        ]
      ).pipe(Effect.asVoid, Effect.mapError(storeError("update delivery"))),
    attemptFailed: (id, attempts, error, now, nextAt) =>
      q(
        `UPDATE alert_deliveries SET state = ?, attempts = ?, updated_at = ?, next_at = ?, last_error = ? WHERE delivery_id = ?`,
        [nextAt === undefined ? "failed" : "pending", attempts, now, nextAt ?? now, error.slice(0, 1000), id]
      ).pipe(Effect.asVoid, Effect.mapError(storeError("update delivery"))),
    recentDeliveries: (limit) =>
      q(`SELECT * FROM alert_deliveries ORDER BY created_at DESC, delivery_id LIMIT ${Math.max(1, Math.floor(limit))}`)
        .pipe(
          Effect.map((rows) => rows.map(toDelivery)),
          Effect.mapError(storeError("read deliveries"))
        ),
    recentEvents: (limit) =>
      q(
        `SELECT event_id, kind, agent, schedule, run_id, at, incident_id, detail FROM alert_events
         ORDER BY at DESC, event_id LIMIT ${Math.max(1, Math.floor(limit))}`
      ).pipe(Effect.map((rows) => rows.map(toEvent)), Effect.mapError(storeError("read events"))),
    eventCounts: () =>
      q(`SELECT kind, COUNT(*) AS n FROM alert_events GROUP BY kind`).pipe(
        Effect.map((rows) => rows.map((r) => ({ kind: String(r.kind), count: num(r.n) }))),
        Effect.mapError(storeError("count events"))
      ),
    deliveryCounts: () =>
      q(`SELECT state, COUNT(*) AS n FROM alert_deliveries GROUP BY state`).pipe(
        Effect.map((rows) => rows.map((r) => ({ state: String(r.state), count: num(r.n) }))),
        Effect.mapError(storeError("count deliveries"))
      ),
    prune: (before) =>
      Effect.gen(function*() {
        const count = (r: unknown) => {
          const raw = r as { affectedRows?: number; changes?: number }
          return raw.affectedRows ?? raw.changes ?? 0
        }
        const deliveries = yield* sql.unsafe(
          `DELETE FROM alert_deliveries WHERE state <> 'pending' AND updated_at < ?`,
          [before]
        ).raw
        const events = yield* sql.unsafe(
          `DELETE FROM alert_events WHERE at < ?
             AND (incident_id IS NULL OR incident_id NOT IN (SELECT incident_id FROM alert_incidents WHERE open_key IS NOT NULL))
             AND event_id NOT IN (SELECT event_id FROM alert_deliveries WHERE state = 'pending')`,
          [before]
        ).raw
        const incidents = yield* sql.unsafe(`DELETE FROM alert_incidents WHERE open_key IS NULL AND closed_at < ?`, [
          before
        ]).raw
        return count(deliveries) + count(events) + count(incidents)
      }).pipe(Effect.mapError(storeError("prune"))),
    scheduleStats: () =>
      Effect.gen(function*() {
        const runs = yield* q(
          `SELECT agent, schedule, state, SUM(occurrences) AS n, MAX(finished_at) AS last_finished
           FROM runs WHERE state <> 'running' GROUP BY agent, schedule, state`
        )
        const last = yield* q(
          `SELECT r.agent, r.schedule, MAX(r.finished_at - r.started_at) AS d FROM runs r
           JOIN (SELECT agent, schedule, MAX(finished_at) AS f FROM runs
                 WHERE finished_at IS NOT NULL AND started_at IS NOT NULL GROUP BY agent, schedule) m
             ON r.agent = m.agent AND r.schedule = m.schedule AND r.finished_at = m.f
           WHERE r.started_at IS NOT NULL GROUP BY r.agent, r.schedule`
        )
        const events = yield* q(
          `SELECT agent, schedule, kind, COUNT(*) AS n FROM alert_events
           WHERE schedule IS NOT NULL AND kind IN ('late', 'missed', 'stalled') GROUP BY agent, schedule, kind`
        )
        const open = yield* q(`SELECT COUNT(*) AS n FROM alert_incidents WHERE open_key IS NOT NULL`)
        const deliveries = yield* q(`SELECT state, COUNT(*) AS n FROM alert_deliveries GROUP BY state`)
        return {
          runs: runs.map((r) => ({
            agent: String(r.agent),
            schedule: String(r.schedule),
            state: String(r.state),
            count: num(r.n),
            lastFinishedAt: numOrNull(r.last_finished)
          })),
          last: last.map((r) => ({
            agent: String(r.agent),
            schedule: String(r.schedule),
            durationSecs: num(r.d) / 1e6
          })),
          events: events.map((r) => ({
            agent: String(r.agent),
            schedule: String(r.schedule),
            kind: String(r.kind),
            count: num(r.n)
          })),
          openIncidents: num(open[0]?.n ?? 0),
          deliveries: deliveries.map((r) => ({ state: String(r.state), count: num(r.n) }))
        } satisfies ScheduleStats
      }).pipe(Effect.mapError(storeError("schedule statistics"))),
    run: (runId) =>
      q(`SELECT ${RUN_COLUMNS} FROM runs WHERE run_id = ?`, [runId]).pipe(
        Effect.map((rows) => (rows[0] === undefined ? undefined : toRun(rows[0]))),
        Effect.mapError(storeError("read run"))
      ),
    finishedSince: (since, limit) =>
      q(
        `SELECT ${RUN_COLUMNS} FROM runs
         WHERE (state IN ('succeeded', 'failed', 'timed_out') AND finished_at >= ?) OR (state = 'missed' AND scheduled_at >= ?)
         ORDER BY COALESCE(finished_at, scheduled_at), run_id LIMIT ${Math.max(1, Math.floor(limit))}`,
        [since, since]
      ).pipe(Effect.map((rows) => rows.map(toRun)), Effect.mapError(storeError("read runs"))),
    running: () =>
      q(`SELECT ${RUN_COLUMNS} FROM runs WHERE state = 'running'`).pipe(
        Effect.map((rows) => rows.map(toRun)),
        Effect.mapError(storeError("read runs"))
      ),
    lastOutputAt: (runId) =>
      Effect.gen(function*() {
        const line = numOrNull((yield* q(`SELECT MAX(ts) AS ts FROM output_lines WHERE run_id = ?`, [runId]))[0]?.ts)
        const beatText = (yield* q(`SELECT heartbeat FROM runs WHERE run_id = ?`, [runId]))[0]?.heartbeat
        let beat: number | null = null
        try {
          beat = typeof beatText === "string" ? numOrNull((JSON.parse(beatText) as { at?: unknown }).at) : null
        } catch {
          // Written by make.ts as JSON; anything else counts as no beat.
        }
        return line === null ? beat : beat === null ? line : Math.max(line, beat)
      }).pipe(Effect.mapError(storeError("read lines"))),
    lastLines: (runId, n) =>
      q(`SELECT data FROM output_lines WHERE run_id = ? ORDER BY line_seq DESC LIMIT ${Math.max(1, Math.floor(n))}`, [
        runId
      ]).pipe(
        Effect.map((rows) => rows.map((r) => String(r.data)).reverse()),
        Effect.mapError(storeError("read lines"))
      ),
    occurrenceSeen: (agent, schedule, at) =>
      q(
        `SELECT 1 AS x FROM runs WHERE agent = ? AND schedule = ?
           AND (scheduled_at = ? OR (scheduled_at <= ? AND scheduled_until >= ?)) LIMIT 1`,
        [agent, schedule, at, at, at]
      ).pipe(Effect.map((rows) => rows.length > 0), Effect.mapError(storeError("read runs")))
  }
})
