import { assert, describe, it } from "@effect/vitest"
import { decide, resolve, type Settings } from "../src/internal/alerts/policy.js"
import { scheduleSeries } from "../src/internal/alerts/scheduleMetrics.js"

const settings = (patch: Partial<Settings> = {}): Settings => ({ ...resolve([]), to: ["hook"], ...patch })

describe("alert settings", () => {
  it("schedule over agent over [alerts], key by key, the alert table too", () => {
    const s = resolve([
      { alert: { to: ["mail"] }, stall_after: 30 },
      { alert: { after_failures: 3, to: ["hook"] }, late_after: 60, stall_after: 90 },
      { alert: { on: ["failed", "recovered"] }, expected_duration: 3600 }
    ])
    assert.deepStrictEqual(s, {
      on: ["failed", "recovered"],
      to: ["mail"],
      afterFailures: 3,
      lateAfterSecs: 60,
      stallAfterSecs: 30,
      expectedDurationSecs: 3600
    })
    assert.deepStrictEqual(resolve([undefined]).to, [])
    assert.strictEqual(resolve([]).on.length, 9)
  })
})

describe("incidents: one notification each", () => {
  it("the first bad event opens and notifies; later ones only count; recovery closes and notifies", () => {
    assert.deepStrictEqual(decide("failed", undefined, settings()), { _tag: "Open", notify: true })
    const open = { incidentId: "i", badEvents: 1, notified: true }
    assert.deepStrictEqual(decide("failed", open, settings()), { _tag: "Count", incidentId: "i", notify: false })
    assert.deepStrictEqual(decide("late", open, settings()), { _tag: "Count", incidentId: "i", notify: false })
    assert.deepStrictEqual(decide("recovered", open, settings()), { _tag: "Close", incidentId: "i", notify: true })
  })

  it("after_failures: the event that reaches the count notifies, once", () => {
    const s = settings({ afterFailures: 3 })
    assert.deepStrictEqual(decide("failed", undefined, s), { _tag: "Open", notify: false })
    assert.deepStrictEqual(decide("failed", { incidentId: "i", badEvents: 1, notified: false }, s), {
      _tag: "Count",
      incidentId: "i",
      notify: false
    })
    assert.deepStrictEqual(decide("failed", { incidentId: "i", badEvents: 2, notified: false }, s), {
      _tag: "Count",
      incidentId: "i",
      notify: true
    })
    assert.deepStrictEqual(decide("failed", { incidentId: "i", badEvents: 3, notified: true }, s), {
      _tag: "Count",
      incidentId: "i",
      notify: false
    })
    // An incident nobody was told about closes silently.
    assert.deepStrictEqual(decide("recovered", { incidentId: "i", badEvents: 2, notified: false }, s), {
      _tag: "Close",
      incidentId: "i",
      notify: false
    })
  })

  it("kinds outside `on` are recorded only; good events with nothing open are recorded only; no channels, no notification", () => {
    assert.deepStrictEqual(decide("late", undefined, settings({ on: ["failed"] })), { _tag: "Record" })
    assert.deepStrictEqual(decide("recovered", undefined, settings()), { _tag: "Record" })
    assert.deepStrictEqual(decide("failed", undefined, settings({ to: [] })), { _tag: "Open", notify: false })
    // `recovered` outside `on` still closes the incident, without a notification.
    assert.deepStrictEqual(
      decide("recovered", { incidentId: "i", badEvents: 1, notified: true }, settings({ on: ["failed"] })),
      {
        _tag: "Close",
        incidentId: "i",
        notify: false
      }
    )
  })
})

describe("per-schedule metrics", () => {
  it("only configured schedules, at most the cap, the rest counted", () => {
    const families = new Map(scheduleSeries(
      [["a", ["x", "y", "z"]], ["b", ["w"]]],
      {
        runs: [
          { agent: "a", schedule: "x", state: "succeeded", count: 4, lastFinishedAt: 2_000_000 },
          { agent: "a", schedule: "z", state: "failed", count: 1, lastFinishedAt: 3_000_000 },
          { agent: "old", schedule: "gone", state: "failed", count: 9, lastFinishedAt: 1 }
        ],
        last: [{ agent: "a", schedule: "x", durationSecs: 1.5 }],
        events: [{ agent: "a", schedule: "y", kind: "late", count: 2 }],
        openIncidents: 1,
        deliveries: [{ state: "delivered", count: 3 }]
      },
      2,
      new Set(["a"])
    ))
    assert.deepStrictEqual(families.get("bartos_schedule_runs"), [[
      { agent: "a", schedule: "x", state: "succeeded" },
      4
    ]])
    assert.deepStrictEqual(families.get("bartos_schedule_last_success_timestamp_seconds"), [[{
      agent: "a",
      schedule: "x"
    }, 2]])
    assert.deepStrictEqual(families.get("bartos_schedule_alert_events"), [[
      { agent: "a", schedule: "y", kind: "late" },
      2
    ]])
    assert.deepStrictEqual(families.get("bartos_schedules_omitted"), [[{}, 2]])
    assert.deepStrictEqual(families.get("bartos_agent_up"), [[{ agent: "a" }, 1], [{ agent: "b" }, 0]])
  })
})
