/**
 * `bartoc`: flags (reference §4.8), configuration (flags > env > TOML > defaults), logging, then
 * `Main.program`. Exit status: 0 after SIGINT/SIGTERM, 1 on a configuration error or when the
 * retry budget is exhausted (so a service manager with `Restart=on-failure` restarts it; the
 * reference exited 0 there), 2 on a usage error.
 *
 * SIGHUP never stops bartoc (Node's default would exit 129, which systemd counts as a clean stop
 * and leaves the agent down): it re-reads the configuration and applies the log level (`verbose`,
 * `quiet`); every other setting needs a restart, and a file that no longer loads is reported and
 * changes nothing.
 */
// first: V8 flags that must be in place before the rest of the program allocates
import "./internal/heapFlags.js"
import { hiddenBuiltIn, withPlainHelp } from "@barto/domain/Argv"
import * as Config from "@barto/domain/Config"
import * as Logging from "@barto/domain/Logging"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Argv from "./internal/argv.js"
import * as CheckConfig from "./internal/checkConfig.js"
import * as Main from "./Main.js"
import { AGENT_VERSION } from "./SystemInfo.js"

const verbose = Options.boolean("verbose").pipe(
  Options.withAlias("v"),
  Options.withDescription("More log output (repeatable: -vv)")
)
const quiet = Options.boolean("quiet").pipe(
  Options.withAlias("q"),
  Options.withDescription("Less log output (repeatable)")
)
const enableStdOutput = Options.boolean("enable-std-output").pipe(
  Options.withAlias("e"),
  Options.withDescription("Also log to the terminal (stderr)")
)
const configPath = Options.text("config-absolute-path").pipe(
  Options.withAlias("c"),
  Options.withDescription("Configuration file (default: $XDG_CONFIG_HOME/bartoc/bartoc.toml)"),
  Options.optional
)
const tracingPath = Options.text("tracing-absolute-path").pipe(
  Options.withAlias("t"),
  Options.withDescription("Log file (default: $XDG_DATA_HOME/bartoc/logs/bartoc.log)"),
  Options.optional
)
const statePath = Options.text("redb-absolute-path").pipe(
  Options.withAlias("r"),
  Options.withDescription("Local state file: outbox and schedule cache (default: $XDG_DATA_HOME/bartoc/db/bartoc.db)"),
  Options.optional
)

// Until the program's own handler is in place (Main.program), a SIGHUP is ignored rather than
// fatal.
process.on("SIGHUP", () => {})

const checkConfig = Options.boolean("check-config").pipe(
  Options.withDescription(
    "Validate the configuration (file, BARTOC_* environment, TLS files, server key) and print a summary " +
      "(name, bartos URL, state path, timings) without starting: no connection, no state file opened or created. " +
      "Exit 0 if valid, 1 with every problem on stderr if not"
  )
)

class Failed {
  readonly _tag = "Failed"
  constructor(readonly message: string) {}
}

const main = (counts: { readonly verbose: number; readonly quiet: number }) =>
  Command.make(
    "bartoc",
    { verbose, quiet, enableStdOutput, configPath, tracingPath, statePath, checkConfig },
    (flags) =>
      Effect.gen(function*() {
        const loadOptions: Config.LoadOptions = {
          configPath: Option.getOrUndefined(flags.configPath),
          // as a map, so BARTOC_* names match case-insensitively (fromEnv needs exact upper case)
          env: process.env,
          flags: {
            verbose: counts.verbose > 0 ? counts.verbose : undefined,
            quiet: counts.quiet > 0 ? counts.quiet : undefined,
            enable_std_output: flags.enableStdOutput ? true : undefined,
            state_path: Option.getOrUndefined(flags.statePath)
          }
        }
        if (flags.checkConfig) {
          const defaults = Config.defaultPaths("bartoc")
          const result = yield* CheckConfig.check({
            loadOptions,
            configFile: Option.getOrElse(flags.configPath, () => defaults.configFile),
            logFile: Option.getOrElse(flags.tracingPath, () => defaults.logFile)
          })
          yield* Effect.forEach(result.warnings, (w) => Console.error(`bartoc: warning: ${w}`))
          yield* Effect.forEach(result.summary, (line) => Console.log(line))
          if (result.errors.length === 0) return
          return yield* Effect.fail(new Failed(result.errors.join("\nbartoc: ")))
        }
        // A stray BARTOC_* variable is a warning (the environment is shared), on stderr at start;
        // it comes before the config's own errors, since it may be why a key lacks the value meant.
        const strayEnv = yield* Config.unknownEnvironment("bartoc", loadOptions)
        const load = Config.loadBartoc(loadOptions)
        const config = yield* load.pipe(
          Effect.mapError((e) =>
            new Failed(
              [...strayEnv.map((w) => `warning: ${w}`), ...e.problems.map(Config.formatProblem)].join("\nbartoc: ")
            )
          )
        )
        const level: Logging.LevelControl = { current: Logging.levelFor(config.verbose, config.quiet) }
        const logging = Logging.layer({
          program: "bartoc",
          level,
          enableStdOutput: config.enable_std_output,
          logFile: Option.getOrUndefined(flags.tracingPath)
        })
        const onHangup = load.pipe(
          Effect.matchEffect({
            onFailure: (e) => Effect.logWarning(`SIGHUP: configuration not reloaded: ${e.message}`),
            onSuccess: (fresh) =>
              Effect.gen(function*() {
                level.current = Logging.levelFor(fresh.verbose, fresh.quiet)
                yield* Effect.logInfo(
                  `SIGHUP: log level now ${level.current.label}; other changes to the configuration apply at the ` +
                    `next start (schedules come from bartos)`
                )
              })
          })
        )
        return yield* Effect.forEach(strayEnv, (w) => Effect.logWarning(w)).pipe(
          Logging.toStderr,
          Effect.zipRight(Main.program(config, {}, { onHangup })),
          Effect.provide(logging)
        )
      }).pipe(
        Effect.catchTags({
          ConnectionError: (e) => Effect.fail(new Failed(e.message)),
          LogFileError: (e) => Effect.fail(new Failed(e.message)),
          OutboxError: (e) => Effect.fail(new Failed(e.message))
        })
      )
  ).pipe(Command.withDescription("bartoc: the barto agent; runs the schedules bartos assigns to it."))

const normalized = Argv.normalize(process.argv)

// @effect/cli's --wizard and --log-level are not offered (Argv.hiddenBuiltIn).
const hidden = hiddenBuiltIn(process.argv)
const program = hidden === undefined
  ? Command.run(main(normalized), { name: "bartoc", version: AGENT_VERSION })(normalized.argv).pipe(
    Effect.map(() => 0),
    Effect.catchAll((e) =>
      // @effect/cli has already printed a usage error; printing it again is the double print of
      // style.md §8.
      ValidationError.isValidationError(e)
        ? Effect.succeed(2)
        : Console.error(`bartoc: ${e.message}`).pipe(Effect.as(1))
    )
  )
  : Console.error(`bartoc: unknown option '${hidden}' (see 'bartoc --help')`).pipe(Effect.as(2))

program.pipe(
  Effect.catchAllDefect((defect) =>
    Console.error(`bartoc: internal error: ${Cause.pretty(Cause.die(defect))}`).pipe(Effect.as(1))
  ),
  // Help and usage errors without colour codes when piped or under NO_COLOR.
  withPlainHelp,
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    teardown: (exit, onExit) =>
      onExit(
        Exit.isSuccess(exit)
          ? typeof exit.value === "number" ? exit.value : 0
          : Cause.isInterruptedOnly(exit.cause)
          ? 0
          : 1
      )
  })
)
