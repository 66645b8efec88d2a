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
 * - the missed occurrences of one gap are always consecutive in the calendar: up to
 *   `maxMissedRecorded` of them are listed one by one, more become one range (first, last, count)
 *   that stands for every one of them, so none is ever dropped.
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
  /**
   * Up to this many missed occurrences are listed one by one (default 1000); more become one
   * `missedRange` that stands for all of them.
   */
  readonly maxMissedRecorded?: number
}

export interface PlannedRun {
  /** The occurrence this run stands for (its `scheduled_at`). */
  readonly at: number
  readonly trigger: "schedule" | "catch_up"
}

/** Every occurrence from `from` to `to`, both included: `count` of them. */
export interface MissedRange {
  readonly from: number
  readonly to: number
  readonly count: number
}

export interface Plan {
  /** Runs to start now, ordered by `at`. */
  readonly run: Array<PlannedRun>
  /** Occurrences to record as missed, oldest first: all of them, when there are at most `maxMissedRecorded`. */
  readonly missed: Array<number>
  /** When more than `maxMissedRecorded` are missed: all of them as one range (then `missed` is empty). */
  readonly missedRange: MissedRange | undefined
  /** How many occurrences are missed (`missed.length`, or the range's count). */
  readonly missedTotal: number
  /** Everything at or before this instant has been decided; persist it as the next `lastRun`. */
  readonly watermark: number
}

export const DEFAULT_GRACE_MS = 1000
export const DEFAULT_MAX_MISSED_RECORDED = 1000

/** The occurrences in (afterMs, untilMs] as one range; undefined when there are none. */
export const span = (cal: Calendar.Calendar, afterMs: number, untilMs: number): MissedRange | undefined => {
  const count = Calendar.countBetween(cal, afterMs, untilMs)
  if (count <= 0) return undefined
  const from = Calendar.next(cal, afterMs)
  const to = Calendar.previous(cal, Math.floor(untilMs) + 1)
  return from === undefined || to === undefined ? undefined : { from, to, count }
}

/**
 * The missed part of a plan: `count` consecutive occurrences starting at `from` and ending at
 * `to`, listed when there are at most `max`, else one range.
 */
const missedOf = (
  cal: Calendar.Calendar,
  from: number | undefined,
  to: number | undefined,
  count: number,
  max: number
): Pick<Plan, "missed" | "missedRange" | "missedTotal"> => {
  if (count <= 0 || from === undefined || to === undefined) {
    return { missed: [], missedRange: undefined, missedTotal: 0 }
  }
  if (count > max) return { missed: [], missedRange: { from, to, count }, missedTotal: count }
  const missed: Array<number> = []
  for (
    let o: number | undefined = from;
    o !== undefined && o <= to && missed.length < count;
    o = Calendar.next(cal, o)
  ) {
    missed.push(o)
  }
  return { missed, missedRange: undefined, missedTotal: missed.length }
}

const nothingMissed = (): Pick<Plan, "missed" | "missedRange" | "missedTotal"> => ({
  missed: [],
  missedRange: undefined,
  missedTotal: 0
})

export const plan = (cal: Calendar.Calendar, options: PlanOptions): Plan => {
  const { catchUpLimit, lastRun, now, policy } = options
  const grace = options.graceMs ?? DEFAULT_GRACE_MS
  const maxMissed = Math.max(0, options.maxMissedRecorded ?? DEFAULT_MAX_MISSED_RECORDED)
  const limit = Math.max(0, Math.floor(catchUpLimit))
  if (lastRun !== undefined && now <= lastRun) return { run: [], ...nothingMissed(), watermark: lastRun }
  const watermark = lastRun === undefined ? now : Math.max(lastRun, now)
  const onTimeFrom = now - grace

  const onTime: Array<number> = []
  const lo = lastRun === undefined ? onTimeFrom - 1 : Math.max(lastRun, onTimeFrom - 1)
  for (let o = Calendar.next(cal, lo); o !== undefined && o <= now; o = Calendar.next(cal, o)) {
    if (o >= onTimeFrom) onTime.push(o)
  }
  const scheduled: Array<PlannedRun> = onTime.map((at) => ({ at, trigger: "schedule" }))
  if (lastRun === undefined) return { run: scheduled, ...nothingMissed(), watermark }

  // Gap occurrences: (lastRun, onTimeFrom), consecutive in the calendar. The missed ones are a
  // consecutive part of them too, so their first and last instants and their count describe them.
  const gapTotal = Calendar.countBetween(cal, lastRun, now) - onTime.length
  if (gapTotal <= 0) return { run: scheduled, ...nothingMissed(), watermark }
  const first = Calendar.next(cal, lastRun)
  const last = Calendar.previous(cal, onTimeFrom)

  switch (policy) {
    case "Burst": {
      const caught: Array<PlannedRun> = []
      let o = first
      for (
        ;
        o !== undefined && o < onTimeFrom && caught.length < Math.min(limit, gapTotal);
        o = Calendar.next(cal, o)
      ) {
        caught.push({ at: o, trigger: "catch_up" })
      }
      return {
        run: [...caught, ...scheduled],
        ...missedOf(cal, o, last, gapTotal - caught.length, maxMissed),
        watermark
      }
    }
    case "Delay": {
      if (onTime.length > 0) {
        // The on-time run already is "one run now for the whole gap".
        return { run: scheduled, ...missedOf(cal, first, last, gapTotal, maxMissed), watermark }
      }
      if (last === undefined || last <= lastRun) {
        return { run: [], ...missedOf(cal, first, last, gapTotal, maxMissed), watermark }
      }
      return {
        run: [{ at: last, trigger: "catch_up" }],
        ...missedOf(cal, first, Calendar.previous(cal, last), gapTotal - 1, maxMissed),
        watermark
      }
    }
    case "Skip":
      return { run: scheduled, ...missedOf(cal, first, last, gapTotal, maxMissed), watermark }
  }
}

/** One row of a run ledger: a run (one occurrence) or a missed range (`count` of them). */
export interface LedgerEntry {
  /** Its occurrence; a range's first (epoch ms). */
  readonly from: number
  /** A range's last occurrence; a single occurrence's own. */
  readonly to: number
  readonly count: number
  /** Names the entry in the problems. */
  readonly label: string
}

const iso = (ms: number) => new Date(ms).toISOString()

/**
 * The ledger identity (README, run states): over the window from the first entry to the last,
 * each occurrence of the calendar has exactly one entry, and each entry is a span of exactly
 * `count` consecutive occurrences. Returns what breaks it (empty when it holds).
 */
export const ledgerProblems = (cal: Calendar.Calendar, entries: ReadonlyArray<LedgerEntry>): Array<string> => {
  const problems: Array<string> = []
  const holders = new Map<number, Array<string>>()
  let first = Number.POSITIVE_INFINITY
  let last = Number.NEGATIVE_INFINITY
  for (const e of entries) {
    const instants: Array<number> = []
    for (let o = Calendar.next(cal, e.from - 1); o !== undefined && o <= e.to; o = Calendar.next(cal, o)) {
      instants.push(o)
    }
    if (instants[0] !== e.from || instants[instants.length - 1] !== e.to) {
      problems.push(`${e.label}: ${iso(e.from)}..${iso(e.to)} is not a span of occurrences`)
    }
    if (instants.length !== e.count) {
      problems.push(`${e.label}: counts ${e.count} occurrences, its span holds ${instants.length}`)
    }
    for (const o of instants) holders.set(o, [...(holders.get(o) ?? []), e.label])
    first = Math.min(first, e.from)
    last = Math.max(last, e.to)
  }
  for (let o = Calendar.next(cal, first - 1); o !== undefined && o <= last; o = Calendar.next(cal, o)) {
    const h = holders.get(o) ?? []
    if (h.length !== 1) problems.push(`${iso(o)}: ${h.length === 0 ? "no row" : h.join(" AND ")}`)
  }
  return problems
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

/**
 * A missed-tick policy as a value: what the agent's tick loop composes with the calendar. The
 * loop wakes at the calendar's next occurrence (`Calendar.schedule` / `Calendar.next`); when it
 * wakes late it hands the gap to its policy, whose `plan` says which occurrences run now and
 * which are recorded missed.
 */
export interface MissedTickPolicy {
  readonly name: Policy
  readonly plan: (cal: Calendar.Calendar, options: Omit<PlanOptions, "policy">) => Plan
}

const policyValue = (name: Policy): MissedTickPolicy => ({
  name,
  plan: (cal, options) => plan(cal, { ...options, policy: name })
})

/** Runs the oldest missed occurrences, up to `catchUpLimit`; records the rest missed. */
export const Burst: MissedTickPolicy = policyValue("Burst")
/** Runs once for the whole gap; records the others missed. */
export const Delay: MissedTickPolicy = policyValue("Delay")
/** Runs none of the gap; records each missed. */
export const Skip: MissedTickPolicy = policyValue("Skip")

/** The policy named in `bartoc.toml` (`missed_tick`). */
export const policyOf = (name: Policy): MissedTickPolicy => (name === "Burst" ? Burst : name === "Delay" ? Delay : Skip)
