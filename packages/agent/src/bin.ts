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
import * as Config from "@barto/domain/Config"
import * as Logging from "@barto/domain/Logging"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Argv from "./internal/argv.js"
import * as CheckConfig from "./internal/checkConfig.js"
import * as Main from "./Main.js"
import { AGENT_VERSION } from "./SystemInfo.js"

// Until the program's own handler is in place (Main.program), a SIGHUP is ignored rather than
// fatal.
process.on("SIGHUP", () => {})

class Failed {
  readonly _tag = "Failed"
  constructor(readonly message: string) {}
}

const main = (flags: Argv.Flags) =>
  Effect.gen(function*() {
    const loadOptions: Config.LoadOptions = {
      configPath: flags.configPath,
      // as a map, so BARTOC_* names match case-insensitively (fromEnv needs exact upper case)
      env: process.env,
      flags: {
        ...Config.loggingFlags(flags),
        state_path: flags.statePath
      }
    }
    if (flags.checkConfig) {
      const defaults = Config.defaultPaths("bartoc")
      const result = yield* CheckConfig.check({
        loadOptions,
        configFile: flags.configPath ?? defaults.configFile,
        logFile: flags.tracingPath ?? defaults.logFile
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
      logFile: flags.tracingPath
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

const parsed = Argv.parse(process.argv)
const program: Effect.Effect<number> = parsed._tag === "Run"
  ? main(parsed.flags).pipe(
    Effect.as(0),
    Effect.catchAll((e) => Console.error(`bartoc: ${e.message}`).pipe(Effect.as(1)))
  )
  : parsed._tag === "Help"
  ? Console.log(Argv.helpText(AGENT_VERSION, Argv.helpColor())).pipe(Effect.as(0))
  : parsed._tag === "Version"
  ? Console.log(AGENT_VERSION).pipe(Effect.as(0))
  : parsed._tag === "Completions"
  ? Console.log(Argv.completionScript(parsed.shell)).pipe(Effect.as(0))
  : Console.error(parsed.message).pipe(Effect.as(2))

program.pipe(
  Effect.catchAllDefect((defect) =>
    Console.error(`bartoc: internal error: ${Cause.pretty(Cause.die(defect))}`).pipe(Effect.as(1))
  ),
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
