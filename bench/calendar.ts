/**
 * Calendar benchmark: barto's engine (`@barto/scheduler/Calendar`) against croner and
 * cron-parser on the same four schedules, parse and next(). Methodology follows
 * shared/spec/perf-baselines.md §1: 1,000 pseudo-random start instants over 2026, warm-up,
 * then the median of 5 samples of ~300 ms each. The parse and first next() rows evaluate in UTC;
 * the zoned next() rows run the same schedules in named zones with DST (each engine given the
 * zone: barto's trailing zone, croner's `timezone`, cron-parser's `tz`), measured in the same run.
 *
 *   npx tsx bench/calendar.ts
 *
 * `runCalendarBench()` is the entry point for the combined `npm run bench`.
 */
import * as Calendar from "@barto/scheduler/Calendar"
import { CronExpressionParser } from "cron-parser"
import { Cron } from "croner"
import * as Either from "effect/Either"
import { pathToFileURL } from "node:url"

export interface CalendarBenchRow {
  readonly suite: "calendar"
  readonly name: string
  readonly unit: string
  readonly barto: number
  readonly croner: number
  readonly cronParser: number
  /**
   * next() rows only: croner without the timezone option, i.e. the host's local zone (only
   * comparable on a UTC host; perf-baselines §1 measured croner this way). Undefined for parse.
   */
  readonly cronerNoTz?: number
  /** barto / croner (higher is better for barto). */
  readonly ratio: number
  /** Zoned next() rows: the IANA zone all three engines evaluate in (undefined = UTC). */
  readonly zone?: string
}

interface Case {
  readonly label: string
  readonly barto: string
  readonly cron: string
}

const CASES: ReadonlyArray<Case> = [
  { label: "every second", barto: "*-*-* *:*:*", cron: "* * * * * *" },
  { label: "every 15 minutes", barto: "*:0/15:00", cron: "0 */15 * * * *" },
  { label: "weekdays at noon", barto: "Mon..Fri *-*-* 12:00:00", cron: "0 0 12 * * MON-FRI" },
  { label: "Feb 29 at noon", barto: "*-02-29 12:00:00", cron: "0 0 12 29 2 *" }
]

// Named zones with DST: whole-hour (Europe, North America) and half-hour (Lord Howe) shifts.
const ZONES: ReadonlyArray<string> = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]

const SAMPLES = 5
const SAMPLE_MS = 300
const WARMUP_MS = 150

export interface CalendarBenchOptions {
  /** Timed samples per measurement (median taken); default 5. */
  readonly samples?: number
  /** Length of one sample; default 300 ms. */
  readonly sampleMs?: number
  /** Warm-up before the samples; default 150 ms. */
  readonly warmupMs?: number
}

/** 1,000 instants spread over 2026 (deterministic LCG, so runs are comparable). */
const startInstants = (): Array<number> => {
  const from = Date.UTC(2026, 0, 1)
  const span = Date.UTC(2027, 0, 1) - from
  let x = 0x2545f491
  return Array.from({ length: 1000 }, () => {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0
    return from + Math.floor((x / 2 ** 32) * span)
  })
}

// Results flow into this so the JIT cannot drop the calls.
let sink = 0

/** Operations per second: median of `samples` timed loops of about `sampleMs` each. */
const measureWith = (o: Required<CalendarBenchOptions>) => (op: (i: number) => unknown): number => {
  const runFor = (ms: number): number => {
    let n = 0
    const t0 = performance.now()
    let t1 = t0
    while (t1 - t0 < ms) {
      for (let k = 0; k < 64; k++, n++) {
        const r = op(n)
        if (r === undefined || r === null) sink++
      }
      t1 = performance.now()
    }
    return n / ((t1 - t0) / 1000)
  }
  runFor(o.warmupMs)
  const samples = Array.from({ length: o.samples }, () => runFor(o.sampleMs)).sort((a, b) => a - b)
  return samples[Math.floor(o.samples / 2)]!
}

const parseBarto = (expr: string): Calendar.Calendar =>
  Either.getOrThrowWith(Calendar.parse(expr), (e) => new Error(`bench: barto cannot parse ${expr}: ${e.message}`))

/** Checks that the three engines agree on next() for some starts; prints any mismatch loudly. */
const verify = (c: Case, starts: ReadonlyArray<number>, zone = "UTC"): number => {
  const cal = parseBarto(zone === "UTC" ? c.barto : `${c.barto} ${zone}`)
  const cron = new Cron(c.cron, { paused: true, timezone: zone })
  const cronLocal = new Cron(c.cron, { paused: true })
  const parser = CronExpressionParser.parse(c.cron, { currentDate: new Date(starts[0]!), tz: zone })
  let mismatches = 0
  for (const start of [Date.parse("2026-11-23T08:00:00.500Z"), ...starts.slice(0, 25)]) {
    const a = Calendar.next(cal, start)
    const b = cron.nextRun(new Date(start))?.getTime()
    parser.reset(new Date(start))
    const d = parser.next().getTime()
    // croner without a zone follows the host's; only checked where the host is UTC.
    const l = zone === "UTC" && hostIsUtc() ? cronLocal.nextRun(new Date(start))?.getTime() : a
    if (a !== b || a !== d || a !== l) {
      mismatches++
      console.error(
        `!!! CALENDAR MISMATCH ${c.label} (${zone}) after ${new Date(start).toISOString()}: barto ${iso(a)} croner ${
          iso(b)
        } ` +
          `cron-parser ${iso(d)} croner-no-tz ${iso(l)}`
      )
    }
  }
  return mismatches
}

const iso = (ms: number | undefined): string => (ms === undefined ? "none" : new Date(ms).toISOString())

/** Whether the host's local zone is UTC (croner without a zone is then a fair UTC peer). */
export const hostIsUtc = (): boolean => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone
  return (zone === "UTC" || zone === "Etc/UTC" || zone === "Etc/GMT") && new Date(2026, 6, 1).getTimezoneOffset() === 0
}

export async function runCalendarBench(options: CalendarBenchOptions = {}): Promise<Array<CalendarBenchRow>> {
  const measure = measureWith({
    samples: options.samples ?? SAMPLES,
    sampleMs: options.sampleMs ?? SAMPLE_MS,
    warmupMs: options.warmupMs ?? WARMUP_MS
  })
  const starts = startInstants()
  const dates = starts.map((s) => new Date(s))
  const rows: Array<CalendarBenchRow> = []
  for (const c of CASES) {
    verify(c, starts)
    for (const zone of ZONES) verify(c, starts, zone)
  }
  for (const c of CASES) {
    const barto = measure(() => parseBarto(c.barto))
    const croner = measure(() => new Cron(c.cron, { paused: true, timezone: "UTC" }))
    const cronParser = measure(() => CronExpressionParser.parse(c.cron, { tz: "UTC" }))
    rows.push({
      suite: "calendar",
      name: `parse: ${c.label}`,
      unit: "ops/s",
      barto,
      croner,
      cronParser,
      ratio: barto / croner
    })
    // Yield between rows so a combined runner's other work (logs, timers) is not starved.
    await new Promise((resolve) => setImmediate(resolve))
  }
  // UTC first (with croner's no-timezone fast path next to it), then the same cases in each zone.
  for (const zone of [undefined, ...ZONES]) {
    for (const c of CASES) {
      const tz = zone ?? "UTC"
      const cal = parseBarto(zone === undefined ? c.barto : `${c.barto} ${zone}`)
      const cron = new Cron(c.cron, { paused: true, timezone: tz })
      const cronLocal = new Cron(c.cron, { paused: true })
      const parser = CronExpressionParser.parse(c.cron, { currentDate: dates[0]!, tz })
      const n = starts.length
      const barto = measure((i) => Calendar.next(cal, starts[i % n]!))
      const croner = measure((i) => cron.nextRun(dates[i % n]!))
      const cronerNoTz = zone === undefined ? measure((i) => cronLocal.nextRun(dates[i % n]!)) : undefined
      const cronParser = measure((i) => {
        parser.reset(dates[i % n]!)
        return parser.next()
      })
      rows.push({
        suite: "calendar",
        name: zone === undefined ? `next: ${c.label}` : `next: ${c.label} (${zone})`,
        unit: "ops/s",
        barto,
        croner,
        cronParser,
        ...(cronerNoTz === undefined ? {} : { cronerNoTz }),
        ratio: barto / croner,
        ...(zone === undefined ? {} : { zone })
      })
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  if (sink < 0) console.log(sink)
  return rows
}

const fmt = (v: number): string => Math.round(v).toLocaleString("en-US")

export const formatCalendarTable = (rows: ReadonlyArray<CalendarBenchRow>): string => {
  const header = ["row", "barto", "croner (zone)", "croner (no tz)", "cron-parser (zone)", "barto/croner"]
  const body = rows.map((r) => [
    r.name,
    fmt(r.barto),
    fmt(r.croner),
    r.cronerNoTz === undefined ? "–" : fmt(r.cronerNoTz),
    fmt(r.cronParser),
    r.ratio.toFixed(2) + "×"
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n")
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await runCalendarBench()
  console.log(
    `calendar (ops/s, median of ${SAMPLES} × ${SAMPLE_MS} ms, 1,000 starts over 2026; UTC unless a zone is named)`
  )
  console.log(formatCalendarTable(rows))
}
