/**
 * Beyond the reference (D10): schedules, runs, tail [-f], run [--wait], cancel, pause, resume.
 */
import * as Messages from "@barto/domain/Messages"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Client from "../Client.js"
import * as Render from "../Render.js"
import { ask, print, withSession } from "../internal/remote.js"
import { CliFailure, globals, invalidValue, remoteOptions, styleOf, usageError } from "../internal/root.js"
import type { RemoteOptions } from "../internal/root.js"
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
          yield* print(
            g.json
              ? [Render.json(r.schedules.map((s) => Render.scheduleJson(s, zone)))]
              : Render.schedulesText(style, r.schedules)
          )
        }))
    })
).pipe(Command.withDescription("List the schedules (of one agent) with their next fire time."))

const RUN_STATES = Messages.RunState.literals

export const runs = Command.make(
  "runs",
  {
    agent: Options.text("agent").pipe(Options.withPseudoName("AGENT"), Options.optional),
    schedule: Options.text("schedule").pipe(Options.withPseudoName("SCHEDULE"), Options.optional),
    state: Options.choice("state", RUN_STATES).pipe(Options.optional),
    since: instantOption("since", "Only runs scheduled at or after this time (RFC 3339, or YYYY-MM-DD local)."),
    limit: Options.integer("limit").pipe(
      Options.withPseudoName("N"),
      Options.withDefault(50),
      Options.mapEffect((n) =>
        n >= 1 ? Effect.succeed(n) : Effect.fail(invalidValue(`invalid limit: '${n}' (1 or more)`))
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
          yield* print(g.json ? [Render.json(r.runs.map((run) => Render.runJson(run, zone)))] : Render.runsText(style, r.runs))
        }))
    })
).pipe(Command.withDescription("List runs, newest first."))

/**
 * Prints a tail as it streams: in text, a header when the run is known, each line, and the end
 * line; in JSON, one NDJSON event per line. Returns the final run row (when `done` arrived).
 */
const streamTail = (
  connection: Client.Connection,
  request: Omit<typeof Messages.TailRequest.Type, "id">,
  style: Render.Style,
  json: boolean
) =>
  Effect.gen(function*() {
    let announced: string | undefined
    let final: Messages.RunRow | undefined
    yield* connection.follow(request, (answer) =>
      Effect.gen(function*() {
        if (answer._tag !== "TailChunk") return false
        const out: Array<string> = []
        if (answer.run !== null && answer.run.runId !== announced && !answer.done) {
          announced = answer.run.runId
          out.push(
            json
              ? Render.jsonLine({ event: "run", ...Render.runJson(answer.run, style.zone) })
              : `${Render.paint(style, "bold", `run ${Render.clean(answer.run.runId)}`)} ${Render.clean(answer.run.agent)} ${
                Render.clean(answer.run.schedule)
              } ${Render.paintState(style, answer.run.state)}`
          )
        }
        for (const line of answer.lines) {
          out.push(
            json ? Render.jsonLine({ event: "line", ...Render.lineJson(line, style.zone) }) : Render.outputLine(style, line)
          )
        }
        if (answer.done && answer.run !== null) {
          final = answer.run
          out.push(
            json
              ? Render.jsonLine({ event: "end", ...Render.runJson(answer.run, style.zone) })
              : Render.runEndText(style, answer.run)
          )
        }
        yield* print(out)
        return answer.done
      }))
    return final
  })

export const tail = Command.make(
  "tail",
  {
    run: Args.text({ name: "RUN" }).pipe(Args.optional),
    follow: Options.boolean("follow").pipe(
      Options.withAlias("f"),
      Options.withDescription("Keep printing new lines until the run ends.")
    ),
    agent: Options.text("agent").pipe(Options.withPseudoName("AGENT"), Options.optional),
    schedule: Options.text("schedule").pipe(Options.withPseudoName("SCHEDULE"), Options.optional),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style } = yield* prologue(o)
      const agent = Option.getOrUndefined(o.agent)
      const schedule = Option.getOrUndefined(o.schedule)
      if (Option.isNone(o.run) && (agent === undefined || schedule === undefined)) {
        return yield* usageError("tail needs a RUN id, or --agent and --schedule")
      }
      if (Option.isSome(o.run) && (agent !== undefined || schedule !== undefined)) {
        return yield* usageError("tail takes a RUN id or --agent/--schedule, not both")
      }
      yield* withSession(g, style, ({ connection }) =>
        streamTail(
          connection,
          {
            _tag: "TailRequest",
            follow: o.follow,
            ...(Option.isSome(o.run) ? { runId: Messages.RunId.make(o.run.value) } : { agent, schedule })
          },
          style,
          g.json
        ))
    })
).pipe(
  Command.withDescription(
    "Print a run's output; -f follows it live until it ends. With --agent/--schedule: the latest (or next) run."
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
          const final = yield* streamTail(connection, { _tag: "TailRequest", runId: r.runId, follow: true }, style, g.json)
          if (final === undefined || final.state !== "succeeded") {
            return yield* new CliFailure({ message: "", exitCode: 1 })
          }
        }))
    })
).pipe(Command.withDescription("Run a schedule now (admin key required); prints the run id."))

export const cancel = Command.make(
  "cancel",
  { run: Args.text({ name: "RUN" }), ...remoteOptions },
  (o) =>
    Effect.gen(function*() {
      const { g, style } = yield* prologue(o)
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const r = yield* ask(connection, { _tag: "CancelRequest", runId: Messages.RunId.make(o.run) }, "CancelResponse")
          yield* print([
            g.json
              ? Render.json({ runId: r.runId, delivered: r.delivered })
              : r.delivered
              ? `cancel of run ${r.runId} sent to its agent`
              : `cancel of run ${r.runId} not delivered: its agent is not connected`
          ])
        }))
    })
).pipe(Command.withDescription("Cancel a running run (admin key required)."))

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
    Command.withDescription(
      name === "pause"
        ? "Pause a schedule: it runs nothing until resumed; its occurrences meanwhile are recorded as one missed range " +
          "(reason paused) when it is resumed (admin key required)."
        : "Resume a paused schedule; its occurrences while paused are recorded as one missed range (reason paused) " +
          "(admin key required)."
    )
  )

export const pause = pauseCommand("pause")
export const resume = pauseCommand("resume")

export const commands = [schedules, runs, tail, run, cancel, pause, resume] as const
