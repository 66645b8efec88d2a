/**
 * Pure core of the schedule table: config section -> validated specs (atomically: the first bad
 * entry rejects the whole table), paused flags, and content versions.
 */
import * as Config from "@barto/domain/Config"
import { DEFAULT_NICE, ScheduleSpec } from "@barto/domain/Messages"
import type { OnFailure, Overlap } from "@barto/domain/Messages"
import * as Calendar from "@barto/scheduler/Calendar"
import * as Zone from "@barto/scheduler/Zone"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { createHash } from "node:crypto"

/**
 * A schedule table that could not be loaded: every problem found (at least one), each naming the
 * file, line:column when known, the key path and the reason. The first one's fields are the
 * error's own; `message` has one line per problem. (Exported publicly by `Schedules.ts`.)
 */
export class ScheduleLoadError extends Data.TaggedError("ScheduleLoadError")<{
  readonly problems: ReadonlyArray<Config.ConfigProblem>
}> {
  get file(): string | undefined {
    return this.problems[0]?.file
  }
  get path(): string {
    return this.problems[0]?.path ?? ""
  }
  get reason(): string {
    return this.problems[0]?.reason ?? "invalid schedules"
  }
  override get message() {
    return this.problems.map(Config.formatProblem).join("\n")
  }
}

/** The `[schedules.<agent>]` section as the config loader hands it over (TOML key names). */
export interface ScheduleEntryConfig {
  readonly name: string
  readonly on_calendar: string
  readonly cmds: ReadonlyArray<string>
  readonly timezone?: string | undefined
  readonly timeout?: number | undefined
  readonly overlap: Overlap
  readonly on_failure: OnFailure
  /** Absent: `DEFAULT_NICE` (the config loader always fills it in). */
  readonly nice?: number | undefined
}
export type SchedulesConfig = Readonly<Record<string, { readonly schedules: ReadonlyArray<ScheduleEntryConfig> }>>

/** agent -> specs in config order. */
export const MAX_NAME_LENGTH = 128

/** Agent and schedule names are database keys (VARCHAR(255)): 1..128 characters, no control characters. */
export const validName = (name: string): boolean =>
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  name.length > 0 && name.length <= MAX_NAME_LENGTH && !/[\u0000-\u001f\u007f]/.test(name)

export type Table = ReadonlyMap<string, ReadonlyArray<ScheduleSpec>>

export const pausedKey = (agent: string, schedule: string): string => `${agent}\u0000${schedule}`

/** Where a key path (or the nearest table around it) is written in the config file (`Config.keyLocator`). */
export type Locate = (path: Config.KeyPath) => Config.Position | undefined

/**
 * Validates the whole section and reports every problem (an invalid table is rejected whole, but
 * the operator fixes all of it in one go), each at its own key: a bad `timezone` names
 * `timezone`, a bad expression `on_calendar`.
 */
export const build = (
  file: string | undefined,
  config: SchedulesConfig,
  locate?: Locate
): Either.Either<Table, ScheduleLoadError> => {
  const table = new Map<string, ReadonlyArray<ScheduleSpec>>()
  const problems: Array<Config.ConfigProblem> = []
  const problem = (path: Config.KeyPath, reason: string) => {
    problems.push({ file, path: Config.formatKeyPath(path), reason, ...locate?.(path) })
  }
  for (const [agent, section] of Object.entries(config)) {
    const specs: Array<ScheduleSpec> = []
    const seen = new Map<string, number>()
    if (!validName(agent)) {
      problem(["schedules", agent], `agent names are 1..${MAX_NAME_LENGTH} printable characters`)
      continue
    }
    for (const [i, entry] of section.schedules.entries()) {
      const at: Config.KeyPath = ["schedules", agent, "schedules", i]
      if (!validName(entry.name)) {
        problem([...at, "name"], `schedule names are 1..${MAX_NAME_LENGTH} printable characters`)
        continue
      }
      const first = seen.get(entry.name)
      if (first !== undefined) {
        problem(
          [...at, "name"],
          `duplicate schedule name '${entry.name}' for agent '${agent}' (first at schedules[${first}])`
        )
        continue
      }
      seen.set(entry.name, i)
      if (entry.timezone !== undefined && Zone.canonicalZone(entry.timezone) === undefined) {
        problem([...at, "timezone"], `unknown IANA time zone '${entry.timezone}'`)
        continue
      }
      const parsed = Calendar.parse(entry.on_calendar, {
        agent,
        schedule: entry.name,
        ...(entry.timezone !== undefined ? { defaultTz: entry.timezone } : {})
      })
      if (Either.isLeft(parsed)) {
        const e = parsed.left
        problem(
          [...at, "on_calendar"],
          `invalid calendar expression '${entry.on_calendar}': ${e.reason} (${e.field} '${e.text}' at position ${e.position})`
        )
        continue
      }
      specs.push(
        new ScheduleSpec({
          name: entry.name,
          onCalendar: entry.on_calendar,
          calendar: Calendar.print(parsed.right),
          cmds: [...entry.cmds],
          ...(entry.timeout !== undefined ? { timeoutSecs: entry.timeout } : {}),
          overlap: entry.overlap,
          onFailure: entry.on_failure,
          paused: false,
          nice: entry.nice ?? DEFAULT_NICE
        })
      )
    }
    table.set(agent, specs)
  }
  return problems.length > 0 ? Either.left(new ScheduleLoadError({ problems })) : Either.right(table)
}

export const applyPaused = (table: Table, paused: ReadonlySet<string>): Table => {
  const out = new Map<string, ReadonlyArray<ScheduleSpec>>()
  for (const [agent, specs] of table) {
    out.set(
      agent,
      specs.map((s) => {
        const p = paused.has(pausedKey(agent, s.name))
        return p === s.paused ? s : new ScheduleSpec({ ...s, paused: p })
      })
    )
  }
  return out
}

const encodeSpecs = Schema.encodeSync(Schema.Array(ScheduleSpec))

const versions = new WeakMap<ReadonlyArray<ScheduleSpec>, string>()

/**
 * Content hash of one agent's table: equal tables have equal versions, whatever their history.
 * Remembered per array (tables are never changed in place: a reload or a pause makes new arrays),
 * since every hello and every reload's comparison asks for it.
 */
export const version = (specs: ReadonlyArray<ScheduleSpec>): string => {
  let v = versions.get(specs)
  if (v === undefined) {
    v = createHash("sha256").update(JSON.stringify(encodeSpecs(specs))).digest("hex").slice(0, 16)
    versions.set(specs, v)
  }
  return v
}

export const equals = (a: Table, b: Table): boolean => {
  if (a.size !== b.size) return false
  for (const [agent, specs] of a) {
    const other = b.get(agent)
    if (other === undefined || version(other) !== version(specs)) return false
  }
  return true
}

/** Agents whose table differs between `a` and `b` (present in one only counts). */
export const changedAgents = (a: Table, b: Table): ReadonlyArray<string> => {
  const agents = new Set([...a.keys(), ...b.keys()])
  return [...agents].filter((agent) => version(a.get(agent) ?? []) !== version(b.get(agent) ?? [])).sort()
}
