/**
 * `bartos`: flags -> config -> Layers -> listen. Prints one line per listener on stdout
 * (`bartos <version> listening on ws://… (sqlite: …)`), which scripts and tests wait for; every
 * log line goes elsewhere (stderr / log file). SIGINT/SIGTERM interrupt the main fiber, which
 * releases the layers: sockets closed with 1001, ingest in flight finished, database closed.
 */
import * as Argv from "@barto/domain/Argv"
import * as Config from "@barto/domain/Config"
import * as Logging from "@barto/domain/Logging"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type { Teardown } from "@effect/platform/Runtime"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { Hub } from "./Hub.js"
import { countRepeatable } from "./internal/args.js"
import * as CheckConfig from "./internal/checkConfig.js"
import { VERSION } from "./internal/version.js"
import * as Main from "./Main.js"
import * as Schedules from "./Schedules.js"

/** A failure already reported on stderr; only its exit code is left to apply. */
class Reported extends Data.TaggedError("Reported")<{ readonly code: number }> {}

const report = (message: string, code = 1) =>
  Effect.sync(() => process.stderr.write(`bartos: ${message}\n`)).pipe(
    Effect.zipRight(Effect.fail(new Reported({ code })))
  )

const options = {
  verbose: Options.boolean("verbose").pipe(
    Options.withAlias("v"),
    Options.withDescription("More log output (repeatable: -vv)")
  ),
  quiet: Options.boolean("quiet").pipe(Options.withAlias("q"), Options.withDescription("Less log output (repeatable)")),
  enableStdOutput: Options.boolean("enable-std-output").pipe(
    Options.withAlias("e"),
    Options.withDescription("Also write logs to the terminal (stderr)")
  ),
  config: Options.file("config-absolute-path").pipe(
    Options.withAlias("c"),
    Options.withDescription("Config file (default: $XDG_CONFIG_HOME/bartos/bartos.toml)"),
    Options.optional
  ),
  tracing: Options.file("tracing-absolute-path").pipe(
    Options.withAlias("t"),
    Options.withDescription("Log file (default: $XDG_DATA_HOME/bartos/logs/bartos.log)"),
    Options.optional
  ),
  checkConfig: Options.boolean("check-config").pipe(
    Options.withDescription(
      "Validate the configuration (file, BARTOS_* environment, schedules, TLS files, keys) and print a summary " +
        "(listeners, database, agents, each schedule with its normalized calendar and next fire time in its zone) " +
        "without starting: no port bound, no database opened. Exit 0 if valid, 1 with every problem on stderr if not"
    )
  )
}

const serve = (flags: {
  readonly verbose: number
  readonly quiet: number
  readonly enableStdOutput: boolean
  readonly config: Option.Option<string>
  readonly tracing: Option.Option<string>
  readonly checkConfig: boolean
}) =>
  Effect.gen(function*() {
    const configPath = Option.getOrUndefined(flags.config)
    const loadOptions: Config.LoadOptions = {
      ...(configPath !== undefined ? { configPath } : {}),
      // The process environment, as a map, so BARTOS_* names match case-insensitively (Effect's
      // fromEnv provider only finds exact upper-case names).
      env: process.env,
      flags: {
        ...Config.loggingFlags(flags)
      }
    }
    const configFile = configPath ?? Config.defaultPaths("bartos").configFile
    if (flags.checkConfig) {
      const result = yield* CheckConfig.check({ version: VERSION, loadOptions, configFile })
      yield* Effect.sync(() => {
        for (const w of result.warnings) process.stderr.write(`bartos: warning: ${w}\n`)
        for (const line of result.summary) process.stdout.write(`${line}\n`)
      })
      return result.errors.length === 0 ? undefined : yield* report(result.errors.join("\nbartos: "))
    }
    // A stray BARTOS_* variable is a warning (the environment is shared), on stderr at start; it
    // comes before the config's own errors, since it may be why a key lacks the value meant.
    const strayEnv = yield* Config.unknownEnvironment("bartos", loadOptions)
    const refuse = (problems: ReadonlyArray<Config.ConfigProblem>) =>
      report([...strayEnv.map((w) => `warning: ${w}`), ...problems.map(Config.formatProblem)].join("\nbartos: "))
    const config = yield* Config.loadBartos(loadOptions).pipe(Effect.catchAll((e) => refuse(e.problems)))
    // Validate the schedules before anything opens a socket or a database: a typo in an
    // expression stops the start with its file, key and position.
    const checked = Schedules.validate(Main.loadedSchedules(configFile, config))
    if (Either.isLeft(checked)) return yield* refuse(checked.left.problems)

    const logging = Logging.layer({
      program: "bartos",
      verbose: config.verbose,
      quiet: config.quiet,
      enableStdOutput: config.enable_std_output,
      logFile: Option.getOrUndefined(flags.tracing)
    })
    yield* Effect.gen(function*() {
      yield* Effect.forEach(strayEnv, (w) => Effect.logWarning(w)).pipe(Logging.toStderr)
      const context = yield* Layer.build(Main.layer({ version: VERSION, config, loadOptions, configFile }))
      const hub = Context.get(context, Hub)
      const db = Main.databaseLabel(config)
      for (const listener of hub.listeners) {
        process.stdout.write(`bartos ${VERSION} listening on ${listener.url} (${db})\n`)
      }
      yield* Effect.logInfo(`bartos ${VERSION} started: ${hub.listeners.map((l) => l.url).join(", ")} (${db})`)
      yield* Effect.addFinalizer(() => Effect.logInfo("bartos shutting down"))
      return yield* Effect.never
    }).pipe(
      Effect.scoped,
      Effect.provide(logging),
      Effect.catchAll((e) => report(e.message))
    )
  })

const command = Command.make("bartos", options, (o) =>
  Effect.suspend(() => {
    const counted = countRepeatable(process.argv)
    return serve({ ...o, verbose: counted.verbose, quiet: counted.quiet })
  })).pipe(Command.withDescription("barto server: schedules, agent sessions, run ledger"))

const cli = Command.run(command, { name: "bartos", version: VERSION })

/** Exit codes: 0 ok or interrupted by a signal, 1 error (reported above), 2 usage. */
const teardown: Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return onExit(0)
  const failure: Option.Option<unknown> = Cause.failureOption(exit.cause)
  if (Option.isSome(failure) && failure.value instanceof Reported) return onExit(failure.value.code)
  // @effect/cli has already printed its usage error; anything else is a bug worth its trace.
  if (Option.isNone(failure)) process.stderr.write(`bartos: unexpected failure\n${Cause.pretty(exit.cause)}\n`)
  onExit(Option.isSome(failure) ? 2 : 1)
}

// @effect/cli's --wizard and --log-level are not offered (Argv.hiddenBuiltIn).
const hidden = Argv.hiddenBuiltIn(process.argv)
const program = hidden === undefined
  ? cli(countRepeatable(process.argv).argv)
  : report(`unknown option '${hidden}' (see 'bartos --help')`, 2)

program.pipe(
  // Help and usage errors without colour codes when piped or under NO_COLOR.
  Argv.withPlainHelp,
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true, teardown })
)
