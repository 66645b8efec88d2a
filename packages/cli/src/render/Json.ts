/**
 * The `--json` forms of every response (documented in packages/cli/README.md; keep them stable).
 */
import type * as Messages from "@barto/domain/Messages"
import * as Printable from "@barto/domain/Printable"
import { formatMicros, formatMicrosOrNull } from "./Time.js"

// ---------------------------------------------------------------------------------------------
// JSON shapes (documented in packages/cli/README.md; keep them stable)
// ---------------------------------------------------------------------------------------------

// JSON.stringify escapes C0 but leaves DEL, C1 and bidi controls raw: `Printable.escapeJson`.
export const json = (value: unknown): string => Printable.escapeJson(JSON.stringify(value, null, 2))
/** One line of NDJSON (streams: `tail`, `run --wait`). */
export const jsonLine = (value: unknown): string => Printable.escapeJson(JSON.stringify(value))

export const clientJson = (c: Messages.ClientRow, zone: string) => ({
  name: c.name,
  ip: c.ip,
  sessionId: c.sessionId,
  connectedAt: formatMicros(c.connectedAt, zone),
  info: c.info === null
    ? null
    : {
      osName: c.info.osName,
      hostname: c.info.hostname,
      osVersion: c.info.osVersion,
      kernel: c.info.kernel,
      agentVersion: c.info.agentVersion
    },
  // Other instances refused under this name while it was live (one agent per name).
  refusedDuplicates: c.refused === undefined
    ? null
    : { count: c.refused.count, lastIp: c.refused.lastIp, lastAt: formatMicros(c.refused.lastAt, zone) }
})

export const lineJson = (l: Messages.LineRow, zone: string) => ({
  runId: l.runId,
  agent: l.agent,
  schedule: l.schedule,
  cmdUuid: l.cmdUuid,
  lineSeq: l.lineSeq,
  stream: l.stream,
  ts: formatMicros(l.ts, zone),
  data: l.data,
  continuation: l.continuation,
  exitCode: l.exitCode,
  runState: l.runState
})

export const runJson = (r: Messages.RunRow, zone: string) => ({
  runId: r.runId,
  agent: r.agent,
  schedule: r.schedule,
  trigger: r.trigger,
  state: r.state,
  scheduledAt: formatMicros(r.scheduledAt, zone),
  startedAt: formatMicrosOrNull(r.startedAt, zone),
  finishedAt: formatMicrosOrNull(r.finishedAt, zone),
  exitCode: r.exitCode,
  signal: r.signal,
  reason: r.reason,
  scheduledUntil: formatMicrosOrNull(r.scheduledUntil, zone),
  occurrences: r.occurrences
})

export const failedJson = (f: Messages.FailedRow, zone: string) => ({
  runId: f.runId,
  agent: f.agent,
  schedule: f.schedule,
  cmdUuid: f.cmdUuid,
  command: f.command,
  state: f.state,
  exitCode: f.exitCode,
  signal: f.signal,
  finishedAt: formatMicrosOrNull(f.finishedAt, zone),
  lines: [...f.lines]
})

export const scheduleJson = (s: Messages.ScheduleRow, zone: string) => ({
  agent: s.agent,
  name: s.name,
  onCalendar: s.onCalendar,
  calendar: s.calendar,
  cmds: [...s.cmds],
  paused: s.paused,
  connected: s.connected,
  nextAt: formatMicrosOrNull(s.nextAt, zone)
})

export const infoJson = (i: typeof Messages.InfoResponse.Type, zone: string) => ({
  version: i.version,
  protocol: i.protocol,
  startedAt: formatMicros(i.startedAt, zone),
  uptimeSecs: i.uptimeSecs,
  database: i.database,
  databaseLocation: i.databaseLocation,
  listeners: [...i.listeners],
  connectedAgents: i.connectedAgents,
  node: i.node,
  platform: i.platform,
  configReload: {
    at: formatMicros(i.configReload.at, zone),
    result: i.configReload.result,
    error: i.configReload.error,
    lastSuccessAt: formatMicros(i.configReload.lastSuccessAt, zone)
  }
})

export const updatesJson = (r: Messages.UpdatesResult) => {
  switch (r._tag) {
    case "Garuda":
      return { kind: "garuda", updates: r.updates.map((u) => ({ ...u })) }
    case "Pacman":
      return { kind: "pacman", summary: { ...r.summary, packages: [...r.summary.packages] } }
    case "Cachyos":
      return { kind: "cachyos", summary: { ...r.summary, packages: [...r.summary.packages] } }
    case "Apt":
      return { kind: "apt", packages: [...r.packages] }
  }
}

export const cleanupJson = (c: typeof Messages.CleanupResponse.Type, zone: string) => ({
  before: formatMicros(c.before, zone),
  dryRun: c.dryRun,
  runs: c.runs,
  commands: c.commands,
  lines: c.lines,
  agentsSignalled: c.agentsSignalled
})

export const queryJson = (q: typeof Messages.QueryResponse.Type) => ({
  columns: [...q.columns],
  rows: q.rows.map((r) => [...r]),
  truncated: q.truncated
})

