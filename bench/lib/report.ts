/**
 * The one result shape every suite returns, the one table `npm run bench` prints, and percentiles.
 */

export type Verdict = "pass" | "FAIL" | "info" | "skip" | "error"

export interface Row {
  readonly suite: string
  readonly metric: string
  readonly value: number | null
  readonly unit: string
  /** Human form of the target, e.g. "≤ 5 ms", "≥ 2× peer"; "" when the row is informational. */
  readonly target: string
  /** The baseline or peer the row is compared with, and what it is. */
  readonly peer?: { readonly label: string; readonly value: number } | undefined
  /** value / peer.value. */
  readonly ratio?: number | undefined
  readonly verdict: Verdict
  /** Anything a reader needs to interpret the row (how it was measured, why it was skipped). */
  readonly note?: string | undefined
}

export const ratioOf = (value: number | null, peer: number | undefined): number | undefined =>
  value === null || peer === undefined || peer === 0 ? undefined : value / peer

/** Verdict for "value ≤ limit" / "value ≥ limit" checks. */
export const atMost = (value: number | null, limit: number): Verdict =>
  value === null ? "error" : value <= limit ? "pass" : "FAIL"
export const atLeast = (value: number | null, limit: number): Verdict =>
  value === null ? "error" : value >= limit ? "pass" : "FAIL"

/** Nearest-rank percentile of an unsorted sample. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1]!
}

export const median = (values: ReadonlyArray<number>): number => percentile(values, 50)

const fmtNumber = (v: number): string => {
  if (!Number.isFinite(v)) return String(v)
  const abs = Math.abs(v)
  if (abs >= 1000) return Math.round(v).toLocaleString("en-US")
  if (abs >= 100) return v.toFixed(0)
  if (abs >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

export const formatTable = (rows: ReadonlyArray<Row>): string => {
  const header = ["suite", "metric", "value", "unit", "target", "baseline/peer", "ratio", "pass/fail"]
  const body = rows.map((r) => [
    r.suite,
    r.metric,
    r.value === null ? "–" : fmtNumber(r.value),
    r.unit,
    r.target === "" ? "–" : r.target,
    r.peer === undefined ? "–" : `${r.peer.label} ${fmtNumber(r.peer.value)}`,
    r.ratio === undefined ? "–" : `${r.ratio.toFixed(2)}×`,
    r.verdict
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const right = new Set([2, 6])
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd()
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n")
}

/** Notes printed under the table, numbered, for rows that carry one. */
export const formatNotes = (rows: ReadonlyArray<Row>): string =>
  rows.filter((r) => r.note !== undefined).map((r) => `- ${r.suite} / ${r.metric}: ${r.note}`).join("\n")
