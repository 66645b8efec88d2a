/**
 * Text renderings, one function per response; each returns the lines to print.
 */
import { shortRunId } from "@barto/domain/Ids"
import type * as Messages from "@barto/domain/Messages"
import { clean, keyValues, paint, paintState, type Style, table } from "./Text.js"
import { formatDuration, formatMicros, fromNow } from "./Time.js"

// ---------------------------------------------------------------------------------------------
// Text renderings, one function per response; each returns the lines to print
// ---------------------------------------------------------------------------------------------

export const infoText = (style: Style, i: typeof Messages.InfoResponse.Type): Array<string> =>
  keyValues(style, [
    ["version", clean(i.version)],
    ["protocol", String(i.protocol)],
    ["started at", formatMicros(i.startedAt, style.zone)],
    ["uptime", formatDuration(i.uptimeSecs * 1_000_000)],
    ["database", `${i.database} (${clean(i.databaseLocation)})`],
    ["listeners", i.listeners.map(clean).join(", ")],
    ["connected agents", String(i.connectedAgents)],
    ["node", clean(i.node)],
    ["platform", clean(i.platform)],
    ...reloadRows(style, i.configReload)
  ])

/** The last config (re)load; a rejected one with each of its problems, so it is seen at a glance. */
const reloadRows = (style: Style, r: Messages.ConfigReload): Array<readonly [string, string]> => {
  const at = formatMicros(r.at, style.zone)
  const since = formatMicros(r.lastSuccessAt, style.zone)
  switch (r.result) {
    case "loaded":
      return [["last reload", `none (config loaded at start, ${at})`]]
    case "applied":
      return [["last reload", `applied at ${at}`]]
    case "unchanged":
      return [["last reload", `unchanged at ${at} (config in use since ${since})`]]
    case "rejected":
      return [
        ["last reload", `${paint(style, "red", "REJECTED")} at ${at}; still using the config loaded at ${since}`],
        ...(r.error ?? "").split("\n").filter((line) => line !== "").map((line) =>
          ["reload error", clean(line)] as const
        )
      ]
  }
}

const sortedClients = (clients: ReadonlyArray<Messages.ClientRow>) =>
  [...clients].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.connectedAt - b.connectedAt))

export const clientsText = (style: Style, clients: ReadonlyArray<Messages.ClientRow>): Array<string> => {
  const rows = sortedClients(clients).map((c) => [
    paint(style, "blue", clean(c.name)),
    clean(c.ip),
    c.info === null ? "" : clean(c.info.osName),
    c.info === null ? "" : clean(c.info.osVersion),
    c.info === null ? "" : clean(c.info.kernel),
    c.info === null ? "unknown" : clean(c.info.agentVersion),
    formatMicros(c.connectedAt, style.zone)
  ])
  return [
    ...(rows.length === 0 ? [] : [
      ...table(style, [
        { header: "NAME" },
        { header: "IP" },
        { header: "OS" },
        { header: "OS VERSION" },
        { header: "KERNEL" },
        { header: "VERSION" },
        { header: "CONNECTED" }
      ], rows),
      ""
    ]),
    `Total clients: ${clients.length}`,
    ...refusedText(style, clients)
  ]
}

/** Names another instance tried to take while they were live: each such agent runs twice otherwise. */
const refusedText = (style: Style, clients: ReadonlyArray<Messages.ClientRow>): Array<string> => {
  const lines = sortedClients(clients).flatMap((c) =>
    c.refused === undefined ? [] : [
      `  ${paint(style, "blue", clean(c.name))}: ${c.refused.count} attempt(s), last from ${clean(c.refused.lastIp)} ` +
      `at ${formatMicros(c.refused.lastAt, style.zone)}`
    ]
  )
  return lines.length === 0
    ? []
    : ["", "Refused duplicate connections (another instance used a name that was live):", ...lines]
}

export const clientVersions = (clients: ReadonlyArray<Messages.ClientRow>) =>
  sortedClients(clients).map((c) => ({ name: c.name, version: c.info === null ? "unknown" : c.info.agentVersion }))

export const clientVersionsText = (style: Style, clients: ReadonlyArray<Messages.ClientRow>): Array<string> => {
  const rows = clientVersions(clients).map((c) => [paint(style, "blue", clean(c.name)), clean(c.version)])
  return [
    ...(rows.length === 0 ? [] : [...table(style, [{ header: "NAME" }, { header: "VERSION" }], rows), ""]),
    `Total clients: ${clients.length}`
  ]
}

export const commandsText = (_style: Style, commands: ReadonlyArray<string>): Array<string> => [
  `Total commands: ${commands.length}`,
  ...(commands.length === 0 ? [] : ["", ...commands.map(clean)])
]

const runSummary = (
  style: Style,
  l: { readonly runId: string; readonly runState: Messages.RunState; readonly exitCode: number | null }
) => `run ${clean(l.runId)} ${paintState(style, l.runState)}${l.exitCode === null ? "" : ` (exit ${l.exitCode})`}`

/** A line of job output: time, stream marker (`!` for stderr, `+` for a continuation), data. */
export const outputLine = (style: Style, l: Messages.LineRow): string => {
  const mark = l.stream === "stderr" ? paint(style, "red", "!") : " "
  const cont = l.continuation ? paint(style, "dim", "+") : " "
  // Padded to the width of a stamp with microseconds, so the data column stays put even while
  // streaming (whole seconds print without a fraction).
  const ts = formatMicros(l.ts, style.zone).padEnd(stampWidth(style.zone))
  return `${paint(style, "dim", ts)} ${mark}${cont}${clean(l.data)}`.trimEnd()
}

const stampWidth = (zone: string) => formatMicros(1, zone).length

/** Output lines grouped by run, each run headed by its id, state and exit code. */
export const linesText = (style: Style, lines: ReadonlyArray<Messages.LineRow>, window?: string): Array<string> => {
  const out: Array<string> = [`Total outputs: ${lines.length}${windowSuffix(style, window)}`]
  let current: string | undefined
  for (const l of lines) {
    if (l.runId !== current) {
      current = l.runId
      out.push("", `${runSummary(style, l)}  ${paint(style, "blue", clean(l.agent))} ${clean(l.schedule)}`)
    }
    out.push(`  ${outputLine(style, l)}`)
  }
  return out
}

/** ` (the last 24 h, …)`: which default window a total counts, when one applied. */
const windowSuffix = (style: Style, window: string | undefined): string =>
  window === undefined ? "" : paint(style, "dim", ` (${window})`)

export const failedText = (style: Style, failed: ReadonlyArray<Messages.FailedRow>, window?: string): Array<string> => {
  const out: Array<string> = [`Total failed outputs: ${failed.length}${windowSuffix(style, window)}`]
  for (const f of failed) {
    const how = f.signal !== null
      ? `signal ${clean(f.signal)}`
      : f.exitCode !== null
      ? `exit ${f.exitCode}`
      : "no exit code"
    out.push(
      "",
      `${paint(style, "blue", clean(f.agent))} ${clean(f.schedule)} ${paintState(style, f.state)} (${how}) at ${
        f.finishedAt === null ? "-" : formatMicros(f.finishedAt, style.zone)
      }`,
      `  run ${clean(f.runId)}  command: ${clean(f.command)}`,
      ...f.lines.map((l) => `  | ${clean(l)}`.trimEnd())
    )
  }
  return out
}

export const cmdText = (
  style: Style,
  byAgent: ReadonlyArray<{ readonly agent: string; readonly lines: ReadonlyArray<Messages.LineRow> }>,
  window?: string
): Array<string> => {
  const total = byAgent.reduce((n, a) => n + a.lines.length, 0)
  if (total === 0 && byAgent.length === 0) return [`Total outputs: 0${windowSuffix(style, window)}`]
  const sorted = [...byAgent].sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0))
  return sorted.flatMap((a, i) => [
    ...(i === 0 ? [] : [""]),
    paint(style, "bold", `== ${clean(a.agent)} ==`),
    ...linesText(style, a.lines, window)
  ])
}

const mib = (n: number) => `${n.toFixed(2)} MiB`

export const updatesText = (style: Style, r: Messages.UpdatesResult): Array<string> => {
  switch (r._tag) {
    case "Garuda": {
      const rows = r.updates.map((u) => [
        paint(style, "blue", clean(u.package)),
        `(${clean(u.channel)})`,
        clean(u.oldVersion),
        "->",
        clean(u.newVersion),
        clean(u.sizeChange),
        clean(u.downloadSize)
      ])
      if (rows.length === 0) return ["No updates"]
      return table(style, [
        { header: "PACKAGE" },
        { header: "CHANNEL" },
        { header: "OLD" },
        { header: "" },
        { header: "NEW" },
        { header: "SIZE CHANGE", align: "right" },
        { header: "DOWNLOAD", align: "right" }
      ], rows)
    }
    case "Pacman":
    case "Cachyos": {
      const s = r.summary
      return [
        `Packages (${s.updateCount}) ${s.packages.map(clean).join(", ")}`.trimEnd(),
        "",
        `Total Download Size:   ${mib(s.downloadSize)}`,
        `Total Installed Size:  ${mib(s.installSize)}`,
        `Net Upgrade Size:      ${mib(s.netSize)}`
      ]
    }
    case "Apt":
      return r.packages.length === 0 ? ["No updates"] : r.packages.map(clean)
  }
}

export const queryText = (style: Style, q: typeof Messages.QueryResponse.Type): Array<string> => {
  const rows = q.rows.map((r) => r.map((cell) => (cell === null ? paint(style, "dim", "NULL") : clean(cell))))
  return [
    ...(q.columns.length === 0 ? [] : table(style, q.columns.map((c) => ({ header: clean(c) })), rows)),
    "",
    `Total rows: ${q.rows.length}${q.truncated ? " (truncated at the server's row or byte cap)" : ""}`
  ]
}

export const cleanupText = (style: Style, c: typeof Messages.CleanupResponse.Type): Array<string> => {
  const verb = c.dryRun ? "would delete" : "deleted"
  return [
    `${c.dryRun ? "dry run: " : ""}everything before ${formatMicros(c.before, style.zone)}`,
    `${verb} ${c.runs} runs`,
    `${verb} ${c.commands} command results`,
    `${verb} ${c.lines} output lines`,
    `${c.dryRun ? "would signal" : "signalled"} ${c.agentsSignalled} connected agents`
  ]
}

/** `succeeded (0)`, `failed (3)`, `lost`, `missed ×4`: the state of a run and how it exited. */
const resultCell = (style: Style, r: Messages.RunRow): string => {
  const how = r.signal !== null ? ` (${clean(r.signal)})` : r.exitCode !== null ? ` (${r.exitCode})` : ""
  return `${paintState(style, r.state)}${r.occurrences > 1 ? ` ×${r.occurrences}` : ""}${how}`
}

const timeoutCell = (secs: number | null | undefined): string =>
  secs === undefined ? "?" : secs === null ? "none" : formatDuration(secs * 1_000_000).replace(/\.0+s$/, "s")

/** The agent's missed-tick policy: `Burst (10)` (its catch_up_limit), `Delay`, `Skip`; `-` unknown, `?` older bartos. */
const missedTickCell = (s: Messages.ScheduleRow): string =>
  s.missedTick === undefined
    ? "?"
    : s.missedTick === null
    ? "-"
    : s.missedTick === "Burst" && s.catchUpLimit != null
    ? `Burst (${s.catchUpLimit})`
    : s.missedTick

/**
 * Like `systemctl list-timers` and `kubectl get cronjob`: per schedule its last run and result,
 * the next one (or paused), and the effective settings. On a narrow terminal the settings go
 * first, then the calendar, the duration and the absolute times.
 */
export const schedulesText = (
  style: Style,
  schedules: ReadonlyArray<Messages.ScheduleRow>,
  nowMs: number
): Array<string> => {
  if (schedules.length === 0) return ["No schedules"]
  const rows = schedules.map((s) => {
    const last = s.lastRun ?? null
    return [
      paint(style, "blue", clean(s.agent)) + (s.connected ? "" : paint(style, "red", " (offline)")),
      clean(s.name),
      last === null ? "-" : fromNow(last.scheduledAt / 1000, nowMs),
      last === null ? "-" : resultCell(style, last),
      last === null ? "-" : runDuration(last),
      s.paused || s.nextAt === null ? "-" : formatMicros(s.nextAt, style.zone),
      // LEFT outlives NEXT on a narrow terminal, so it is the one that says paused / never.
      s.paused ? paint(style, "yellow", "paused") : s.nextAt === null ? "never" : fromNow(s.nextAt / 1000, nowMs),
      timeoutCell(s.timeoutSecs),
      s.overlap ?? "?",
      s.onFailure ?? "?",
      missedTickCell(s),
      s.timezone === undefined ? "?" : clean(s.timezone),
      clean(s.calendar)
    ]
  })
  return table(style, [
    { header: "AGENT" },
    { header: "SCHEDULE" },
    { header: "LAST", drop: 6 },
    { header: "RESULT" },
    { header: "DURATION", align: "right", drop: 3 },
    { header: "NEXT", drop: 4 },
    { header: "LEFT", drop: 7 },
    { header: "TIMEOUT", drop: 2 },
    { header: "OVERLAP", drop: 1 },
    { header: "ON FAILURE", drop: 1 },
    { header: "MISSED TICK", drop: 1 },
    { header: "ZONE", drop: 2 },
    { header: "CALENDAR", drop: 5 }
  ], rows)
}

/** `barto-cli status`: the fleet at a glance. */
export const statusText = (style: Style, s: typeof Messages.StatusResponse.Type, nowMs: number): Array<string> => {
  const online = s.agents.filter((a) => a.online).length
  // The tables are indented by two: they fit in two columns less.
  const inner: Style = { ...style, columns: style.columns - 2 }
  const agents = table(
    inner,
    [{ header: "AGENT" }, { header: "STATE" }, { header: "LAST SEEN", drop: 2 }, {
      header: "SCHEDULES",
      align: "right",
      drop: 1
    }, {
      header: "VERSION",
      drop: 0
    }],
    s.agents.map((a) => [
      paint(style, "blue", clean(a.name)),
      a.online ? paint(style, "green", "online") : paint(style, "red", "offline"),
      a.online
        ? `connected ${a.connectedAt === null ? "" : fromNow(a.connectedAt / 1000, nowMs)}`.trim()
        : a.lastSeenAt === null
        ? "never"
        : fromNow(a.lastSeenAt / 1000, nowMs),
      String(a.schedules),
      a.agentVersion === null ? "-" : clean(a.agentVersion)
    ])
  )
  const runLine = (r: Messages.RunRow) =>
    `  ${shortRunId(r.runId)}  ${paint(style, "blue", clean(r.agent))}/${clean(r.schedule)}  ${resultCell(style, r)}  ${
      fromNow((r.finishedAt ?? r.startedAt ?? r.scheduledAt) / 1000, nowMs)
    }`
  return [
    `Agents: ${online} online, ${s.agents.length - online} offline`,
    ...(s.agents.length === 0 ? [] : agents.map((l) => `  ${l}`)),
    "",
    `Running now: ${s.running.length}`,
    ...s.running.map(runLine),
    "",
    `Failures in the last 24 h: ${
      s.failures24h === 0 ? paint(style, "green", "0") : paint(style, "red", String(s.failures24h))
    }`,
    ...s.recentFailures.map(runLine),
    "",
    ...reloadRows(style, s.configReload).map(([k, v]) => `${k[0]!.toUpperCase()}${k.slice(1)}: ${v}`),
    "",
    `Schedules: ${s.schedules.length}`,
    ...schedulesText(inner, s.schedules, nowMs).map((l) => (s.schedules.length === 0 ? "" : `  ${l}`)).filter((l) =>
      l !== ""
    )
  ]
}

const runDuration = (r: Messages.RunRow): string =>
  r.startedAt !== null && r.finishedAt !== null ? formatDuration(r.finishedAt - r.startedAt) : "-"

const exitOf = (r: { readonly exitCode: number | null; readonly signal: string | null }): string =>
  r.signal !== null ? clean(r.signal) : r.exitCode !== null ? String(r.exitCode) : "-"

/** `missed ×N` for a range row (it stands for N occurrences), else the state. */
const stateCell = (style: Style, r: Messages.RunRow): string =>
  r.occurrences > 1
    ? `${paintState(style, r.state)} ×${r.occurrences}`
    : `${paintState(style, r.state)}${beatCell(r)}`

/** A running run's last heartbeat: ` 40/100 degraded`. */
const beatCell = (r: Messages.RunRow): string => {
  if (r.heartbeat === undefined || r.state !== "running") return ""
  const parts = [r.heartbeat.progress, r.heartbeat.status].filter((p): p is string => p !== null).map(clean)
  return parts.length === 0 ? "" : ` ${parts.join(" ")}`
}

/** Why (missed, interrupted), and where a range ends. */
const reasonCell = (style: Style, r: Messages.RunRow): string => {
  const reason = r.reason === null ? "" : clean(r.reason)
  if (r.scheduledUntil === null) return reason
  const until = `until ${formatMicros(r.scheduledUntil, style.zone)}`
  return reason === "" ? until : `${reason}, ${until}`
}

/**
 * The REASON column appears when a row has a reason; a missed range shows its count in STATE,
 * its last occurrence in REASON, and the rows are followed by how many occurrences they stand for.
 */
export const runsText = (style: Style, runs: ReadonlyArray<Messages.RunRow>): Array<string> => {
  if (runs.length === 0) return ["No runs"]
  const withReason = runs.some((r) => r.reason !== null || r.scheduledUntil !== null)
  const rows = runs.map((r) => [
    clean(shortRunId(r.runId)),
    paint(style, "blue", clean(r.agent)),
    clean(r.schedule),
    r.trigger,
    stateCell(style, r),
    formatMicros(r.scheduledAt, style.zone),
    runDuration(r),
    exitOf(r),
    ...(withReason ? [reasonCell(style, r)] : [])
  ])
  const out = table(style, [
    { header: "RUN" },
    { header: "AGENT" },
    { header: "SCHEDULE" },
    { header: "TRIGGER" },
    { header: "STATE" },
    { header: "SCHEDULED" },
    { header: "DURATION", align: "right" },
    { header: "EXIT", align: "right" },
    ...(withReason ? [{ header: "REASON" }] : [])
  ], rows)
  const occurrences = runs.reduce((n, r) => n + r.occurrences, 0)
  return occurrences === runs.length
    ? out
    : [...out, "", `Total: ${runs.length} row${runs.length === 1 ? "" : "s"}, ${occurrences} occurrences`]
}

/** The closing line of a tail / `run --wait`. */
export const runEndText = (style: Style, r: Messages.RunRow): string =>
  `run ${clean(r.runId)} ${paintState(style, r.state)}${r.reason === null ? "" : ` (${clean(r.reason)})`}${
    r.signal !== null ? ` (signal ${clean(r.signal)})` : r.exitCode !== null ? ` (exit ${r.exitCode})` : ""
  }${r.startedAt !== null && r.finishedAt !== null ? ` in ${runDuration(r)}` : ""}`

/** `host/backup`: who a line of a fleet-wide tail belongs to. */
export const runPrefix = (style: Style, r: { readonly agent: string; readonly schedule: string }): string =>
  paint(style, "blue", `${clean(r.agent)}/${clean(r.schedule)}`)

/** Between two runs of a continuous tail: when the next one is due, or why none is. */
export const waitingText = (style: Style, w: Messages.TailWaiting, nowMs: number): string => {
  const who = `${clean(w.agent)}/${clean(w.schedule)}`
  if (w.paused) {
    return paint(style, "yellow", `waiting: ${who} is paused (barto-cli resume ${clean(w.agent)} ${clean(w.schedule)})`)
  }
  if (w.nextAt === null) return paint(style, "yellow", `waiting: ${who} never fires again`)
  return paint(
    style,
    "dim",
    `waiting for the next run of ${who} at ${formatMicros(w.nextAt, style.zone)} (${fromNow(w.nextAt / 1000, nowMs)})`
  )
}
