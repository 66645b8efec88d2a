/**
 * The reference's commands (reference §1.14, D10), same meaning, readable output when piped and
 * `--json` everywhere: info, clients, list, failed, cmd, updates, query, cleanup.
 */
import * as Messages from "@barto/domain/Messages"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { ask, print, warnIfTruncated, withSession } from "../internal/remote.js"
import {
  CliEnv,
  failure,
  globals,
  helpText,
  invalidValue,
  remoteExitCodes,
  remoteOptions,
  styleOf
} from "../internal/root.js"
import type { RemoteOptions } from "../internal/root.js"
import * as Render from "../Render.js"

/** The shared prologue of a remote command: merged globals and the style. */
const prologue = (o: RemoteOptions) =>
  Effect.gen(function*() {
    const g = yield* globals(o)
    const style = yield* styleOf(g)
    return { g, style, zone: style.zone }
  })

const agentOption = (description: string) =>
  Options.text("name").pipe(
    Options.withAlias("n"),
    Options.withPseudoName("NAME"),
    Options.withDescription(description)
  )

/**
 * `--before`: RFC 3339, or a date / date-time without offset in local time (`2026-01-01` = local
 * midnight, the reference's meaning of cleanup).
 */
export const instantOption = (name: string, description: string) =>
  Options.text(name).pipe(
    Options.withPseudoName("TIME"),
    Options.mapEffect((text) => {
      const micros = Render.parseInstant(text, Render.localZone())
      return micros === undefined
        ? Effect.fail(invalidValue(`--${name}: '${text}' is not a time (RFC 3339 or YYYY-MM-DD)`))
        : Effect.succeed(micros as Messages.Micros)
    }),
    Options.optional,
    Options.withDescription(description)
  )

/** The default window of `list -c`, `cmd` and `failed` on a terminal or in text. */
const RECENT_HOURS = 24
const RECENT_LINES = 1000
const RECENT_FAILED = 50

const windowOptions = (what: "lines" | "failed commands", perAgent = false) => ({
  since: instantOption("since", `Only ${what} at or after this time (RFC 3339, or YYYY-MM-DD = local midnight).`),
  until: instantOption("until", `Only ${what} before this time (RFC 3339, or YYYY-MM-DD = local midnight).`),
  limit: Options.integer("limit").pipe(
    Options.withPseudoName("N"),
    Options.mapEffect((
      n
    ) => (n >= 1 ? Effect.succeed(n) : Effect.fail(invalidValue(`--limit: '${n}' is not 1 or more`)))),
    Options.optional,
    Options.withDescription(`At most the newest N ${what}${perAgent ? " of each agent" : ""}.`)
  ),
  all: Options.boolean("all").pipe(
    Options.withDescription(
      `Everything, no window. Without --all, --since, --until or --limit: the last ${RECENT_HOURS} h, at most ` +
        `${what === "lines" ? RECENT_LINES : RECENT_FAILED} ${what} (piped with --json: everything).`
    )
  )
})

interface WindowOptions {
  readonly since: Option.Option<Messages.Micros>
  readonly until: Option.Option<Messages.Micros>
  readonly limit: Option.Option<number>
  readonly all: boolean
}

/**
 * The window to ask for, and how to describe it when it is the default: never an unbounded dump
 * to a terminal; scripts (`--json`, piped) keep getting everything.
 */
const windowOf = (o: WindowOptions, json: boolean, what: "lines" | "failed commands") =>
  Effect.gen(function*() {
    const env = yield* CliEnv
    const chosen = Option.isSome(o.since) || Option.isSome(o.until) || Option.isSome(o.limit)
    if (chosen || o.all || (json && !env.stdoutIsTTY)) {
      return {
        request: {
          ...(Option.isSome(o.since) ? { since: o.since.value } : {}),
          ...(Option.isSome(o.until) ? { until: o.until.value } : {}),
          ...(Option.isSome(o.limit) ? { limit: o.limit.value } : {})
        },
        note: undefined
      }
    }
    const nowMs = yield* Clock.currentTimeMillis
    const limit = what === "lines" ? RECENT_LINES : RECENT_FAILED
    return {
      request: { since: Messages.Micros.make((Math.floor(nowMs) - RECENT_HOURS * 3_600_000) * 1000), limit },
      note:
        `the last ${RECENT_HOURS} h, at most ${limit} ${what}; --since/--until/--limit to choose, --all for everything`
    }
  })

// ---------------------------------------------------------------------------------------------

export const info = Command.make("info", remoteOptions, (o) =>
  Effect.gen(function*() {
    const { g, style, zone } = yield* prologue(o)
    yield* withSession(g, style, ({ connection }) =>
      Effect.gen(function*() {
        const r = yield* ask(connection, { _tag: "InfoRequest" }, "InfoResponse")
        yield* print(g.json ? [Render.json(Render.infoJson(r, zone))] : Render.infoText(style, r))
      }))
  })).pipe(Command.withDescription(helpText(
    "info",
    "Show what bartos is: version, uptime, database, listeners, connected agents, the last config reload.",
    ["barto-cli info", "barto-cli info --json | jq .configReload"]
  )))

export const clients = Command.make(
  "clients",
  {
    versions: Options.boolean("versions").pipe(Options.withDescription("Only each agent's bartoc version.")),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style, zone } = yield* prologue(o)
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const r = yield* ask(connection, { _tag: "ClientsRequest" }, "ClientsResponse")
          if (o.versions) {
            yield* print(
              g.json ? [Render.json(Render.clientVersions(r.clients))] : Render.clientVersionsText(style, r.clients)
            )
          } else {
            yield* print(
              g.json
                ? [
                  Render.json(
                    [...r.clients].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((c) =>
                      Render.clientJson(c, zone)
                    )
                  )
                ]
                : Render.clientsText(style, r.clients)
            )
          }
        }))
    })
).pipe(Command.withDescription(helpText("clients", "List the connected agents (bartoc).", [
  "barto-cli clients",
  "barto-cli clients --versions",
  "barto-cli clients --json | jq -r '.[].name'"
])))

export const list = Command.make(
  "list",
  {
    name: agentOption("Agent (bartoc) name."),
    cmd: Options.text("cmd-name-opt").pipe(
      Options.withAlias("c"),
      Options.withPseudoName("CMD"),
      Options.optional,
      Options.withDescription("Show the output of this command (schedule name); without it, list the agent's commands.")
    ),
    ...windowOptions("lines"),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style, zone } = yield* prologue(o)
      const window = yield* windowOf(o, g.json, "lines")
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          if (Option.isNone(o.cmd)) {
            const r = yield* ask(connection, { _tag: "ListCommandsRequest", agent: o.name }, "ListCommandsResponse")
            yield* print(g.json ? [Render.json([...r.commands])] : Render.commandsText(style, r.commands))
          } else {
            const r = yield* ask(
              connection,
              { _tag: "ListRequest", agent: o.name, cmd: o.cmd.value, ...window.request },
              "LinesResponse"
            )
            yield* warnIfTruncated(r)
            yield* print(
              g.json
                ? [Render.json(r.lines.map((l) => Render.lineJson(l, zone)))]
                : Render.linesText(style, r.lines, window.note)
            )
          }
        }))
    })
).pipe(
  Command.withDescription(
    helpText("list", "List an agent's commands, or the output lines of one command (-c); the last 24 h by default.", [
      "barto-cli list -n web1",
      "barto-cli list -n web1 -c backup --since 2026-12-01 --limit 200",
      "barto-cli list -n web1 -c backup --all --json > backup.json"
    ])
  )
)

export const failed = Command.make(
  "failed",
  { ...windowOptions("failed commands"), ...remoteOptions },
  (o) =>
    Effect.gen(function*() {
      const { g, style, zone } = yield* prologue(o)
      const window = yield* windowOf(o, g.json, "failed commands")
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const r = yield* ask(connection, { _tag: "FailedRequest", ...window.request }, "FailedResponse")
          yield* warnIfTruncated(r)
          yield* print(
            g.json
              ? [Render.json(r.failed.map((f) => Render.failedJson(f, zone)))]
              : Render.failedText(style, r.failed, window.note)
          )
        }))
    })
).pipe(
  Command.withDescription(
    helpText(
      "failed",
      "List failed commands (exit code ≠ 0, signal, timeout) with their output; the last 24 h by default.",
      [
        "barto-cli failed",
        "barto-cli failed --since 2026-12-01 --until 2026-12-02",
        "barto-cli failed --all --json"
      ]
    )
  )
)

export const cmd = Command.make(
  "cmd",
  {
    cmdName: Args.text({ name: "CMD_NAME" }).pipe(Args.withDescription("A command (schedule) name.")),
    ...windowOptions("lines", true),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style, zone } = yield* prologue(o)
      const window = yield* windowOf(o, g.json, "lines")
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const r = yield* ask(connection, { _tag: "CmdRequest", cmd: o.cmdName, ...window.request }, "CmdResponse")
          yield* warnIfTruncated(r)
          yield* print(
            g.json
              ? [Render.json(Render.cmdJson(r.byAgent, zone))]
              : Render.cmdText(style, r.byAgent, window.note)
          )
        }))
    })
).pipe(
  Command.withDescription(
    helpText("cmd", "Show the output of one command on every agent, grouped by agent; the last 24 h by default.", [
      "barto-cli cmd backup",
      "barto-cli cmd backup --limit 20"
    ])
  )
)

const UPDATE_KINDS: ReadonlyArray<Messages.UpdateKind> = ["garuda", "pacman", "cachyos", "apt"]

export const parseUpdateKind = (text: string): Messages.UpdateKind | undefined =>
  UPDATE_KINDS.find((k) => k === text.toLowerCase())

export const updates = Command.make(
  "updates",
  {
    name: agentOption("Agent (bartoc) name."),
    kind: Options.text("update-kind").pipe(
      Options.withAlias("u"),
      Options.withPseudoName("garuda|pacman|cachyos|apt"),
      Options.mapEffect((text) => {
        const kind = parseUpdateKind(text)
        return kind === undefined ? Effect.fail(invalidValue(`invalid update kind: '${text}'`)) : Effect.succeed(kind)
      }),
      Options.withDescription(
        "Which package manager's output to read (case-insensitive): garuda = garuda-update's table; pacman, " +
          "cachyos = pacman's `Packages (N)` and `Total … Size` summary; apt = the names under `The following " +
          "packages will be upgraded:` (apt-get -s upgrade, apt upgrade) and the lines of `apt list --upgradable`."
      )
    ),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style } = yield* prologue(o)
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const r = yield* ask(connection, { _tag: "UpdatesRequest", agent: o.name, kind: o.kind }, "UpdatesResponse")
          yield* print(g.json ? [Render.json(Render.updatesJson(r.result))] : Render.updatesText(style, r.result))
        }))
    })
).pipe(Command.withDescription(helpText(
  "updates",
  "Summarise pending package updates from an agent's successful command output.",
  ["barto-cli updates -n web1 -u garuda", "barto-cli updates -n db1 -u apt --json"]
)))

export const query = Command.make(
  "query",
  {
    sql: Options.text("query").pipe(
      Options.withAlias("q"),
      Options.withPseudoName("SQL"),
      Options.withDescription("A read-only statement (SELECT, WITH, SHOW, EXPLAIN).")
    ),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style } = yield* prologue(o)
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const r = yield* ask(connection, { _tag: "QueryRequest", sql: o.sql }, "QueryResponse")
          yield* print(g.json ? [Render.json(Render.queryJson(r))] : Render.queryText(style, r))
        }))
    })
).pipe(
  Command.withDescription(helpText(
    "query",
    "Run a read-only SQL statement on bartos' database (row and byte caps and a timeout apply; admin key when bartos requires it).",
    [
      "barto-cli query -q \"SELECT agent, schedule, state, started_at FROM runs_view WHERE started_at > '2026-12-01'\"",
      "barto-cli query -q 'SELECT state, COUNT(*) AS n FROM runs GROUP BY state' --json"
    ]
  ))
)

export const cleanup = Command.make(
  "cleanup",
  {
    before: instantOption(
      "before",
      "Delete everything before this time (RFC 3339, or YYYY-MM-DD = local midnight). Default: today's midnight on bartos."
    ),
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("Only count what would be deleted.")),
    yes: Options.boolean("yes").pipe(
      Options.withAlias("y"),
      Options.withDescription("Do not ask: on a terminal, cleanup otherwise shows the dry run and asks first.")
    ),
    ...remoteOptions
  },
  (o) =>
    Effect.gen(function*() {
      const { g, style, zone } = yield* prologue(o)
      const env = yield* CliEnv
      const confirm = o.dryRun || o.yes ? undefined : env.confirm
      yield* withSession(g, style, ({ connection }) =>
        Effect.gen(function*() {
          const cleanup = (dryRun: boolean, before: Messages.Micros | undefined) =>
            ask(
              connection,
              { _tag: "CleanupRequest", dryRun, ...(before !== undefined ? { before } : {}) },
              "CleanupResponse"
            )
          let before = Option.getOrUndefined(o.before)
          if (confirm !== undefined) {
            // The same instant for both: the default (bartos' midnight) is fixed by the dry run.
            const dry = yield* cleanup(true, before)
            before = dry.before
            // On stderr, with the question: stdout keeps only the result (`--json` stays one document).
            yield* Console.error(Render.terminalSafe(Render.cleanupText(style, dry).join("\n")))
            if (
              !(yield* confirm(
                `Delete these ${dry.runs} runs, ${dry.commands} command results and ${dry.lines} lines?`
              ))
            ) {
              return yield* failure("cleanup: not confirmed; nothing deleted")
            }
          }
          const r = yield* cleanup(o.dryRun, before)
          yield* print(g.json ? [Render.json(Render.cleanupJson(r, zone))] : Render.cleanupText(style, r))
        }))
    })
).pipe(
  Command.withDescription(
    helpText(
      "cleanup",
      "Delete old runs and output (admin key required). On a terminal without --yes: shows the dry run and asks first.",
      [
        "barto-cli cleanup --before 2026-06-01 --dry-run",
        "barto-cli cleanup --before 2026-06-01",
        "barto-cli cleanup --yes"
      ],
      [...remoteExitCodes, "1  also: not confirmed at the question (nothing deleted)"]
    )
  )
)

export const commands = [info, clients, list, failed, cmd, updates, query, cleanup] as const
