/** Times in the browser's zone (UTC on hover), durations, and run states the UI may not know yet. */

export const KNOWN_STATES = ["running", "succeeded", "failed", "timed_out", "cancelled", "missed", "lost"]

/** A CSS class for a state; states added to bartos later still get a neutral look. */
export const stateClass = (state: string) => `state state-${KNOWN_STATES.includes(state) ? state : "unknown"}`

export const stateLabel = (state: string) => state.replace(/_/g, " ")

/** `40/100` as a fraction for a progress bar; undefined for any other text (shown as written). */
export const progressOf = (text: string | null): { value: number; max: number } | undefined => {
  const m = text === null ? null : /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text)
  if (m === null) return undefined
  const value = Number(m[1])
  const max = Number(m[2])
  return max > 0 && value <= max ? { value, max } : undefined
}

const pad = (n: number) => String(n).padStart(2, "0")

/** `2026-12-03 15:04:05` in the browser's zone. */
export const localTime = (micros: number | null | undefined): string => {
  if (micros === null || micros === undefined) return "—"
  const d = new Date(micros / 1000)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${
    pad(d.getSeconds())
  }`
}

export const utcTime = (micros: number | null | undefined): string =>
  micros === null || micros === undefined ? "" : `${new Date(micros / 1000).toISOString().replace(".000Z", "Z")} (UTC)`

export const zoneName = () => Intl.DateTimeFormat().resolvedOptions().timeZone

/** `850 ms`, `12.4 s`, `3 m 05 s`, `2 h 10 m`. */
export const duration = (micros: number | null | undefined): string => {
  if (micros === null || micros === undefined || micros < 0) return "—"
  const ms = micros / 1000
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m} m ${pad(Math.floor(s % 60))} s`
  return `${Math.floor(m / 60)} h ${pad(m % 60)} m`
}

export const runDuration = (run: { startedAt: number | null; finishedAt: number | null }, nowMicros: number) =>
  run.startedAt === null ? null : (run.finishedAt ?? nowMicros) - run.startedAt

/**
 * The short form of a run id, the same as barto-cli's tables (`Ids.shortRunId`, not imported: it
 * pulls node:crypto into the browser bundle): the last 8 hex digits. The first 8 are the UUIDv7's
 * time stamp and repeat across every run of the same minute; the tail is random.
 */
export const shortRunId = (runId: string): string => runId.slice(-8)

export const href = {
  dashboard: "#/",
  agent: (name: string) => `#/agents/${encodeURIComponent(name)}`,
  schedule: (agent: string, name: string) => `#/schedules/${encodeURIComponent(agent)}/${encodeURIComponent(name)}`,
  run: (id: string) => `#/runs/${encodeURIComponent(id)}`,
  failures: "#/failures",
  alerts: "#/alerts",
  calendar: "#/calendar"
}
