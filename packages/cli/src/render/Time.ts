/**
 * Time as barto-cli prints and reads it: RFC 3339 stamps, UTC (`Z`) by default, local with
 * `--local`; microseconds only when the instant is not a whole second; wall times without an
 * offset read in a zone; durations.
 */
import * as Zone from "@barto/scheduler/Zone"

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
  const candidates = [
    ...new Set([-86_400_000, 86_400_000].map((d) => asUtc - zoneOffsetMinutes(asUtc + d, zone) * 60000))
  ]
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

/**
 * How far away a moment is, for people: `42 s`, `5 min 3 s`, `2 h 5 min`, `3 d 4 h` (the
 * `From now:` of `systemd-analyze calendar`, the "(in 42 s)" of `tail -f`).
 */
export const formatSpan = (ms: number): string => {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s} s`
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  if (d > 0) return h > 0 ? `${d} d ${h} h` : `${d} d`
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`
  return sec > 0 && m < 10 ? `${m} min ${sec} s` : `${m} min`
}

/** `in 42 s` for a future moment, `42 s ago` for a past one. */
export const fromNow = (atMs: number, nowMs: number): string =>
  atMs >= nowMs ? `in ${formatSpan(atMs - nowMs)}` : `${formatSpan(nowMs - atMs)} ago`
