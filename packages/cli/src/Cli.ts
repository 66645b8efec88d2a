/**
 * The barto-cli command tree (D10) and its runner. `run(argv)` parses the **full** argv (node,
 * script, args…), executes the subcommand and returns the exit status: 0 ok, 1 error, 2 usage.
 * It never fails: every error has been printed once (on stderr) by the time it returns.
 */
import { hiddenBuiltIn, normalizeGlobalFlags, tidyHelp } from "@barto/domain/Argv"
import * as Config from "@barto/domain/Config"
import * as Logging from "@barto/domain/Logging"
import { escapeControlsKeepLines } from "@barto/domain/Printable"
import * as CliCommand from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Alerts from "./commands/Alerts.js"
import * as Beat from "./commands/Beat.js"
import * as Calendar from "./commands/Calendar.js"
import * as Reference from "./commands/Reference.js"
import * as Runs from "./commands/Runs.js"
import {
  CliEnv,
  CliFailure,
  failure,
  root,
  suggestion,
  usageError,
  Verbosity,
  VERSION,
  withPurposes
} from "./internal/root.js"
import * as Render from "./Render.js"

export { VERSION }

const subcommands = [
  Calendar.command,
  ...Reference.commands,
  ...Runs.commands,
  Beat.command,
  ...Alerts.commands
] as const

export const command = root.pipe(
  CliCommand.withHandler(() => Effect.fail(usageError("missing command (see 'barto-cli --help')"))),
  CliCommand.withDescription("Command-line client of bartos, the barto job scheduler server."),
  CliCommand.withSubcommands(subcommands)
)

export const SUBCOMMAND_NAMES: ReadonlyArray<string> = [...HashMap.keys(CliCommand.getSubcommands(command))]

const cli = CliCommand.run(command, { name: "barto-cli", version: VERSION })

/** Root options that take a value: their value is never mistaken for a flag or a subcommand. */
const VALUE_OPTIONS = new Set(["-c", "--config-absolute-path", "-t", "--tracing-absolute-path", "--timeout"])

/** Every option the root takes (ours and @effect/cli's built-ins we keep), for an unknown one's did-you-mean. */
const ROOT_OPTIONS = [
  ...VALUE_OPTIONS,
  "-v",
  "--verbose",
  "-q",
  "--quiet",
  "-e",
  "--enable-std-output",
  "-j",
  "--json",
  "--local",
  "-h",
  "--help",
  "--version",
  "-V",
  "--completions"
]

/** The first option before the subcommand that the root does not take, if any. */
const unknownRootOption = (argv: ReadonlyArray<string>): string | undefined => {
  const tokens = normalizeArgv(argv).argv
  for (let i = 2; i < tokens.length; i++) {
    const token = tokens[i]!
    if (token === "--" || SUBCOMMAND_NAMES.includes(token)) return undefined
    if (VALUE_OPTIONS.has(token) || token === "--completions") i++
    else if (token.startsWith("-") && !ROOT_OPTIONS.includes(token.split("=")[0]!)) return token
  }
  return undefined
}

/**
 * Rewrites the global part of argv (before the subcommand) for what @effect/cli cannot express:
 * repeated `-v`/`-q` (also clustered as `-vvv`) are counted and passed once, `-V` means
 * `--version` (the reference's spelling). Everything from the subcommand on is left untouched.
 */
export const normalizeArgv = (
  argv: ReadonlyArray<string>,
  subcommandNames: ReadonlyArray<string> = SUBCOMMAND_NAMES
): {
  readonly argv: Array<string>
  readonly verbose: number
  readonly quiet: number
  readonly tracingPath: string | undefined
} => {
  const global = normalizeGlobalFlags(argv, {
    valueOptions: VALUE_OPTIONS,
    clusterLetters: "ej",
    stopAt: new Set(subcommandNames)
  })
  let tracingPath: string | undefined
  for (let i = 2; i < global.restIndex; i++) {
    const token = argv[i]!
    if (token === "-t" || token === "--tracing-absolute-path") tracingPath = argv[i + 1]
    else if (token.startsWith("--tracing-absolute-path=")) tracingPath = token.slice("--tracing-absolute-path=".length)
  }
  // A global -v may follow the subcommand (no subcommand uses -v itself); -q may not: it is
  // `query -q SQL`.
  const lateVerbose = argv.slice(global.restIndex).filter((t) => t === "-v" || t === "--verbose").length
  return { argv: global.argv, verbose: global.verbose + lateVerbose, quiet: global.quiet, tracingPath }
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g

/** `runs: ` when argv names a subcommand, for the lead of a usage error. */
const subcommandOf = (argv: ReadonlyArray<string>): string | undefined => {
  const sub = argv.slice(2).find((t) => SUBCOMMAND_NAMES.includes(t))
  return sub === undefined ? undefined : `${sub}: `
}

/** The option whose value is `value` in argv (`--limit abc` or `--limit=abc`), if any. */
const optionOf = (argv: ReadonlyArray<string>, value: string): string | undefined => {
  for (let i = 3; i < argv.length; i++) {
    if (argv[i] === value && argv[i - 1]!.startsWith("-")) return argv[i - 1]
  }
  const joined = argv.find((t) => t.startsWith("--") && t.endsWith(`=${value}`))
  return joined?.slice(0, joined.indexOf("="))
}

/**
 * @effect/cli's usage errors in barto-cli's one style: `barto-cli: runs: --limit: 'abc' is not an
 * integer`, and for a value outside a choice the valid ones with did-you-mean.
 */
export const usageLine = (argv: ReadonlyArray<string>, text: string): string => {
  const lead = `barto-cli: ${subcommandOf(argv) ?? ""}`
  const unknownArgument = /Received unknown argument: '(.*)'/.exec(text)
  // @effect/cli's answer to an unknown option before the subcommand ("Invalid subcommand for
  // barto-cli - use one of <every command>") does not name the option.
  const rootOption = text.startsWith("Invalid subcommand for barto-cli") ? unknownRootOption(argv) : undefined
  if (rootOption !== undefined) {
    return `barto-cli: unknown option '${rootOption}'${suggestion(rootOption, ROOT_OPTIONS)}`
  }
  if (unknownArgument !== null) {
    const arg = unknownArgument[1]!
    return `${lead}unknown ${arg.startsWith("-") ? "option" : "argument"} '${arg}'`
  }
  const notA = /^'(.*)' is not an? ([\w ]+)$/.exec(text)
  if (notA !== null) {
    const option = optionOf(argv, notA[1]!)
    const kind = /^[aeiou]/.test(notA[2]!) ? `an ${notA[2]}` : `a ${notA[2]}`
    return `${lead}${option === undefined ? "" : `${option}: `}'${notA[1]}' is not ${kind}`
  }
  const cases = /^Expected one of the following cases: (.*)$/.exec(text)
  if (cases !== null) {
    const choices = cases[1]!.split(", ")
    for (let i = 3; i < argv.length; i++) {
      const value = argv[i]!
      if (argv[i - 1]!.startsWith("--") && !value.startsWith("-") && !choices.includes(value)) {
        return `${lead}${argv[i - 1]}: '${value}' is not one of ${choices.join(", ")}${suggestion(value, choices)}`
      }
    }
  }
  return `${lead}${text}`
}

/**
 * The console as barto-cli uses it: @effect/cli's help and errors come with ANSI colours and a
 * trailing newline whatever the output is; drop the colours unless colour is allowed, and the
 * trailing newlines (each `log` ends a line already); tidy the help (`Argv.tidyHelp`).
 */
export const tidyConsole = (
  base: Console.Console,
  color: boolean,
  argv: ReadonlyArray<string> = []
): Console.Console => {
  const tidy = (args: ReadonlyArray<unknown>) =>
    args.map((a) =>
      typeof a === "string" ? withPurposes(tidyHelp((color ? a : a.replace(ANSI, "")).replace(/\n+$/, ""))) : a
    )
  // What reaches stderr without our prefix is @effect/cli's usage error: restyled, first line only prefixed.
  // An unknown option at the root comes as "Invalid subcommand … use one of <every command>" with
  // the option on a later line: one line naming the option says it better.
  const tidyError = (args: ReadonlyArray<unknown>) =>
    tidy(args).map((a) => {
      if (typeof a !== "string" || a.startsWith("barto-cli") || a.trim() === "") return a
      const plain = a.replace(ANSI, "")
      // Our other unprefixed stderr lines are tail's status notes (`-- heartbeat …`).
      if (plain.startsWith("-- ")) return a
      const unknownArgument = /Received unknown argument: '.*'/.exec(plain)
      return unknownArgument !== null
        ? usageLine(argv, unknownArgument[0])
        : [usageLine(argv, plain.split("\n")[0]!.trim()), ...a.split("\n").slice(1)].join("\n")
    })
  const unsafe: Console.UnsafeConsole = {
    ...base.unsafe,
    log: (...args) => base.unsafe.log(...tidy(args)),
    error: (...args) => base.unsafe.error(...tidyError(args))
  }
  return {
    ...base,
    log: (...args) => base.log(...tidy(args)),
    error: (...args) => base.error(...tidyError(args)),
    unsafe
  }
}

/** Runs the CLI and returns the exit status. */
export const run = (argv: ReadonlyArray<string>) =>
  Effect.flatMap(CliEnv, (env) =>
    Console.consoleWith((base) =>
      runTidy(argv, env.env).pipe(
        Effect.withConsole(
          tidyConsole(base, Render.makeStyle({ tty: env.stdoutIsTTY, env: env.env, local: false }).color, argv)
        )
      )
    ))

/**
 * The shared logger (D9 levels: INFO, -v DEBUG, -vv TRACE, -q WARN, -qq ERROR) writing to the log
 * file and to stderr — never stdout, which carries the data. Like the reference barto-cli, logging
 * to the terminal is always on (`-e` is accepted and changes nothing). A default log file that
 * cannot be opened is skipped; an explicit `-t` one is an error.
 */
const loggerLayer = (normalized: ReturnType<typeof normalizeArgv>, env: Record<string, string | undefined>) =>
  Layer.unwrapEffect(Console.consoleWith((console) =>
    Effect.sync(() => {
      const options = {
        program: "barto-cli" as const,
        verbose: normalized.verbose,
        quiet: normalized.quiet,
        enableStdOutput: true,
        logFile: normalized.tracingPath ?? Config.defaultPaths("barto-cli", env).logFile,
        stderr: { write: (text: string) => console.unsafe.error(text) }
      }
      return Logging.layer(options).pipe(
        Layer.catchAll((e): Layer.Layer<never, CliFailure | Logging.LogFileError> =>
          normalized.tracingPath !== undefined
            ? Layer.effectDiscard(Effect.fail(failure(e.message)))
            : Logging.layer({ ...options, logFile: false })
        )
      )
    })
  ))

/** The shells `--completions` writes a script for (@effect/cli's built-in option). */
const SHELLS = ["bash", "fish", "sh", "zsh"]

/** Built-in options of @effect/cli that take a value. */
const BUILT_IN_VALUE_OPTIONS = new Set(["--completions", "--log-level"])

/**
 * The first word where a subcommand belongs when it is not one (`tial`), else undefined. @effect/cli
 * would print the root help and exit 0 for `barto-cli NOSUCH --help`; an unknown command is a usage
 * error with or without --help.
 */
export const unknownCommand = (argv: ReadonlyArray<string>, names: ReadonlyArray<string> = SUBCOMMAND_NAMES) => {
  for (let i = 2; i < argv.length; i++) {
    const token = argv[i]!
    if (token === "--") return undefined
    if (VALUE_OPTIONS.has(token) || BUILT_IN_VALUE_OPTIONS.has(token)) {
      i++
      continue
    }
    if (token.startsWith("-")) continue
    return names.includes(token) ? undefined : token
  }
  return undefined
}

const runTidy = (argv: ReadonlyArray<string>, env: Record<string, string | undefined>) => {
  const normalized = normalizeArgv(argv)
  const unknown = unknownCommand(argv)
  const hidden = hiddenBuiltIn(argv)
  const shell = argv[argv.indexOf("--completions") + 1]
  type Parsed = ReturnType<typeof cli>
  const parsed: Effect.Effect<void, CliFailure | Effect.Effect.Error<Parsed>, Effect.Effect.Context<Parsed>> =
    argv.includes("--completions") && (shell === undefined || !SHELLS.includes(shell))
      ? Effect.fail(
        usageError(
          `--completions: '${shell ?? ""}' is not one of ${SHELLS.join(", ")}${suggestion(shell ?? "", SHELLS)}`
        )
      )
      : hidden !== undefined
      ? Effect.fail(usageError(`${subcommandOf(argv) ?? ""}unknown option '${hidden}'`))
      : unknown !== undefined
      ? Effect.fail(
        usageError(
          `unknown command '${unknown}'${
            suggestion(unknown, SUBCOMMAND_NAMES)
          }; see 'barto-cli --help' for the commands`
        )
      )
      : cli(normalized.argv)
  return parsed.pipe(
    Effect.provideService(Verbosity, { verbose: normalized.verbose, quiet: normalized.quiet }),
    Effect.provide(loggerLayer(normalized, env)),
    Effect.as(0),
    Effect.catchAll((e): Effect.Effect<number> => {
      // @effect/cli has printed the parse error already; printing it again is the double-print
      // of style.md §8.
      if (ValidationError.isValidationError(e)) return Effect.succeed(2)
      // Messages quote the server (CliError, close reasons, protocol errors): never raw controls.
      if (e instanceof CliFailure) {
        return (e.message === "" ? Effect.void : Console.error(`barto-cli: ${escapeControlsKeepLines(e.message)}`))
          .pipe(
            Effect.as(e.exitCode)
          )
      }
      return Console.error(`barto-cli: ${escapeControlsKeepLines(String(e))}`).pipe(Effect.as(1))
    }),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.succeed(130)
        : Console.error(`barto-cli: internal error: ${escapeControlsKeepLines(Cause.pretty(cause))}`).pipe(Effect.as(1))
    )
  )
}
