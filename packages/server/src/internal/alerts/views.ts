/**
 * What `barto-cli alerts` and `barto-cli notify test` get (issue 14): open incidents and recent
 * deliveries as wire views, and a test notification queued like any other.
 */
import { DeliveryView, IncidentView, Micros } from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import type { AlertStoreShape, DeliveryRow, EventRow, IncidentRow } from "../store/alerts.js"
import type { StoreError } from "../store/errors.js"

/** The body of a test notification: the documented shape, kind "test", no agent or incident. */
export const testPayload = (channel: string, eventId: string, atMs: number): string =>
  JSON.stringify({
    id: eventId,
    kind: "test",
    agent: null,
    schedule: null,
    run_id: null,
    at: new Date(atMs).toISOString(),
    incident: null,
    detail: { message: `test notification to [notify.${channel}]` }
  })

const fromPayload = (d: DeliveryRow) => {
  try {
    const p = JSON.parse(d.payload) as { kind?: unknown; agent?: unknown; schedule?: unknown }
    const text = (u: unknown) => (typeof u === "string" ? u : null)
    return { kind: text(p.kind) ?? "?", agent: text(p.agent), schedule: text(p.schedule) }
  } catch {
    return { kind: "?", agent: null, schedule: null }
  }
}

const incidentView = (i: IncidentRow) =>
  new IncidentView({
    incidentId: i.incidentId,
    agent: i.agent,
    schedule: i.schedule,
    firstKind: i.firstKind,
    openedAt: Micros.make(i.openedAt),
    badEvents: i.badEvents,
    notifiedAt: i.notifiedAt === null ? null : Micros.make(i.notifiedAt),
    reminders: i.reminders
  })

const deliveryView = (d: DeliveryRow) =>
  new DeliveryView({
    deliveryId: d.deliveryId,
    eventId: d.eventId,
    ...fromPayload(d),
    channel: d.channel,
    state: d.state,
    attempts: d.attempts,
    createdAt: Micros.make(d.createdAt),
    updatedAt: Micros.make(d.updatedAt),
    lastError: d.lastError
  })

export const alerts = (
  store: AlertStoreShape,
  limit: number
): Effect.Effect<{ incidents: Array<IncidentView>; deliveries: Array<DeliveryView> }, StoreError> =>
  Effect.gen(function*() {
    const incidents = yield* store.openIncidents()
    const deliveries = yield* store.recentDeliveries(Math.min(Math.max(limit, 1), 1000))
    return {
      incidents: incidents.map(incidentView),
      deliveries: deliveries.map(deliveryView)
    }
  })

/**
 * One line of an event's stored detail: its `message` when it has one (late, stalled, agent_down…),
 * else what ended the run (`failed, exit 3`, `timed_out, signal SIGTERM, timeout`).
 */
export const eventSummary = (detailJson: string): string => {
  let d: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(detailJson)
    if (typeof parsed !== "object" || parsed === null) return ""
    d = parsed as Record<string, unknown>
  } catch {
    return ""
  }
  if (typeof d.message === "string") return d.message
  const parts: Array<string> = []
  if (typeof d.state === "string") parts.push(d.state)
  if (typeof d.exit_code === "number") parts.push(`exit ${d.exit_code}`)
  if (typeof d.signal === "string") parts.push(`signal ${d.signal}`)
  if (typeof d.reason === "string") parts.push(d.reason)
  return parts.join(", ")
}

const eventView = (e: EventRow) => ({
  eventId: e.eventId,
  kind: e.kind,
  agent: e.agent,
  schedule: e.schedule,
  runId: e.runId,
  at: Micros.make(e.at),
  incidentId: e.incidentId,
  summary: eventSummary(e.detail)
})

/** The console's alerts page: `alerts` plus each incident's latest notice and the newest events. */
export const consoleAlerts = (store: AlertStoreShape, limit: number) =>
  Effect.gen(function*() {
    const bounded = Math.min(Math.max(limit, 1), 1000)
    const incidents = yield* store.openIncidents()
    const events = yield* store.recentEvents(bounded)
    const deliveries = yield* store.recentDeliveries(bounded)
    return {
      incidents: incidents.map((i) => ({
        ...incidentView(i),
        lastNoticeAt: i.lastNoticeAt === null ? null : Micros.make(i.lastNoticeAt)
      })),
      events: events.map(eventView),
      deliveries: deliveries.map(deliveryView)
    }
  })

/** Queued now; the delivery worker sends it (an unknown channel fails there, with the reason). */
export const notifyTest = (
  store: AlertStoreShape,
  channel: string
): Effect.Effect<{ eventId: string; deliveryId: string }, StoreError> =>
  Effect.gen(function*() {
    const ms = yield* Clock.currentTimeMillis
    const eventId = randomUUID()
    yield* store.enqueue(eventId, channel, testPayload(channel, eventId, ms), ms * 1000)
    return { eventId, deliveryId: `${eventId}:${channel}` }
  })
