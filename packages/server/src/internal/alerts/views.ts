/**
 * What `barto-cli alerts` and `barto-cli notify test` get (issue 14): open incidents and recent
 * deliveries as wire views, and a test notification queued like any other.
 */
import { DeliveryView, IncidentView, Micros } from "@barto/domain/Messages"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import type { AlertStoreShape, DeliveryRow } from "../store/alerts.js"
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

export const alerts = (
  store: AlertStoreShape,
  limit: number
): Effect.Effect<{ incidents: Array<IncidentView>; deliveries: Array<DeliveryView> }, StoreError> =>
  Effect.gen(function*() {
    const incidents = yield* store.openIncidents()
    const deliveries = yield* store.recentDeliveries(Math.min(Math.max(limit, 1), 1000))
    return {
      incidents: incidents.map((i) =>
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
      ),
      deliveries: deliveries.map((d) =>
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
      )
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
