/**
 * Text primitives of everything barto-cli prints: the output `Style` (TTY, width, colour, zone),
 * colours, cleaning data values for a terminal, measuring and wrapping by grapheme, aligned tables
 * and `label: value` blocks. Pure functions over a `Style`, so the TTY / NO_COLOR behaviour is
 * unit-tested without a terminal.
 *
 * Rules (D10):
 * - Not a TTY: never truncate; columns are padded to the widest value (the reference cut every
 *   value to a 24-column terminal it assumed when piped).
 * - A TTY: a table wider than the terminal wraps its last column at grapheme boundaries (never in
 *   the middle of a character); when too little room is left it prints the value whole.
 * - Colours only on a TTY and never when `NO_COLOR` is set.
 */
import type * as Messages from "@barto/domain/Messages"
import * as Printable from "@barto/domain/Printable"

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
  // eslint-disable-next-line no-control-regex -- matching terminal escape sequences is the point
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
  /**
   * On a terminal too narrow for the whole table, columns with the lowest `drop` go first (one at
   * a time, until the rest fits or only undroppable columns are left). Absent: never dropped.
   */
  readonly drop?: number
}

/**
 * The columns to keep on a terminal of `style.columns`: drop the droppable ones, lowest `drop`
 * first, while the table is wider than the terminal. Piped output keeps every column.
 */
const fitColumns = (style: Style, columns: ReadonlyArray<Column>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = columns.map((c, i) => Math.max(displayWidth(c.header), ...rows.map((r) => displayWidth(r[i] ?? ""))))
  let keep = columns.map((_, i) => i)
  const total = () => keep.reduce((a, i) => a + widths[i]!, 0) + 2 * (keep.length - 1)
  while (style.tty && total() > style.columns) {
    const droppable = keep.filter((i) => columns[i]!.drop !== undefined)
    if (droppable.length === 0) break
    const victim = droppable.reduce((a, b) => (columns[b]!.drop! < columns[a]!.drop! ? b : a))
    keep = keep.filter((i) => i !== victim)
  }
  return keep
}

/**
 * An aligned table, one string per output line, two spaces between columns, no trailing spaces.
 * Cells must already be `clean`ed (they may carry colour codes; widths ignore them). On a
 * terminal, droppable columns (`drop`) go first when the table is too wide; then the last column
 * wraps.
 */
export const table = (
  style: Style,
  allColumns: ReadonlyArray<Column>,
  allRows: ReadonlyArray<ReadonlyArray<string>>
): Array<string> => {
  const keep = fitColumns(style, allColumns, allRows)
  const columns = keep.map((i) => allColumns[i]!)
  const rows = allRows.map((r) => keep.map((i) => r[i] ?? ""))
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
