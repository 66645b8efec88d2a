/**
 * Beyond the reference (D10): schedules, runs, tail [-f], run [--wait], cancel, pause, resume.
 */
import * as Messages from "@barto/domain/Messages"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Client from "../Client.js"
import { ask, print, resolveRunId, runIdInput, withSession } from "../internal/remote.js"
import {
  CliFailure,
  globals,
  helpText,
  invalidValue,
  remoteExitCodes,
  remoteOptions,
  styleOf,
  usageError
} from "../internal/root.js"
import type { RemoteOptions } from "../internal/root.js"
import * as Render from "../Render.js"
import { instantOption } from "./Reference.js"

const prologue = (o: RemoteOptions) =>
  Effect.gen(function*() {
    const g = yield* globals(o)
    const style = yield* styleOf(g)
    return { g, style, zone: style.zone }
  })

// ---------------------------------------------------------------------------------------------

export const schedules = Command.make(
  "schedules",
  { agent: Args.text({ name: "AGENT" }).pipe(Args.optional), ...remoteOptions },
  (o) =>
    Effect.gen(function*() {
      const { g, style, zone } = yield* prologue(o)
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const r = yield* ask(
            connection,
            { _tag: "SchedulesRequest", ...(Option.isSome(o.agent) ? { agent: o.agent.value } : {}) },
            "SchedulesResponse"
          )
          const nowMs = yield* Clock.currentTimeMillis
          yield* print(
            g.json
              ? [Render.json(r.schedules.map((s) => Render.scheduleJson(s, zone)))]
              : Render.schedulesText(style, r.schedules, nowMs)
          )
        }))
    })
).pipe(
  Command.withDescription(
    helpText(
      "schedules",
      "List the schedules (of one agent): last run, result, duration, next run (or paused) and the effective timeout, " +
        "overlap, on_failure, the agent's missed_tick (with catch_up_limit) and zone.",
      ["barto-cli schedules", "barto-cli schedules web1 --json | jq '.[] | select(.lastRun.state != \"succeeded\")'"]
    )
  )
)

export const status = Command.make("status", remoteOptions, (o) =>
  Effect.gen(function*() {
    const { g, style, zone } = yield* prologue(o)
    yield* withSession(g, style, ({ connection }) =>
      Effect.gen(function*() {
        const r = yield* ask(connection, { _tag: "StatusRequest" }, "StatusResponse")
        const nowMs = yield* Clock.currentTimeMillis
        yield* print(g.json ? [Render.json(Render.statusJson(r, zone))] : Render.statusText(style, r, nowMs))
      }))
  })).pipe(
    Command.withDescription(
      helpText(
        "status",
        "The fleet at a glance: agents online/offline with last seen, runs in progress, failures in the last 24 h, " +
          "the last config reload, and every schedule as `schedules` shows it.",
        ["barto-cli status", "barto-cli status --json | jq .failures24h"]
      )
    )
  )

const RUN_STATES = Messages.RunState.literals

/** `--agent AGENT` / `--schedule SCHEDULE`, optional. */
const filterOption = (name: "agent" | "schedule", description: string) =>
  Options.text(name).pipe(
    Options.withPseudoName(name.toUpperCase()),
    Options.withDescription(description),
    Options.optional
  )

export const runs = Command.make(
  "runs",
  {
    agent: filterOption("agent", "Only runs of this agent (bartoc name)."),
    schedule: filterOption("schedule", "Only runs of this schedule."),
    state: Options.choice("state", RUN_STATES).pipe(
      Options.withDescription(`Only runs in this state: ${RUN_STATES.join(", ")}.`),
      Options.optional
    ),
    since: instantOption("since", "Only runs scheduled at or after this time (RFC 3339, or YYYY-MM-DD local)."),
    limit: Options.integer("limit").pipe(
      Options.withPseudoName("N"),
      Options.withDefault(50),
      Options.mapEffect((n) =>
        n >= 1 ? Effect.succeed(n) : Effect.fail(invalidValue(`--limit: '${n}' is not 1 or more`))
      ),
      Options.withDescription("At most N runs, newest first.")
    ),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style, zone } = yield* prologue(o)
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const r = yield* ask(
            connection,
            {
              _tag: "RunsRequest",
              limit: o.limit,
              ...(Option.isSome(o.agent) ? { agent: o.agent.value } : {}),
              ...(Option.isSome(o.schedule) ? { schedule: o.schedule.value } : {}),
              ...(Option.isSome(o.state) ? { state: o.state.value } : {}),
              ...(Option.isSome(o.since) ? { since: o.since.value } : {})
            },
            "RunsResponse"
          )
          yield* print(
            g.json ? [Render.json(r.runs.map((run) => Render.runJson(run, zone)))] : Render.runsText(style, r.runs)
          )
        }))
    })
).pipe(
  Command.withDescription(
    helpText("runs", "List runs, newest first; the RUN column is the short form `tail`/`cancel` accept.", [
      "barto-cli runs --agent web1 --state failed --since 2026-12-01",
      "barto-cli runs --schedule backup --limit 5 --json"
    ])
  )
)

/**
 * Prints a tail as it streams: in text, a header when a run is known, each line, and the end
 * line; in JSON, one NDJSON event per line (`run`, `line`, `end`, `heartbeat`, and between the
 * runs of a continuous tail `waiting`). A heartbeat in text is a status line on stderr (`Render.beatText`). `prefix`: lines of several schedules, each led by `agent/schedule`.
 * Returns the final run row (when `done` arrived).
 */
const streamTail = (
  connection: Client.Connection,
  request: Omit<typeof Messages.TailRequest.Type, "id">,
  style: Render.Style,
  json: boolean,
  prefix = false
) =>
  Effect.gen(function*() {
    const announced = new Set<string>()
    let final: Messages.RunRow | undefined
    const lead = (
      r: { readonly agent: string; readonly schedule: string }
    ) => (prefix ? `${Render.runPrefix(style, r)} ` : "")
    yield* connection.follow(request, (answer) =>
      Effect.gen(function*() {
        if (answer._tag !== "TailChunk") return false
        if (
          answer.run === null && answer.lines.length === 0 && answer.waiting === undefined && !answer.done &&
          answer.beat === undefined
        ) {
          yield* Effect.logDebug("bartos follows the runs; output appears as it comes")
        }
        const out: Array<string> = []
        const notes: Array<string> = []
        const beat = (
          who: { readonly runId: Messages.RunId; readonly agent: string; readonly schedule: string },
          b: Messages.RunHeartbeat
        ) =>
          json
            ? out.push(Render.jsonLine({ event: "heartbeat", ...Render.beatJson({ ...who, ...b }, style.zone) }))
            : notes.push(Render.beatText(style, b, prefix ? Render.runPrefix(style, who) : undefined))
        if (answer.waiting !== undefined) {
          const w = answer.waiting
          const nowMs = yield* Clock.currentTimeMillis
          out.push(
            json
              ? Render.jsonLine({
                event: "waiting",
                agent: w.agent,
                schedule: w.schedule,
                nextAt: Render.formatMicrosOrNull(w.nextAt, style.zone),
                paused: w.paused
              })
              : Render.waitingText(style, w, nowMs)
          )
        }
        const ends = answer.done || answer.end === true
        if (answer.run !== null && !announced.has(answer.run.runId) && !ends) {
          announced.add(answer.run.runId)
          out.push(
            json
              ? Render.jsonLine({ event: "run", ...Render.runJson(answer.run, style.zone) })
              : `${lead(answer.run)}${Render.paint(style, "bold", `run ${Render.clean(answer.run.runId)}`)} ${
                Render.clean(answer.run.agent)
              } ${Render.clean(answer.run.schedule)} ${Render.paintState(style, answer.run.state)}`
          )
          // A run already beating: its last beat, so the follower sees how far it got.
          if (answer.run.state === "running" && answer.run.heartbeat !== undefined) {
            beat(answer.run, answer.run.heartbeat)
          }
        }
        for (const line of answer.lines) {
          out.push(
            json
              ? Render.jsonLine({ event: "line", ...Render.lineJson(line, style.zone) })
              : `${lead(line)}${Render.outputLine(style, line)}`
          )
        }
        if (answer.beat !== undefined) {
          const { agent, runId, schedule, ...b } = answer.beat
          beat({ agent, runId, schedule }, b)
        }
        if (ends && answer.run !== null) {
          final = answer.run
          announced.delete(answer.run.runId)
          out.push(
            json
              ? Render.jsonLine({ event: "end", ...Render.runJson(answer.run, style.zone) })
              : `${lead(answer.run)}${Render.runEndText(style, answer.run)}`
          )
        }
        yield* print(out)
        if (notes.length > 0) yield* Console.error(Render.terminalSafe(notes.join("\n")))
        return answer.done
      }))
    return final
  })

export const tail = Command.make(
  "tail",
  {
    run: Args.text({ name: "RUN" }).pipe(
      Args.withDescription(
        "A run id: whole, a unique prefix (6 or more characters), or the 8-character short form tables show."
      ),
      Args.optional
    ),
    follow: Options.boolean("follow").pipe(
      Options.withAlias("f"),
      Options.withDescription(
        "Follow: a RUN until it ends; with --agent/--schedule run after run until Ctrl-C (waiting for the next " +
          "run in between); with --agent alone every schedule of the agent, with neither the whole fleet."
      )
    ),
    once: Options.boolean("once").pipe(
      Options.withDescription(
        "With --agent and --schedule: only the current (or latest, or next) run, then exit 0 if it succeeded, 1 if not."
      )
    ),
    agent: filterOption("agent", "The agent (bartoc name) whose runs to show."),
    schedule: filterOption("schedule", "The schedule of --agent whose runs to show."),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style } = yield* prologue(o)
      const agent = Option.getOrUndefined(o.agent)
      const schedule = Option.getOrUndefined(o.schedule)
      if (Option.isSome(o.run) && (agent !== undefined || schedule !== undefined)) {
        return yield* usageError("tail: takes a RUN id or --agent/--schedule, not both")
      }
      if (schedule !== undefined && agent === undefined) return yield* usageError("tail: --schedule needs --agent")
      const one = Option.isSome(o.run) || (agent !== undefined && schedule !== undefined)
      if (!one && !o.follow) {
        return yield* usageError(
          "tail: needs a RUN id, or --agent and --schedule (or -f to follow an agent or the fleet)"
        )
      }
      if (!one && o.once) return yield* usageError("tail: --once needs a RUN id, or --agent and --schedule")
      if (Option.isSome(o.run)) yield* runIdInput(o.run.value, "tail")
      const continuous = o.follow && !o.once && Option.isNone(o.run)
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const request: Omit<typeof Messages.TailRequest.Type, "id"> = Option.isSome(o.run)
            ? { _tag: "TailRequest", follow: o.follow, runId: yield* resolveRunId(connection, o.run.value) }
            : { _tag: "TailRequest", follow: o.follow, agent, schedule, ...(continuous ? { continuous: true } : {}) }
          const final = yield* streamTail(connection, request, style, g.json, continuous && schedule === undefined)
          if (o.once && final !== undefined && final.state !== "succeeded") {
            return yield* new CliFailure({ message: "", exitCode: 1 })
          }
        }))
    })
).pipe(
  Command.withDescription(
    helpText(
      "tail",
      "Print a run's output; -f follows like journalctl -f: one run, a schedule run after run, an agent or the whole fleet. " +
        "A job's heartbeats are status lines on stderr (`-- heartbeat 40/100 degraded: slow`), with --json `heartbeat` events.",
      [
        "barto-cli tail 7d4e9a1c",
        "barto-cli tail -f --agent web1 --schedule backup",
        "barto-cli tail -f --agent web1 --schedule backup --once && echo ok",
        "barto-cli tail -f --json"
      ],
      [...remoteExitCodes, "130  interrupted (Ctrl-C) while following", "--once: 1 when the run did not succeed"]
    )
  )
)

export const run = Command.make(
  "run",
  {
    agent: Args.text({ name: "AGENT" }),
    schedule: Args.text({ name: "SCHEDULE" }),
    wait: Options.boolean("wait").pipe(
      Options.withAlias("w"),
      Options.withDescription("Follow the run like tail -f; exit 0 if it succeeded, 1 otherwise.")
    ),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style } = yield* prologue(o)
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const r = yield* ask(
            connection,
            { _tag: "RunNowRequest", agent: o.agent, schedule: o.schedule },
            "RunNowResponse"
          )
          if (!o.wait) {
            yield* print([g.json ? Render.json({ runId: r.runId, agent: r.agent, schedule: r.schedule }) : r.runId])
            return
          }
          yield* print([
            g.json
              ? Render.jsonLine({ event: "started", runId: r.runId, agent: r.agent, schedule: r.schedule })
              : r.runId
          ])
          const final = yield* streamTail(
            connection,
            { _tag: "TailRequest", runId: r.runId, follow: true },
            style,
            g.json
          )
          if (final === undefined || final.state !== "succeeded") {
            return yield* new CliFailure({ message: "", exitCode: 1 })
          }
        }))
    })
).pipe(Command.withDescription(helpText(
  "run",
  "Run a schedule now (admin key required); prints the run id.",
  ["barto-cli run web1 backup", "barto-cli run web1 backup --wait"],
  [
    "0  started (with --wait: the run succeeded)",
    "1  error: bartos refused (barto-cli: <code>: <message>), no reply, cannot connect, config error; with --wait: " +
    "the run did not succeed",
    "2  usage error (unknown command or option, invalid value)"
  ]
)))

export const cancel = Command.make(
  "cancel",
  {
    run: Args.text({ name: "RUN" }).pipe(
      Args.withDescription(
        "A run id: whole, a unique prefix (6 or more characters), or the 8-character short form tables show."
      )
    ),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style } = yield* prologue(o)
      yield* runIdInput(o.run, "cancel")
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const runId = yield* resolveRunId(connection, o.run)
          const r = yield* ask(connection, { _tag: "CancelRequest", runId }, "CancelResponse")
          yield* print([
            g.json
              ? Render.json({ runId: r.runId, delivered: r.delivered })
              : r.delivered
              ? `cancel of run ${r.runId} sent to its agent`
              : `cancel of run ${r.runId} not delivered: its agent is not connected`
          ])
        }))
    })
).pipe(Command.withDescription(helpText("cancel", "Cancel a running run (admin key required).", [
  "barto-cli cancel 7d4e9a1c",
  "barto-cli cancel 0194b1c2-0000-7000-8000-00000000000b --json"
])))

const pauseCommand = (name: "pause" | "resume") =>
  Command.make(
    name,
    { agent: Args.text({ name: "AGENT" }), schedule: Args.text({ name: "SCHEDULE" }), ...remoteOptions },
    (o) =>
      Effect.gen(function*() {
        const { g, style } = yield* prologue(o)
        yield* withSession(g, style, ({ connection }) =>
          Effect.gen(function*() {
            const r = yield* ask(
              connection,
              { _tag: name === "pause" ? "PauseRequest" : "ResumeRequest", agent: o.agent, schedule: o.schedule },
              "PauseResponse"
            )
            yield* print([
              g.json
                ? Render.json({ agent: r.agent, schedule: r.schedule, paused: r.paused })
                : `${Render.clean(r.agent)} ${Render.clean(r.schedule)}: ${r.paused ? "paused" : "active"}`
            ])
          }))
      })
  ).pipe(
    Command.withDescription(helpText(
      name,
      name === "pause"
        ? "Pause a schedule: it runs nothing until resumed; its occurrences meanwhile are recorded as one missed range " +
          "(reason paused) when it is resumed (admin key required)."
        : "Resume a paused schedule; its occurrences while paused are recorded as one missed range (reason paused) " +
          "(admin key required).",
      [`barto-cli ${name} web1 backup`, `barto-cli ${name} web1 backup --json`]
    ))
  )

export const pause = pauseCommand("pause")
export const resume = pauseCommand("resume")

export const commands = [schedules, status, runs, tail, run, cancel, pause, resume] as const
