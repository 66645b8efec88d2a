/**
 * IANA time zone support through `Intl` (no tz database of our own). Only the non-UTC path of
 * the calendar engine comes here; UTC never touches `Intl`.
 */
import { daysFromCivil } from "./civil.js"

const formatters = new Map<string, Intl.DateTimeFormat>()

const formatterFor = (zone: string): Intl.DateTimeFormat => {
  let f = formatters.get(zone)
  if (f === undefined) {
    // `era` keeps years ≤ 0 unambiguous; `h23` avoids the "24:00" some ICU builds print.
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      era: "short",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric"
    })
    formatters.set(zone, f)
  }
  return f
}

/**
 * The canonical IANA name of `name` (case-insensitive, aliases resolved by ICU, e.g.
 * `europe/berlin` → `Europe/Berlin`, `Etc/UTC` → `UTC`), or undefined when `Intl` does not know it.
 */
export const canonicalZone = (name: string): string | undefined => {
  if (name.length === 0) return undefined
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: name }).resolvedOptions().timeZone
  } catch {
    return undefined
  }
}

// "3/29/2026 AD, 03:00:00" — the en-US shape of the formatter above.
const SHAPE = /^(\d+)\/(\d+)\/(\d+) ([A-Za-z]+),? (\d+):(\d+):(\d+)$/

const wallSecondsFromParts = (f: Intl.DateTimeFormat, ms: number): number => {
  let y = 0, mo = 1, d = 1, h = 0, mi = 0, s = 0, bc = false
  for (const p of f.formatToParts(ms)) {
    switch (p.type) {
      case "year":
        y = Number(p.value)
        break
      case "month":
        mo = Number(p.value)
        break
      case "day":
        d = Number(p.value)
        break
      case "hour":
        h = Number(p.value) % 24
        break
      case "minute":
        mi = Number(p.value)
        break
      case "second":
        s = Number(p.value)
        break
      case "era":
        bc = p.value.startsWith("B")
        break
      default:
        break
    }
  }
  if (bc) y = 1 - y
  return daysFromCivil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s
}

/** Wall-clock time of the zone at UTC second `sec`, as seconds on a UTC-like civil axis. */
export const wallSeconds = (zone: string, sec: number): number => {
  const f = formatterFor(zone)
  const ms = sec * 1000
  const m = SHAPE.exec(f.format(ms))
  if (m === null) return wallSecondsFromParts(f, ms)
  let y = Number(m[3])
  if (m[4]!.startsWith("B")) y = 1 - y
  return daysFromCivil(y, Number(m[1]), Number(m[2])) * 86_400 + (Number(m[5]) % 24) * 3600 +
    Number(m[6]) * 60 + Number(m[7])
}

/** UTC offset (seconds, east positive) of the zone at UTC second `sec`. */
export const offsetSeconds = (zone: string, sec: number): number => wallSeconds(zone, sec) - sec
