/**
 * Everything barto-cli prints: time stamps, cleaned data values, aligned tables, colours, and the
 * text and `--json` forms of every response. Pure functions over a `Style`, so the TTY / NO_COLOR
 * / `--local` behaviour is unit-tested without a terminal.
 *
 * Rules (D10):
 * - Not a TTY: never truncate; columns are padded to the widest value (the reference cut every
 *   value to a 24-column terminal it assumed when piped).
 * - A TTY: a table wider than the terminal wraps its last column at grapheme boundaries (never in
 *   the middle of a character); when too little room is left it prints the value whole.
 * - Colours only on a TTY and never when `NO_COLOR` is set.
 * - Time stamps are RFC 3339, UTC (`Z`) by default, local with `--local`; microseconds are shown
 *   only when the instant is not a whole second.
 */
import type * as Messages from "@barto/domain/Messages"
import * as Printable from "@barto/domain/Printable"
import * as Zone from "@barto/scheduler/Zone"

// ---------------------------------------------------------------------------------------------
// Style
// ---------------------------------------------------------------------------------------------

export interface Style {
  /** stdout is a terminal. */
  readonly tty: boolean
  /** Terminal width (only meaningful when `tty`). */
  readonly columns: number
  /** ANSI colours allowed (a TTY and no `NO_COLOR`). */
  readonly color: boolean
  /** Time zone for time stamps: `"UTC"` or an IANA name (the local zone with `--local`). */
  readonly zone: string
}

export const localZone = (): string => Intl.DateTimeFormat().resolvedOptions().timeZone ?? "UTC"

export const makeStyle = (options: {
  readonly tty: boolean
  readonly columns?: number | undefined
  readonly env: Record<string, string | undefined>
  readonly local: boolean
}): Style => ({
  tty: options.tty,
  columns: options.columns !== undefined && options.columns > 0 ? options.columns : 80,
  // no-color.org says "present and not empty"; being stricter costs nothing and matches the brief.
  color: options.tty && options.env["NO_COLOR"] === undefined,
  zone: options.local ? localZone() : "UTC"
})

/** A plain style for JSON output and tests: no TTY, no colour, UTC. */
export const plainStyle: Style = { tty: false, columns: 80, color: false, zone: "UTC" }

// ---------------------------------------------------------------------------------------------
// Colours
// ---------------------------------------------------------------------------------------------

const SGR = {
  bold: "1",
  dim: "2",
  red: "31",
  green: "32",
  yellow: "33",
  blue: "34",
  magenta: "35",
  cyan: "36"
} as const
export type Paint = keyof typeof SGR

export const paint = (style: Style, color: Paint, text: string): string =>
  style.color && text.length > 0 ? `\u001b[${SGR[color]}m${text}\u001b[0m` : text

const stateColor = (state: Messages.RunState): Paint => {
  switch (state) {
    case "succeeded":
      return "green"
    case "running":
      return "cyan"
    case "missed":
    case "cancelled":
    case "interrupted":
      return "yellow"
    case "failed":
    case "timed_out":
    case "lost":
      return "red"
  }
}

export const paintState = (style: Style, state: Messages.RunState): string => paint(style, stateColor(state), state)

// ---------------------------------------------------------------------------------------------
// Cleaning and measuring text
// ---------------------------------------------------------------------------------------------

// CSI (ESC [ … final), OSC (ESC ] … BEL | ESC \), other two-byte escapes, and 8-bit CSI.
const ANSI =
  // eslint-disable-next-line no-control-regex
  /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b[@-Z\\-_]|\u009b[0-?]*[ -/]*[@-~]/g

/**
 * A data value made safe to print on one line: tab → 3 spaces (as the reference), CR and LF →
 * space, ANSI escape sequences removed, and any other control character (C0, DEL, C1, bidi
 * overrides: `Printable`) dropped: job output must never be able to drive the user's terminal.
 */
export const clean = (text: string): string =>
  Printable.stripControls(text.replace(ANSI, "").replace(/\t/g, "   ").replace(/\r\n|[\r\n]/g, " "))

// The only escape sequences barto-cli writes itself (`paint`).
// eslint-disable-next-line no-control-regex
const OWN_SGR = /(\u001b\[(?:[0-2]|3[1-6])m)/

/**
 * The last pass over everything printed on stdout: our own colour codes stay, and any control
 * character that a rendering forgot to `clean` (a run id, a message) is shown escaped instead of
 * reaching the terminal. Tabs and newlines stay.
 */
export const terminalSafe = (text: string): string =>
  text.split(OWN_SGR).map((part, i) => (i % 2 === 1 ? part : Printable.escapeControlsKeepLines(part))).join("")

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" })

/** Grapheme clusters: the units a wrap may split between. */
export const graphemes = (text: string): Array<string> => Array.from(segmenter.segment(text), (s) => s.segment)

const isWide = (cp: number): boolean =>
  (cp >= 0x1100 && cp <= 0x115f) ||
  (cp >= 0x2e80 && cp <= 0x303e) ||
  (cp >= 0x3041 && cp <= 0x33ff) ||
  (cp >= 0x3400 && cp <= 0x4dbf) ||
  (cp >= 0x4e00 && cp <= 0x9fff) ||
  (cp >= 0xa000 && cp <= 0xa4cf) ||
  (cp >= 0xac00 && cp <= 0xd7a3) ||
  (cp >= 0xf900 && cp <= 0xfaff) ||
  (cp >= 0xfe30 && cp <= 0xfe4f) ||
  (cp >= 0xff00 && cp <= 0xff60) ||
  (cp >= 0xffe0 && cp <= 0xffe6) ||
  (cp >= 0x1f300 && cp <= 0x1f64f) ||
  (cp >= 0x1f900 && cp <= 0x1f9ff) ||
  (cp >= 0x20000 && cp <= 0x3fffd)

const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]$/u

const graphemeWidth = (g: string): number => {
  const cp = g.codePointAt(0) ?? 0
  if (ZERO_WIDTH.test(String.fromCodePoint(cp))) return 0
  return isWide(cp) ? 2 : 1
}

/** Terminal columns taken by `text` (colour codes count zero). */
export const displayWidth = (text: string): number => {
  let width = 0
  for (const g of graphemes(text.replace(ANSI, ""))) width += graphemeWidth(g)
  return width
}

/** Splits `text` into pieces of at most `width` columns, only between grapheme clusters. */
export const wrap = (text: string, width: number): Array<string> => {
  if (width < 1) return [text]
  const out: Array<string> = []
  let line = ""
  let used = 0
  for (const g of graphemes(text)) {
    const w = graphemeWidth(g)
    if (used + w > width && line.length > 0) {
      out.push(line)
      line = ""
      used = 0
    }
    line += g
    used += w
  }
  if (line.length > 0 || out.length === 0) out.push(line)
  return out
}

const padEnd = (text: string, width: number): string => text + " ".repeat(Math.max(0, width - displayWidth(text)))
const padStart = (text: string, width: number): string => " ".repeat(Math.max(0, width - displayWidth(text))) + text

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

export type Align = "left" | "right"

export interface Column {
  readonly header: string
  readonly align?: Align
}

/**
 * An aligned table, one string per output line, two spaces between columns, no trailing spaces.
 * Cells must already be `clean`ed (they may carry colour codes; widths ignore them).
 */
export const table = (
  style: Style,
  columns: ReadonlyArray<Column>,
  rows: ReadonlyArray<ReadonlyArray<string>>
): Array<string> => {
  const n = columns.length
  const widths = columns.map((c, i) => Math.max(displayWidth(c.header), ...rows.map((r) => displayWidth(r[i] ?? ""))))
  const gap = "  "
  // Start column of the last field, for wrapping on a terminal.
  const lastStart = widths.slice(0, n - 1).reduce((a, w) => a + w + gap.length, 0)
  const room = style.columns - lastStart
  // Wrap only when enough room remains for the wrapped text to be readable; otherwise print the
  // value whole and let the terminal fold it (never cut).
  const wrapLast = style.tty && room >= 20
  const line = (cells: ReadonlyArray<string>, header: boolean): Array<string> => {
    const parts = cells.map((cell, i) => {
      const c = columns[i]!
      const text = header ? paint(style, "bold", cell) : cell
      if (i === n - 1) return text
      return c.align === "right" ? padStart(text, widths[i]!) : padEnd(text, widths[i]!)
    })
    const last = parts[n - 1] ?? ""
    const head = parts.slice(0, n - 1).join(gap)
    const prefix = n > 1 ? head + gap : ""
    if (columns[n - 1]?.align === "right") {
      return [(prefix + padStart(last, widths[n - 1]!)).trimEnd()]
    }
    if (wrapLast && displayWidth(last) > room) {
      const pieces = wrap(last, room)
      return pieces.map((piece, i) => (i === 0 ? prefix + piece : " ".repeat(lastStart) + piece).trimEnd())
    }
    return [(prefix + last).trimEnd()]
  }
  return [
    ...line(columns.map((c) => c.header), true),
    ...rows.flatMap((r) => line(columns.map((_, i) => r[i] ?? ""), false))
  ]
}

/** `label: value` lines with the labels right-aligned (the `systemd-analyze calendar` look). */
export const keyValues = (style: Style, pairs: ReadonlyArray<readonly [string, string]>): Array<string> => {
  const width = Math.max(0, ...pairs.map(([k]) => displayWidth(k)))
  return pairs.map(([k, v]) => `${paint(style, "bold", padStart(k, width))}: ${v}`.trimEnd())
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/** True when `zone` is an IANA zone name (or UTC) that this runtime knows. */
export const isValidZone = (zone: string): boolean => Zone.canonicalZone(zone) !== undefined

interface Wall {
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour: number
  readonly minute: number
  readonly second: number
}

/** The wall clock of `zone` at instant `ms` (whole seconds). */
const wallOf = (ms: number, zone: string): Wall => {
  const secs = Math.floor(ms / 1000)
  const d = new Date((zone === "UTC" ? secs : Zone.wallSeconds(zone, secs)) * 1000)
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds()
  }
}

const wallAsUtc = (w: Wall): number => {
  const d = new Date(0)
  d.setUTCFullYear(w.year, w.month - 1, w.day)
  d.setUTCHours(w.hour, w.minute, w.second, 0)
  return d.getTime()
}

/** Offset of `zone` from UTC at instant `ms`, in minutes (east positive). */
export const zoneOffsetMinutes = (ms: number, zone: string): number =>
  zone === "UTC" ? 0 : Math.round(Zone.offsetSeconds(zone, Math.floor(ms / 1000)) / 60)

/**
 * The instant at which the wall clock of `zone` reads `wall` (for date inputs without an
 * offset). In a DST gap the later side is taken; in a repeated hour, the first.
 */
export const instantOfWall = (wall: Wall, zone: string): number => {
  const asUtc = wallAsUtc(wall)
  if (zone === "UTC") return asUtc
  // The offsets a day either side bracket any transition near this wall time.
  const candidates = [...new Set([-86_400_000, 86_400_000].map((d) => asUtc - zoneOffsetMinutes(asUtc + d, zone) * 60000))]
  const valid = candidates.filter((ms) => wallAsUtc(wallOf(ms, zone)) === asUtc)
  // A gap always moves clocks forward: the later candidate reads the wall time on the far side.
  return valid.length > 0 ? Math.min(...valid) : Math.max(...candidates)
}

const p2 = (n: number) => String(n).padStart(2, "0")

/** RFC 3339 of an instant in microseconds; `.ffffff` only when not a whole second. */
export const formatMicros = (micros: number, zone: string = "UTC"): string => {
  const secs = Math.floor(micros / 1_000_000)
  const frac = micros - secs * 1_000_000
  return Zone.formatRfc3339(secs, zone, frac === 0 ? "" : `.${String(frac).padStart(6, "0")}`)
}

/** RFC 3339 of an instant in epoch milliseconds. */
export const formatMs = (ms: number, zone: string = "UTC"): string => formatMicros(Math.round(ms) * 1000, zone)

export const formatMicrosOrNull = (micros: number | null, zone: string): string | null =>
  micros === null ? null : formatMicros(micros, zone)

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|z|[+-]\d{2}:?\d{2})?)?$/

/**
 * Parses an RFC 3339 instant, or a date / date-time without an offset, read as wall time in
 * `zone`. Returns epoch microseconds, or undefined when the text is not such a time.
 */
export const parseInstant = (text: string, zone: string): number | undefined => {
  const m = RFC3339.exec(text.trim())
  if (m === null) return undefined
  const [, y, mo, d, h, mi, s, f, off] = m
  const wall: Wall = {
    year: Number(y),
    month: Number(mo),
    day: Number(d),
    hour: Number(h ?? 0),
    minute: Number(mi ?? 0),
    second: Number(s ?? 0)
  }
  if (wall.month < 1 || wall.month > 12 || wall.day < 1 || wall.day > 31 || wall.hour > 23 || wall.minute > 59) {
    return undefined
  }
  if (wall.second > 59) return undefined
  // Reject dates like 2026-02-30 instead of letting Date roll them over.
  const check = new Date(Date.UTC(wall.year, wall.month - 1, wall.day))
  if (check.getUTCMonth() !== wall.month - 1 || check.getUTCDate() !== wall.day) return undefined
  const micros = f === undefined ? 0 : Number(f.padEnd(6, "0").slice(0, 6))
  let ms: number
  if (off === undefined) {
    ms = instantOfWall(wall, zone)
  } else if (off === "Z" || off === "z") {
    ms = wallAsUtc(wall)
  } else {
    const sign = off.startsWith("-") ? -1 : 1
    const digits = off.slice(1).replace(":", "")
    const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))
    ms = wallAsUtc(wall) - sign * minutes * 60000
  }
  return ms * 1000 + micros
}

/** `1.234s`, `2m03s`, `1h02m05s`, `3d04h`. */
export const formatDuration = (micros: number): string => {
  if (micros < 0) micros = 0
  const totalSecs = micros / 1_000_000
  if (totalSecs < 60) return `${totalSecs.toFixed(totalSecs < 10 ? 3 : 1)}s`
  const s = Math.floor(totalSecs)
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  if (d > 0) return `${d}d${p2(h)}h`
  if (h > 0) return `${h}h${p2(m)}m${p2(sec)}s`
  return `${m}m${p2(sec)}s`
}

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
  occurrences: r.occurrences,
  ...(r.heartbeat === undefined ? {} : {
    heartbeat: { ...r.heartbeat, at: formatMicros(r.heartbeat.at, zone) }
  })
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
        ...(r.error ?? "").split("\n").filter((line) => line !== "").map((line) => ["reload error", clean(line)] as const)
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
  return lines.length === 0 ? [] : ["", "Refused duplicate connections (another instance used a name that was live):", ...lines]
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
export const linesText = (style: Style, lines: ReadonlyArray<Messages.LineRow>): Array<string> => {
  const out: Array<string> = [`Total outputs: ${lines.length}`]
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

export const failedText = (style: Style, failed: ReadonlyArray<Messages.FailedRow>): Array<string> => {
  const out: Array<string> = [`Total failed outputs: ${failed.length}`]
  for (const f of failed) {
    const how = f.signal !== null ? `signal ${clean(f.signal)}` : f.exitCode !== null ? `exit ${f.exitCode}` : "no exit code"
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
  byAgent: ReadonlyArray<{ readonly agent: string; readonly lines: ReadonlyArray<Messages.LineRow> }>
): Array<string> => {
  const total = byAgent.reduce((n, a) => n + a.lines.length, 0)
  if (total === 0 && byAgent.length === 0) return ["Total outputs: 0"]
  const sorted = [...byAgent].sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0))
  return sorted.flatMap((a, i) => [
    ...(i === 0 ? [] : [""]),
    paint(style, "bold", `== ${clean(a.agent)} ==`),
    ...linesText(style, a.lines)
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

export const schedulesText = (style: Style, schedules: ReadonlyArray<Messages.ScheduleRow>): Array<string> => {
  if (schedules.length === 0) return ["No schedules"]
  const rows = schedules.map((s) => [
    paint(style, "blue", clean(s.agent)),
    clean(s.name),
    s.nextAt === null ? "never" : formatMicros(s.nextAt, style.zone),
    s.paused ? paint(style, "yellow", "paused") : "active",
    s.connected ? paint(style, "green", "yes") : paint(style, "red", "no"),
    clean(s.calendar)
  ])
  return table(style, [
    { header: "AGENT" },
    { header: "SCHEDULE" },
    { header: "NEXT" },
    { header: "STATE" },
    { header: "CONNECTED" },
    { header: "CALENDAR" }
  ], rows)
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
    clean(r.runId),
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
