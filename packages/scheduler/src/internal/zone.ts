/**
 * IANA time zone support through `Intl` (no tz database of our own). Only the non-UTC path of
 * the calendar engine comes here; UTC never touches `Intl`.
 *
 * One `Intl` call costs a few microseconds, more than a whole UTC `next()`, so offsets come from a
 * per-zone cache of the offset transitions that `Intl` itself reports: the UTC axis is cut into
 * spans of 2^23 s (~97 days); the first question about a span samples `Intl` once a day across it
 * and bisects every change of offset to the second (~0.3 ms), later questions binary-search that
 * span's transitions. Spans are filled only when asked about, from `Intl`, so the cache says what
 * `Intl` says for zones whose rules changed in the past and for far-future years alike (whatever
 * ICU extrapolates there). Sampling daily assumes what the calendar engine already assumes: no
 * zone changes its offset and back within one day (in tzdata 2025, 1800–2100, the closest two
 * changes of any zone are 4 days apart). Memory: at most `MAX_SPANS` spans per zone (~50 KB).
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

/**
 * Wall-clock time of the zone at UTC second `sec` straight from `Intl`, uncached: the source of
 * truth the cache is filled from (and compared with in tests). Throws a RangeError for an unknown
 * zone or an instant outside what a JS Date can hold, as `Intl` does.
 */
export const intlWallSeconds = (zone: string, sec: number): number => {
  const f = formatterFor(zone)
  const ms = sec * 1000
  const m = SHAPE.exec(f.format(ms))
  if (m === null) return wallSecondsFromParts(f, ms)
  let y = Number(m[3])
  if (m[4]!.startsWith("B")) y = 1 - y
  return daysFromCivil(y, Number(m[1]), Number(m[2])) * 86_400 + (Number(m[5]) % 24) * 3600 +
    Number(m[6]) * 60 + Number(m[7])
}

/** UTC offset (seconds, east positive) of the zone at UTC second `sec`, straight from `Intl`. */
export const intlOffsetSeconds = (zone: string, sec: number): number => intlWallSeconds(zone, sec) - sec

// ---------------------------------------------------------------------------------------------
// The transition cache
// ---------------------------------------------------------------------------------------------

/** Span length: a power of two so the span index is one division; ~97 days = ~98 `Intl` samples. */
const SPAN_SECONDS = 2 ** 23
const SAMPLE_SECONDS = 86_400
/** Spans kept per zone (~136 years of them); beyond that the oldest filled span is dropped. */
export const MAX_SPANS = 512
// What a JS Date (and so `Intl`) can represent: ±8.64e15 ms.
const MIN_SEC = -8_640_000_000_000
const MAX_SEC = 8_640_000_000_000

interface Span {
  /** Offset in force at the span's first second. */
  readonly first: number
  /** Transitions inside the span, ascending, as pairs: from instant `tr[2i]` on the offset is `tr[2i + 1]`. */
  readonly tr: ReadonlyArray<number>
}

// Most spans hold no transition at all: they share one empty list.
const NONE: ReadonlyArray<number> = []

interface ZoneCache {
  readonly spans: Map<number, Span>
  /** The span answered last: consecutive questions mostly land in the same one. */
  lastIndex: number
  lastSpan: Span | undefined
}

const caches = new Map<string, ZoneCache>()

/** Appends the transitions in (lo, hi] (offset `oLo` at lo, `oHi` at hi, different) by bisection. */
const bisectTransitions = (
  zone: string,
  lo: number,
  oLo: number,
  hi: number,
  oHi: number,
  tr: Array<number>
): void => {
  // Invariant: offset(lo) = oLo ≠ offset(hi). Several changes between two samples are all found
  // as long as none of them returns to the offset it left (see the module comment).
  for (;;) {
    let l = lo, h = hi
    while (h - l > 1) {
      const mid = l + Math.floor((h - l) / 2)
      if (intlOffsetSeconds(zone, mid) === oLo) l = mid
      else h = mid
    }
    const oH = h === hi ? oHi : intlOffsetSeconds(zone, h)
    tr.push(h, oH)
    if (oH === oHi) return
    lo = h
    oLo = oH
  }
}

const fillSpan = (zone: string, index: number): Span => {
  const start = Math.max(index * SPAN_SECONDS, MIN_SEC)
  const end = Math.min((index + 1) * SPAN_SECONDS - 1, MAX_SEC)
  const first = intlOffsetSeconds(zone, start)
  const tr: Array<number> = []
  let p = start, oP = first
  while (p < end) {
    const q = Math.min(p + SAMPLE_SECONDS, end)
    const oQ = intlOffsetSeconds(zone, q)
    if (oQ !== oP) bisectTransitions(zone, p, oP, q, oQ, tr)
    p = q
    oP = oQ
  }
  // An exact-size copy: the list lives as long as the span.
  return { first, tr: tr.length === 0 ? NONE : tr.slice() }
}

const cacheFor = (zone: string): ZoneCache => {
  let c = caches.get(zone)
  if (c === undefined) {
    formatterFor(zone) // an unknown zone throws here, before anything is cached for it
    c = { spans: new Map(), lastIndex: NaN, lastSpan: undefined }
    caches.set(zone, c)
  }
  return c
}

const spanFor = (c: ZoneCache, zone: string, index: number): Span => {
  let span = c.spans.get(index)
  if (span === undefined) {
    span = fillSpan(zone, index)
    if (c.spans.size >= MAX_SPANS) c.spans.delete(c.spans.keys().next().value!)
    c.spans.set(index, span)
  }
  c.lastIndex = index
  c.lastSpan = span
  return span
}

/** UTC offset (seconds, east positive) of the zone at UTC second `sec` (a fraction is dropped). */
export const offsetSeconds = (zone: string, sec: number): number => {
  const s = Math.floor(sec)
  // NaN and instants no Date can hold: `Intl` says what is wrong with them.
  if (!(s >= MIN_SEC && s <= MAX_SEC)) return intlOffsetSeconds(zone, s)
  const c = cacheFor(zone)
  const index = Math.floor(s / SPAN_SECONDS)
  const span = index === c.lastIndex ? c.lastSpan! : spanFor(c, zone, index)
  const tr = span.tr
  // Binary search for the number of transitions at or before s.
  let lo = 0, hi = tr.length >>> 1
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (tr[2 * mid]! <= s) lo = mid + 1
    else hi = mid
  }
  return lo === 0 ? span.first : tr[2 * lo - 1]!
}

/** Wall-clock time of the zone at UTC second `sec`, as seconds on a UTC-like civil axis. */
export const wallSeconds = (zone: string, sec: number): number => {
  const s = Math.floor(sec)
  return s + offsetSeconds(zone, s)
}

/** What the cache holds (tests and memory checks): zones and filled spans, transitions in them. */
export const cacheStats = (): {
  readonly zones: number
  readonly spans: number
  readonly transitions: number
  readonly maxSpansPerZone: number
} => {
  let spans = 0, transitions = 0, maxSpansPerZone = 0
  for (const c of caches.values()) {
    spans += c.spans.size
    maxSpansPerZone = Math.max(maxSpansPerZone, c.spans.size)
    for (const s of c.spans.values()) transitions += s.tr.length / 2
  }
  return { zones: caches.size, spans, transitions, maxSpansPerZone }
}
