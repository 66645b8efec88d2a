/**
 * Suite 1, calendar: `runCalendarBench()` rows as table rows. UTC next() is held to ≥ 2× croner
 * WITHOUT a timezone option (croner's fast path on a UTC host, as perf-baselines §1 measured it);
 * croner with `timezone: "UTC"` (Intl path) and cron-parser are shown as information. Zoned next()
 * (named zones with DST) is held to ≥ 2× croner given the same `timezone`, measured in the same run.
 */
import { hostIsUtc, runCalendarBench } from "../calendar.js"
import { atLeast, type Row } from "../lib/report.js"

export const run = async (quick: boolean): Promise<Array<Row>> => {
  const rows: Array<Row> = []
  const utc = hostIsUtc()
  const bench = await runCalendarBench(quick ? { samples: 3, sampleMs: 100, warmupMs: 50 } : {})
  for (const r of bench) {
    const isNext = r.name.startsWith("next")
    // Without a UTC host croner-no-tz is not a UTC peer; then the UTC-zoned croner is the target.
    const heldToZonedCroner = isNext && (r.zone !== undefined || !utc)
    if (isNext && r.cronerNoTz !== undefined && utc) {
      const ratio = r.barto / r.cronerNoTz
      rows.push({
        suite: "calendar",
        metric: r.name,
        value: r.barto,
        unit: r.unit,
        target: "≥ 2× croner",
        peer: { label: "croner(no tz)", value: r.cronerNoTz },
        ratio,
        verdict: atLeast(ratio, 2)
      })
    }
    rows.push({
      suite: "calendar",
      metric: r.name,
      value: r.barto,
      unit: r.unit,
      target: heldToZonedCroner ? "≥ 2× croner" : "",
      peer: { label: `croner(tz ${r.zone ?? "UTC"})`, value: r.croner },
      ratio: r.ratio,
      verdict: heldToZonedCroner ? atLeast(r.ratio, 2) : "info"
    })
    rows.push({
      suite: "calendar",
      metric: r.name,
      value: r.barto,
      unit: r.unit,
      target: "",
      peer: { label: r.zone === undefined ? "cron-parser" : "cron-parser(tz)", value: r.cronParser },
      ratio: r.barto / r.cronParser,
      verdict: "info"
    })
  }
  return rows
}
