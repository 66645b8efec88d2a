/**
 * The alert tables (internal/store/alerts.ts) on SQLite and MariaDB: one transaction records an
 * event, moves its incident and queues the deliveries; dedupe keys make a second derivation a
 * no-op; the queue's states; retention of settled rows.
 */
import type { Micros, RunId } from "@barto/domain/Messages"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { resolve } from "../src/internal/alerts/policy.js"
import { consoleAlerts, eventSummary } from "../src/internal/alerts/views.js"
import type { NewEvent } from "../src/internal/store/alerts.js"
import { Store } from "../src/Store.js"
import { databases } from "./utils/databases.js"

const settings = { ...resolve([]), to: ["hook", "mail"] }
let n = 0
const event = (kind: NewEvent["kind"], agent: string, at: number, key = `${kind}:${++n}`): NewEvent => ({
  eventId: `ev-${++n}-${Math.random().toString(36).slice(2, 8)}`,
  dedupeKey: `${agent}:${key}`,
  kind,
  agent,
  schedule: "backup",
  runId: null,
  at,
  detail: { n }
})

for (const db of databases) {
  describe(`alert store on ${db.name}`, () => {
    it.effect("one notification per incident, dedupe, recovery, the delivery queue, retention", () =>
      Effect.gen(function*() {
        const { alerts } = yield* Store
        const agent = `a${Math.random().toString(36).slice(2, 8)}`
        const first = event("failed", agent, 1_000, "failed:r1")
        const opened = yield* alerts.record(first, settings, 1_000)
        assert.deepStrictEqual([opened._tag, opened.decision?._tag, opened.queued], ["Recorded", "Open", 2])
        // The same run derived again (a re-sent batch, the catch-up after a crash): nothing new.
        const again = yield* alerts.record({ ...first, eventId: "other-id" }, settings, 1_100)
        assert.strictEqual(again._tag, "Duplicate")
        const counted = yield* alerts.record(event("late", agent, 2_000), settings, 2_000)
        assert.deepStrictEqual([counted.decision?._tag, counted.queued], ["Count", 0])
        const open = yield* alerts.openIncident(agent, "backup")
        assert.deepInclude(open, { incidentId: first.eventId, badEvents: 2, firstKind: "failed", notifiedAt: 1_000 })
        assert.isTrue(yield* alerts.known(first.dedupeKey))

        const recovered = event("recovered", agent, 3_000)
        const closed = yield* alerts.record(recovered, settings, 3_000)
        assert.deepStrictEqual([closed.decision?._tag, closed.queued], ["Close", 2])
        assert.strictEqual(yield* alerts.openIncident(agent, "backup"), undefined)

        const due = (yield* alerts.due(3_000, 100)).filter((d) =>
          d.eventId === first.eventId || d.eventId === recovered.eventId
        )
        assert.deepStrictEqual(
          due.map((d) => `${d.eventId === first.eventId ? "failed" : "recovered"}:${d.channel}`).sort(),
          [
            "failed:hook",
            "failed:mail",
            "recovered:hook",
            "recovered:mail"
          ]
        )
        const body = JSON.parse(due.find((d) => d.eventId === recovered.eventId)!.payload)
        assert.deepInclude(body, { id: recovered.eventId, kind: "recovered", agent, schedule: "backup" })
        assert.deepInclude(body.incident, { id: first.eventId, state: "closed", bad_events: 2 })

        const [a, b, c, d] = due
        yield* alerts.delivered(a!.deliveryId, 1, 4_000)
        yield* alerts.attemptFailed(b!.deliveryId, 1, "HTTP 503", 4_000, 9_000)
        yield* alerts.attemptFailed(c!.deliveryId, 10, "refused", 4_000, undefined)
        yield* alerts.delivered(d!.deliveryId, 1, 4_000)
        const mine = (yield* alerts.recentDeliveries(1000)).filter((x) =>
          due.some((y) => y.deliveryId === x.deliveryId)
        )
        const byId = new Map(mine.map((x) => [x.deliveryId, x]))
        assert.deepInclude(byId.get(b!.deliveryId), {
          state: "pending",
          attempts: 1,
          nextAt: 9_000,
          lastError: "HTTP 503"
        })
        assert.deepInclude(byId.get(c!.deliveryId), { state: "failed", attempts: 10, lastError: "refused" })
        assert.isFalse((yield* alerts.due(8_000, 100)).some((x) => x.deliveryId === b!.deliveryId))
        assert.isTrue((yield* alerts.due(9_000, 100)).some((x) => x.deliveryId === b!.deliveryId))

        // Retention: settled rows go; the event with a pending delivery stays, and so does its row.
        const pendingEvent = b!.eventId
        yield* alerts.prune(5_000)
        const left = (yield* alerts.recentDeliveries(1000)).filter((x) =>
          due.some((y) => y.deliveryId === x.deliveryId)
        )
        assert.deepStrictEqual(left.map((x) => x.deliveryId), [b!.deliveryId])
        const [kept, gone] = pendingEvent === first.eventId ? [first, recovered] : [recovered, first]
        // Both deliveries of the other event are settled, so it goes unless it shares the pending one.
        const goneSettled = !due.some((x) => x.eventId === gone.eventId && x.deliveryId === b!.deliveryId)
        assert.isTrue(yield* alerts.known(kept.dedupeKey))
        assert.strictEqual(yield* alerts.known(gone.dedupeKey), !goneSettled)
        // The late event (no delivery, its incident closed) is gone too.
        assert.isFalse((yield* alerts.openIncidents()).some((i) => i.agent === agent))
      }).pipe(Effect.provide(db.layer())))

    it.effect("after_failures: the notification waits for the count; kinds outside `on` are only recorded", () =>
      Effect.gen(function*() {
        const { alerts } = yield* Store
        const agent = `b${Math.random().toString(36).slice(2, 8)}`
        const s = { ...settings, afterFailures: 2, on: ["failed", "recovered"] as const }
        assert.strictEqual(
          (yield* alerts.record(event("late", agent, 1), { ...s, on: [...s.on] }, 1)).decision?._tag,
          "Record"
        )
        assert.strictEqual((yield* alerts.record(event("failed", agent, 2), { ...s, on: [...s.on] }, 2)).queued, 0)
        assert.strictEqual((yield* alerts.record(event("failed", agent, 3), { ...s, on: [...s.on] }, 3)).queued, 2)
        assert.strictEqual((yield* alerts.record(event("failed", agent, 4), { ...s, on: [...s.on] }, 4)).queued, 0)
        assert.strictEqual((yield* alerts.openIncidents()).filter((i) => i.agent === agent).length, 1)
      }).pipe(Effect.provide(db.layer())))

    it.effect("the console's view: events newest first with a one-line summary, incidents with their last notice", () =>
      Effect.gen(function*() {
        const { alerts } = yield* Store
        const agent = `c${Math.random().toString(36).slice(2, 8)}`
        const failed: NewEvent = {
          ...event("failed", agent, 5_000),
          runId: "r-1",
          detail: { state: "failed", exit_code: 3, signal: null, reason: null, output: ["boom"] }
        }
        yield* alerts.record(failed, settings, 5_000)
        const late: NewEvent = { ...event("late", agent, 6_000), detail: { message: "did not start within 60s" } }
        yield* alerts.record(late, settings, 6_000)
        const view = yield* consoleAlerts(alerts, 1000)
        const mine = view.events.filter((e) => e.agent === agent)
        assert.deepStrictEqual(mine.map((e) => [e.kind, e.runId, e.at, e.incidentId, e.summary]), [
          ["late", null, 6_000, failed.eventId, "did not start within 60s"],
          ["failed", "r-1", 5_000, failed.eventId, "failed, exit 3"]
        ])
        const incident = view.incidents.find((i) => i.agent === agent)
        assert.deepInclude<Record<string, unknown>>(incident!, {
          incidentId: failed.eventId,
          badEvents: 2,
          notifiedAt: 5_000,
          lastNoticeAt: 5_000
        })
        // `limit` bounds the events (and the deliveries) to the newest.
        assert.strictEqual((yield* consoleAlerts(alerts, 1)).events.length, 1)
        assert.strictEqual(eventSummary("not json"), "")
        assert.strictEqual(
          eventSummary(JSON.stringify({ state: "timed_out", signal: "SIGTERM" })),
          "timed_out, signal SIGTERM"
        )
      }).pipe(Effect.provide(db.layer())))

    it.effect("a Heartbeat record keeps the run's last beat while it runs; the run row carries it", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const agent = `h${Math.random().toString(36).slice(2, 8)}`
        const runId = `run-${agent}` as RunId
        const t = (s: number) => (1_900_000_000_000_000 + s * 1_000_000) as Micros
        yield* store.ingest(agent, "o", [
          { _tag: "RunStarted", seq: 0, runId, schedule: "s", trigger: "schedule", scheduledAt: t(0), startedAt: t(0) },
          { _tag: "Heartbeat", seq: 1, runId, ts: t(1), progress: "1/4" },
          { _tag: "Heartbeat", seq: 2, runId, ts: t(2), progress: "2/4", status: "degraded", message: "slow" }
        ])
        const running = Option.getOrThrow(yield* store.getRun(runId))
        assert.deepStrictEqual(running.heartbeat, { at: t(2), progress: "2/4", status: "degraded", message: "slow" })
        assert.strictEqual(yield* store.alerts.lastOutputAt(runId), t(2))
        // A beat after the end does not change the finished run.
        yield* store.ingest(agent, "o", [
          { _tag: "RunFinished", seq: 3, runId, state: "succeeded", finishedAt: t(3) },
          { _tag: "Heartbeat", seq: 4, runId, ts: t(4), progress: "4/4" }
        ])
        assert.strictEqual(Option.getOrThrow(yield* store.getRun(runId)).heartbeat?.progress, "2/4")
      }).pipe(Effect.provide(db.layer())))
  })
}
