/**
 * IANA time zones through `Intl`, as the calendar engine uses them: shared with barto-cli's
 * rendering and parsing of instants so that there is one place that asks `Intl` about zones.
 * Offsets and wall clocks come from a per-zone cache of the transitions `Intl` reports (filled on
 * demand, bounded; see internal/zone.ts), so rendering many instants costs no `Intl` call each.
 */
import { civilFromDays, SECONDS_PER_DAY } from "./internal/civil.js"
import { offsetSeconds, wallSeconds } from "./internal/zone.js"

export { canonicalZone, offsetSeconds, wallSeconds } from "./internal/zone.js"

const p2 = (n: number) => String(n).padStart(2, "0")

/**
 * RFC 3339 of the whole second `sec` as the wall clock of `zone` reads it, with its offset
 * (`2026-03-29T03:30:00+02:00`; `Z` for UTC); `fraction` (e.g. `.250000`) goes after the seconds.
 */
export const formatRfc3339 = (sec: number, zone: string, fraction = ""): string => {
  const wall = zone === "UTC" ? sec : wallSeconds(zone, sec)
  const days = Math.floor(wall / SECONDS_PER_DAY)
  const inDay = wall - days * SECONDS_PER_DAY
  const ymd = [0, 0, 0]
  civilFromDays(days, ymd)
  const offset = zone === "UTC" ? 0 : Math.round(offsetSeconds(zone, sec) / 60)
  const suffix = zone === "UTC"
    ? "Z"
    : `${offset < 0 ? "-" : "+"}${p2(Math.floor(Math.abs(offset) / 60))}:${p2(Math.abs(offset) % 60)}`
  return `${String(ymd[0]).padStart(4, "0")}-${p2(ymd[1]!)}-${p2(ymd[2]!)}T${p2(Math.floor(inDay / 3600))}:` +
    `${p2(Math.floor(inDay / 60) % 60)}:${p2(inDay % 60)}${fraction}${suffix}`
}
