/**
 * Missed-tick policies (design D3), pure. The agent wakes at `nextWake`, then asks `plan` what
 * to do with the occurrences in (lastRun, now]:
 *
 * - occurrences within `graceMs` of `now` are "on time" and run with trigger `schedule` under
 *   every policy (normally exactly one: the instant the timer was armed for);
 * - older ones fell into a gap (stall, suspend, clock stepped forward) and follow the policy:
 *   `Burst` runs the oldest ones, oldest first, up to `catchUpLimit` (trigger `catch_up`) and
 *   records the rest as missed; `Delay` runs once now for the whole gap (trigger `catch_up`,
 *   standing for the newest gap occurrence; none if an on-time run happens anyway) and records
 *   the others as missed; `Skip` runs none and records each as missed.
 *
 * Without `lastRun` (first start) there is no gap: only what is due now runs. A `now` at or
 * before `lastRun` (clock stepped back) yields nothing: an occurrence is never run twice.
 * All instants are epoch milliseconds.
 */
import * as Calendar from "./Calendar.js"

export type Policy = "Burst" | "Delay" | "Skip"

export interface PlanOptions {
  readonly policy: Policy
  readonly catchUpLimit: number
  /** The newest occurrence already handled (run or recorded missed); absent on first start. */
  readonly lastRun?: number | undefined
  readonly now: number
  /** How late an occurrence may be and still count as on time (default 1000 ms). */
  readonly graceMs?: number
  /** Cap on the `missed` list (default 1000); `missedTotal` still counts every one. */
  readonly maxMissedRecorded?: number
}

export interface PlannedRun {
  /** The occurrence this run stands for (its `scheduled_at`). */
  readonly at: number
  readonly trigger: "schedule" | "catch_up"
}

export interface Plan {
  /** Runs to start now, ordered by `at`. */
  readonly run: Array<PlannedRun>
  /** Occurrences to record as missed, oldest first, at most `maxMissedRecorded`. */
  readonly missed: Array<number>
  readonly missedTotal: number
  /** Everything at or before this instant has been decided; persist it as the next `lastRun`. */
  readonly watermark: number
}

export const DEFAULT_GRACE_MS = 1000
export const DEFAULT_MAX_MISSED_RECORDED = 1000

export const plan = (cal: Calendar.Calendar, options: PlanOptions): Plan => {
  const { catchUpLimit, lastRun, now, policy } = options
  const grace = options.graceMs ?? DEFAULT_GRACE_MS
  const maxMissed = Math.max(0, options.maxMissedRecorded ?? DEFAULT_MAX_MISSED_RECORDED)
  const limit = Math.max(0, Math.floor(catchUpLimit))
  if (lastRun !== undefined && now <= lastRun) return { run: [], missed: [], missedTotal: 0, watermark: lastRun }
  const watermark = lastRun === undefined ? now : Math.max(lastRun, now)
  const onTimeFrom = now - grace

  const onTime: Array<number> = []
  const lo = lastRun === undefined ? onTimeFrom - 1 : Math.max(lastRun, onTimeFrom - 1)
  for (let o = Calendar.next(cal, lo); o !== undefined && o <= now; o = Calendar.next(cal, o)) {
    if (o >= onTimeFrom) onTime.push(o)
  }
  const scheduled: Array<PlannedRun> = onTime.map((at) => ({ at, trigger: "schedule" }))
  if (lastRun === undefined) return { run: scheduled, missed: [], missedTotal: 0, watermark }

  // Gap occurrences: (lastRun, onTimeFrom). List only as many as can be reported; count the rest.
  const gapTotal = Calendar.countBetween(cal, lastRun, now) - onTime.length
  if (gapTotal <= 0) return { run: scheduled, missed: [], missedTotal: 0, watermark }
  const wanted = policy === "Burst" ? limit + maxMissed : maxMissed
  const gap: Array<number> = []
  for (let o = Calendar.next(cal, lastRun); o !== undefined && o < onTimeFrom && gap.length < wanted; o = Calendar.next(cal, o)) {
    gap.push(o)
  }

  switch (policy) {
    case "Burst": {
      const runs = gap.slice(0, Math.min(limit, gapTotal))
      const caught: Array<PlannedRun> = runs.map((at) => ({ at, trigger: "catch_up" }))
      return {
        run: [...caught, ...scheduled],
        missed: gap.slice(runs.length, runs.length + maxMissed),
        missedTotal: gapTotal - runs.length,
        watermark
      }
    }
    case "Delay": {
      if (onTime.length > 0) {
        // The on-time run already is "one run now for the whole gap".
        return { run: scheduled, missed: gap.slice(0, maxMissed), missedTotal: gapTotal, watermark }
      }
      const newest = Calendar.previous(cal, onTimeFrom)
      if (newest === undefined || newest <= lastRun) {
        return { run: [], missed: gap.slice(0, maxMissed), missedTotal: gapTotal, watermark }
      }
      return {
        run: [{ at: newest, trigger: "catch_up" }],
        missed: gap.filter((o) => o !== newest).slice(0, maxMissed),
        missedTotal: gapTotal - 1,
        watermark
      }
    }
    case "Skip":
      return { run: scheduled, missed: gap.slice(0, maxMissed), missedTotal: gapTotal, watermark }
  }
}

/**
 * The instant the agent should sleep until: the first occurrence after both `now` and
 * `lastRun` (after a backward clock step, occurrences up to `lastRun` were already handled).
 * Undefined when the calendar never fires again.
 */
export const nextWake = (
  cal: Calendar.Calendar,
  options: { readonly lastRun?: number | undefined; readonly now: number }
): number | undefined =>
  Calendar.next(cal, options.lastRun === undefined ? options.now : Math.max(options.now, options.lastRun))
