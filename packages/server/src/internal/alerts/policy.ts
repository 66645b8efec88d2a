/**
 * Pure core of alerting (issue 14): which settings apply to a schedule, and what an event does to
 * its subject's incident. The shell (Alerts.ts, store/alerts.ts) records the outcome in one
 * transaction with the event.
 */
import * as Config from "@barto/domain/Config"

export type EventKind = Config.EventKind

const BAD: ReadonlySet<EventKind> = new Set(Config.BAD_KINDS)
export const isBad = (kind: EventKind): boolean => BAD.has(kind)

/** The alert settings in force for one schedule (or, with `schedule` undefined, for an agent itself). */
export interface Settings {
  readonly on: ReadonlyArray<EventKind>
  readonly to: ReadonlyArray<string>
  readonly afterFailures: number
  readonly lateAfterSecs: number | undefined
  readonly stallAfterSecs: number | undefined
  readonly expectedDurationSecs: number | undefined
}

type Level = {
  readonly alert?: Config.AlertRule | undefined
  readonly late_after?: number | undefined
  readonly stall_after?: number | undefined
  readonly expected_duration?: number | undefined
}

/** Schedule over agent over `[alerts]`, key by key (an `alert` table is merged by its keys too). */
export const resolve = (levels: ReadonlyArray<Level | undefined>): Settings => {
  const pick = <K extends keyof Level>(key: K): Level[K] => {
    for (const l of levels) if (l?.[key] !== undefined) return l[key]
    return undefined
  }
  const rule = <K extends keyof Config.AlertRule>(key: K): Config.AlertRule[K] => {
    for (const l of levels) if (l?.alert?.[key] !== undefined) return l.alert[key]
    return undefined as Config.AlertRule[K]
  }
  return {
    on: rule("on") ?? Config.EVENT_KINDS,
    to: rule("to") ?? [],
    afterFailures: rule("after_failures") ?? 1,
    lateAfterSecs: pick("late_after"),
    stallAfterSecs: pick("stall_after"),
    expectedDurationSecs: pick("expected_duration")
  }
}

/** The subject's open incident, as the decision needs it. */
export interface OpenIncident {
  readonly incidentId: string
  readonly badEvents: number
  readonly notified: boolean
}

export type Decision =
  /** Recorded only: the kind is not in `on`, or a good event with nothing open. */
  | { readonly _tag: "Record" }
  | { readonly _tag: "Open"; readonly notify: boolean }
  | { readonly _tag: "Count"; readonly incidentId: string; readonly notify: boolean }
  | { readonly _tag: "Close"; readonly incidentId: string; readonly notify: boolean }

/**
 * One notification per incident: the bad event that brings the count to `after_failures` notifies,
 * later ones only count; the good event that closes a notified incident notifies (if its kind is in
 * `on`), one that closes an incident nobody was told about does not.
 */
export const decide = (kind: EventKind, open: OpenIncident | undefined, settings: Settings): Decision => {
  const wanted = settings.on.includes(kind)
  if (isBad(kind)) {
    if (!wanted) return { _tag: "Record" }
    if (open === undefined) return { _tag: "Open", notify: settings.afterFailures <= 1 && settings.to.length > 0 }
    const count = open.badEvents + 1
    return {
      _tag: "Count",
      incidentId: open.incidentId,
      notify: !open.notified && count >= settings.afterFailures && settings.to.length > 0
    }
  }
  if (open === undefined) return { _tag: "Record" }
  return { _tag: "Close", incidentId: open.incidentId, notify: open.notified && wanted && settings.to.length > 0 }
}

/** The subject key of an incident: one open incident per schedule, and one per agent for agent_down. */
export const subjectKey = (agent: string, schedule: string | null): string => `${agent}\u0000${schedule ?? ""}`
