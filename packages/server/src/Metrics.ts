/**
 * Counters of one bartos instance, rendered as Prometheus text on `GET /metrics`.
 *
 * Kept per instance (not Effect's global `Metric` registry) so several servers in one process —
 * the test suites — never see each other's counts.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

export type Labels = Readonly<Record<string, string>>

interface Family {
  readonly help: string
  readonly type: "counter" | "gauge"
}

/** Every metric bartos exports, with its help text; unknown names are a bug, caught by the type. */
export const families = {
  bartos_connections_total: { help: "WebSocket connections accepted, by link", type: "counter" },
  bartos_connections_open: { help: "WebSocket connections currently open, by link", type: "gauge" },
  bartos_http_rejected_total: { help: "HTTP requests and upgrades refused, by status", type: "counter" },
  bartos_frames_in_total: { help: "Frames received, by link", type: "counter" },
  bartos_frames_out_total: { help: "Frames sent, by link", type: "counter" },
  bartos_frames_rejected_total: { help: "Frames answered with a ProtocolError, by reason", type: "counter" },
  bartos_records_ingested_total: { help: "Agent records newly stored", type: "counter" },
  bartos_records_refused_total: {
    help: "Agent records refused because their run or command belongs to another agent or run, by reason",
    type: "counter"
  },
  bartos_line_conflicts_total: {
    help: "Output lines that arrived again with other content than the stored line (the stored one is kept)",
    type: "counter"
  },
  bartos_acks_total: { help: "Acks sent to agents", type: "counter" },
  bartos_ingest_errors_total: { help: "Record batches that failed to store (no Ack sent)", type: "counter" },
  bartos_duplicate_names_refused_total: {
    help: "Worker connections refused because another live agent instance holds the name",
    type: "counter"
  },
  bartos_schedule_reloads_total: { help: "Schedule reloads, by result", type: "counter" },
  bartos_config_last_reload_successful: {
    help: "Whether the last configuration (re)load was accepted (1) or rejected (0); the start counts",
    type: "gauge"
  },
  bartos_config_last_reload_success_timestamp_seconds: {
    help: "Unix time of the last accepted configuration (re)load; the start counts",
    type: "gauge"
  },
  bartos_cli_dropped_total: { help: "CLI connections dropped by bartos, by reason", type: "counter" },
  bartos_schedule_last_success_timestamp_seconds: {
    help:
      "Unix time the schedule last finished successfully, by agent and schedule (up to limits.metrics_max_schedules)",
    type: "gauge"
  },
  bartos_schedule_last_duration_seconds: {
    help: "Duration of the schedule's last finished run, by agent and schedule",
    type: "gauge"
  },
  bartos_schedule_runs: { help: "Runs in the database, by agent, schedule and final state", type: "gauge" },
  bartos_schedule_alert_events: {
    help: "Late, missed and stalled events in the database, by agent, schedule and kind",
    type: "gauge"
  },
  bartos_schedules_omitted: {
    help: "Configured schedules beyond limits.metrics_max_schedules, left out of the per-schedule series",
    type: "gauge"
  },
  bartos_agent_up: { help: "Whether a configured agent has a session (1) or not (0), by agent", type: "gauge" },
  bartos_alert_incidents_open: { help: "Alert incidents open now", type: "gauge" },
  bartos_alert_deliveries: {
    help: "Notification deliveries in the queue, by state (pending, delivered, failed)",
    type: "gauge"
  },
  bartos_alert_events_total: { help: "Alert events recorded by this instance, by kind", type: "counter" },
  bartos_alert_deliveries_total: {
    help: "Notification delivery attempts by this instance, by channel and result (delivered, retry, failed)",
    type: "counter"
  }
} as const satisfies Record<string, Family>

export type MetricName = keyof typeof families

export interface MetricsShape {
  readonly add: (name: MetricName, by?: number, labels?: Labels) => Effect.Effect<void>
  /** Same as `add`, callable from a Node callback (no Effect to run). */
  readonly unsafeAdd: (name: MetricName, by?: number, labels?: Labels) => void
  /** Sets a gauge. */
  readonly set: (name: MetricName, value: number, labels?: Labels) => Effect.Effect<void>
  /** Replaces every series of a family at once (series computed from the database). */
  readonly replace: (name: MetricName, series: ReadonlyArray<readonly [Labels, number]>) => Effect.Effect<void>
  readonly value: (name: MetricName, labels?: Labels) => Effect.Effect<number>
  readonly render: Effect.Effect<string>
  /** Each family summed over its label sets (the console's metrics summary). */
  readonly totals: Effect.Effect<Record<MetricName, number>>
}

export class Metrics extends Context.Tag("@barto/server/Metrics")<Metrics, MetricsShape>() {}

// Label sets passed as constants (a session's `{ link: "worker" }` on every frame in and out) are
// keyed once, not sorted and escaped again on each of 10,000 agents' pings.
const labelKeys = new WeakMap<Labels, string>()

const labelKey = (labels: Labels | undefined): string => {
  if (labels === undefined) return ""
  let key = labelKeys.get(labels)
  if (key === undefined) {
    key = makeLabelKey(labels)
    labelKeys.set(labels, key)
  }
  return key
}

const makeLabelKey = (labels: Labels): string => {
  const keys = Object.keys(labels).sort()
  if (keys.length === 0) return ""
  const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")
  return `{${keys.map((k) => `${k}="${escape(labels[k]!)}"`).join(",")}}`
}

export const make = (): MetricsShape => {
  const values = new Map<MetricName, Map<string, number>>()
  const seriesOf = (name: MetricName) => {
    let series = values.get(name)
    if (series === undefined) {
      series = new Map()
      values.set(name, series)
    }
    return series
  }
  const unsafeAdd = (name: MetricName, by = 1, labels?: Labels) => {
    const series = seriesOf(name)
    const key = labelKey(labels)
    series.set(key, (series.get(key) ?? 0) + by)
  }
  return {
    unsafeAdd,
    add: (name, by, labels) => Effect.sync(() => unsafeAdd(name, by, labels)),
    replace: (name, series) =>
      Effect.sync(() => void values.set(name, new Map(series.map(([l, v]) => [labelKey(l), v])))),
    set: (name, value, labels) => Effect.sync(() => void seriesOf(name).set(labelKey(labels), value)),
    totals: Effect.sync(() => {
      const out = {} as Record<MetricName, number>
      for (const name of Object.keys(families) as Array<MetricName>) {
        let sum = 0
        for (const v of values.get(name)?.values() ?? []) sum += v
        out[name] = sum
      }
      return out
    }),
    value: (name, labels) => Effect.sync(() => values.get(name)?.get(labelKey(labels)) ?? 0),
    render: Effect.sync(() => {
      const lines: Array<string> = []
      for (const name of Object.keys(families) as Array<MetricName>) {
        const family = families[name]
        lines.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`)
        const series = values.get(name)
        if (series === undefined || series.size === 0) {
          if (!family.help.includes(", by ")) lines.push(`${name} 0`)
          continue
        }
        for (const [key, value] of [...series].sort(([a], [b]) => a.localeCompare(b))) {
          lines.push(`${name}${key} ${value}`)
        }
      }
      return lines.join("\n") + "\n"
    })
  }
}

export const layer: Layer.Layer<Metrics> = Layer.sync(Metrics, make)
