/**
 * The per-schedule series of `/metrics` (issue 14), computed from the database, with a bounded
 * cardinality: only configured schedules (never names that only occur in old runs), at most
 * `limits.metrics_max_schedules` of them in config order, each with a fixed set of label values
 * (final states, three event kinds). The schedules left out are counted, not dropped silently.
 */
import type { Labels, MetricName } from "../../Metrics.js"
import type { ScheduleStats } from "../store/alerts.js"

const FINAL_STATES = ["succeeded", "failed", "timed_out", "cancelled", "interrupted", "lost", "missed"] as const

export type Families = ReadonlyArray<readonly [MetricName, ReadonlyArray<readonly [Labels, number]>]>

export const scheduleSeries = (
  configured: ReadonlyArray<readonly [agent: string, schedules: ReadonlyArray<string>]>,
  stats: ScheduleStats,
  maxSchedules: number,
  connected: ReadonlySet<string>
): Families => {
  const kept = new Set<string>()
  let total = 0
  for (const [agent, names] of configured) {
    for (const name of names) {
      total++
      if (kept.size < maxSchedules) kept.add(`${agent}\u0000${name}`)
    }
  }
  const isKept = (agent: string, schedule: string) => kept.has(`${agent}\u0000${schedule}`)
  const lastSuccess: Array<readonly [Labels, number]> = []
  const runs: Array<readonly [Labels, number]> = []
  for (const r of stats.runs) {
    if (!isKept(r.agent, r.schedule) || !(FINAL_STATES as ReadonlyArray<string>).includes(r.state)) continue
    runs.push([{ agent: r.agent, schedule: r.schedule, state: r.state }, r.count])
    if (r.state === "succeeded" && r.lastFinishedAt !== null) {
      lastSuccess.push([{ agent: r.agent, schedule: r.schedule }, Math.floor(r.lastFinishedAt / 1e6)])
    }
  }
  const duration = stats.last
    .filter((l) => isKept(l.agent, l.schedule))
    .map((l) => [{ agent: l.agent, schedule: l.schedule }, l.durationSecs] as const)
  const events = stats.events
    .filter((e) => isKept(e.agent, e.schedule))
    .map((e) => [{ agent: e.agent, schedule: e.schedule, kind: e.kind }, e.count] as const)
  // Agents are bounded by the configuration, and by the same cap.
  const agents = configured.slice(0, Math.max(maxSchedules, 1)).map(([agent]) =>
    [{ agent }, connected.has(agent) ? 1 : 0] as const
  )
  return [
    ["bartos_schedule_last_success_timestamp_seconds", lastSuccess],
    ["bartos_schedule_last_duration_seconds", duration],
    ["bartos_schedule_runs", runs],
    ["bartos_schedule_alert_events", events],
    ["bartos_schedules_omitted", [[{}, total - kept.size]]],
    ["bartos_agent_up", agents],
    ["bartos_alert_incidents_open", [[{}, stats.openIncidents]]],
    ["bartos_alert_deliveries", stats.deliveries.map((d) => [{ state: d.state }, d.count] as const)]
  ]
}
