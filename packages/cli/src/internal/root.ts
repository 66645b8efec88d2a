/**
 * The root command's global options and what every subcommand shares: the merged globals, the
 * output style, the typed failure that carries an exit code, and the environment (stdout TTY,
 * terminal width, env vars) as a service so tests run the whole CLI in-process.
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as readline from "node:readline"
import packageJson from "../../package.json" with { type: "json" }
import * as Render from "../Render.js"

export const VERSION: string = packageJson.version

/** What the process looks like from the CLI's point of view (tests provide their own). */
export interface CliEnv {
  readonly env: Record<string, string | undefined>
  readonly stdoutIsTTY: boolean
  readonly columns: number | undefined
  /**
   * Asks the person at the terminal a yes/no question (on stderr); absent when stdin or stdout
   * is not a terminal, so nothing ever waits for an answer a script cannot give.
   */
  readonly confirm?: ((question: string) => Effect.Effect<boolean>) | undefined
}
export const CliEnv = Context.GenericTag<CliEnv>("@barto/cli/CliEnv")

const askTerminal = (question: string) =>
  Effect.async<boolean>((resume) => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr })
    rl.question(`${question} [y/N] `, (answer) => {
      rl.close()
      resume(Effect.succeed(/^y(es)?$/i.test(answer.trim())))
    })
    return Effect.sync(() => rl.close())
  })

export const processEnv = (): CliEnv => ({
  env: process.env,
  stdoutIsTTY: process.stdout.isTTY === true,
  columns: process.stdout.columns,
  confirm: process.stdin.isTTY === true && process.stdout.isTTY === true ? askTerminal : undefined
})

/**
 * A failure that ends the program with `exitCode`, printing `barto-cli: <message>` on stderr when
 * `message` is not empty (an empty message means the details were already printed).
 */
export class CliFailure extends Data.TaggedError("CliFailure")<{
  readonly message: string
  readonly exitCode: number
}> {}

export const usageError = (message: string) => new CliFailure({ message, exitCode: 2 })

/** Edit distance (insert, delete, substitute, swap two neighbours), for did-you-mean. */
const distance = (a: string, b: string): number => {
  const d: Array<Array<number>> = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
      }
    }
  }
  return d[a.length]![b.length]!
}

/** The candidates closest to `input` (a typo or a prefix of one), for "did you mean". */
export const didYouMean = (input: string, candidates: ReadonlyArray<string>): Array<string> => {
  const text = input.toLowerCase()
  const prefixed = candidates.filter((c) => text.length >= 2 && c.startsWith(text))
  if (prefixed.length > 0) return prefixed
  const scored = candidates.map((c) => [c, distance(text, c)] as const).filter(([c, n]) =>
    n <= Math.max(1, Math.floor(c.length / 3))
  )
  const best = Math.min(...scored.map(([, n]) => n))
  return scored.filter(([, n]) => n === best).map(([c]) => c)
}

/** ` (did you mean 'tail'?)`, or nothing. */
export const suggestion = (input: string, candidates: ReadonlyArray<string>): string => {
  const close = didYouMean(input, candidates)
  return close.length === 0 ? "" : ` (did you mean ${close.map((c) => `'${c}'`).join(" or ")}?)`
}
export const failure = (message: string) => new CliFailure({ message, exitCode: 1 })

/** Exit statuses every remote command shares (the README's table). */
const REMOTE_EXIT_CODES: ReadonlyArray<string> = [
  "0  success",
  "1  error: bartos refused (barto-cli: <code>: <message>), no reply, cannot connect, config error",
  "2  usage error (unknown command or option, invalid value)"
]

/** The purpose of each command whose help `helpText` made, by command name (see `withPurposes`). */
const PURPOSES = new Map<string, string>()

/**
 * A command's help: its one-line purpose, 2–4 examples and its exit statuses (`exits` adds to or
 * replaces the shared ones), for `Command.withDescription`.
 */

export const helpText = (
  command: string,
  purpose: string,
  examples: ReadonlyArray<string>,
  exits: ReadonlyArray<string> = REMOTE_EXIT_CODES
): HelpDoc.HelpDoc => {
  PURPOSES.set(command, purpose)
  return HelpDoc.blocks([
    HelpDoc.p(purpose),
    HelpDoc.h2("EXAMPLES"),
    ...examples.map((e) => HelpDoc.p(`  $ ${e}`)),
    HelpDoc.h2("EXIT STATUS"),
    ...exits.map((e) => HelpDoc.p(`  ${e}`))
  ])
}

/**
 * The root help's COMMANDS list with each command's purpose: @effect/cli takes a command's line
 * there from its description only when that is a single paragraph, and `helpText`'s are several
 * (purpose, examples, exit statuses), so their lines end in the padding before an empty column.
 */
export const withPurposes = (text: string): string =>
  text.includes("\nCOMMANDS\n")
    ? text.replace(
      /^( {2}- ([a-z]+(?: [a-z]+)?) .*? {2,})$/gm,
      (line, _all, name: string) => `${line}${PURPOSES.get(name) ?? ""}`
    )
    : text

export const remoteExitCodes = REMOTE_EXIT_CODES

/** A usage error raised while parsing options: @effect/cli prints it once, we exit 2. */
export const invalidValue = (message: string) => ValidationError.invalidValue(HelpDoc.p(message))

// ---------------------------------------------------------------------------------------------
// Options shared by the root and (for help and position freedom) every subcommand
// ---------------------------------------------------------------------------------------------

export const jsonOption = Options.boolean("json").pipe(
  Options.withAlias("j"),
  Options.withDescription("Print JSON (shapes documented in packages/cli/README.md).")
)
export const localOption = Options.boolean("local").pipe(
  Options.withDescription("Print time stamps in local time instead of UTC.")
)
export const timeoutOption = Options.float("timeout").pipe(
  Options.withPseudoName("SECS"),
  Options.mapEffect((secs) =>
    secs > 0 && Number.isFinite(secs)
      ? Effect.succeed(secs)
      : Effect.fail(invalidValue(`--timeout: '${secs}' is not a number of seconds greater than 0`))
  ),
  Options.optional,
  Options.withDescription("Seconds to wait for bartos to answer (default: timeout_secs from the config, 5).")
)

export const remoteOptions = { json: jsonOption, local: localOption, timeout: timeoutOption }
export interface RemoteOptions {
  readonly json: boolean
  readonly local: boolean
  readonly timeout: Option.Option<number>
}

// ---------------------------------------------------------------------------------------------
// Root
// ---------------------------------------------------------------------------------------------

export const rootOptions = {
  verbose: Options.boolean("verbose").pipe(
    Options.withAlias("v"),
    Options.withDescription("More log output on stderr (repeatable: -vv, -vvv).")
  ),
  quiet: Options.boolean("quiet").pipe(
    Options.withAlias("q"),
    Options.withDescription("Less log output (repeatable).")
  ),
  enableStdOutput: Options.boolean("enable-std-output").pipe(
    Options.withAlias("e"),
    Options.withDescription("Write logs to stderr (barto-cli never logs to stdout).")
  ),
  configPath: Options.text("config-absolute-path").pipe(
    Options.withAlias("c"),
    Options.withPseudoName("PATH"),
    Options.optional,
    Options.withDescription("Config file (default: $XDG_CONFIG_HOME/barto-cli/barto-cli.toml).")
  ),
  tracingPath: Options.text("tracing-absolute-path").pipe(
    Options.withAlias("t"),
    Options.withPseudoName("PATH"),
    Options.optional,
    Options.withDescription("Log file.")
  ),
  ...remoteOptions
}

export const root = Command.make("barto-cli", rootOptions)

/**
 * Counts of repeated `-v`/`-q` found before the subcommand. @effect/cli cannot repeat a boolean
 * flag nor uncluster `-vv` into the same option, so `Cli.normalizeArgv` counts them and hands the
 * counts over through this reference.
 */
export interface Verbosity {
  readonly verbose: number
  readonly quiet: number
}
export const Verbosity = Context.GenericTag<Verbosity>("@barto/cli/Verbosity")

/** Globals of one invocation, the subcommand's own copies of the shared options winning. */
export interface Globals {
  readonly verbose: number
  readonly quiet: number
  readonly enableStdOutput: boolean
  readonly configPath: string | undefined
  readonly tracingPath: string | undefined
  readonly json: boolean
  readonly local: boolean
  readonly timeoutSecs: number | undefined
}

export const globals = (sub: Partial<RemoteOptions>) =>
  Effect.gen(function*() {
    const r = yield* root
    const counts = yield* Verbosity
    return {
      verbose: Math.max(counts.verbose, r.verbose ? 1 : 0),
      quiet: Math.max(counts.quiet, r.quiet ? 1 : 0),
      enableStdOutput: r.enableStdOutput,
      configPath: Option.getOrUndefined(r.configPath),
      tracingPath: Option.getOrUndefined(r.tracingPath),
      json: r.json || sub.json === true,
      local: r.local || sub.local === true,
      timeoutSecs: Option.getOrUndefined(sub.timeout ?? Option.none()) ?? Option.getOrUndefined(r.timeout)
    } satisfies Globals
  })

export const styleOf = (g: Globals): Effect.Effect<Render.Style, never, CliEnv> =>
  Effect.map(CliEnv, (env) =>
    Render.makeStyle({
      tty: env.stdoutIsTTY,
      columns: env.columns,
      env: env.env,
      local: g.local
    }))
