/**
 * The logger of the three programs.
 *
 * One line per entry — `2025-10-20T12:34:56.500Z INFO message key=value …` (UTC) — appended to a
 * log file and, with `-e` or inside `toStderr`, written to **stderr** (stdout belongs to program
 * output: tables, JSON).
 * The level comes from `-v`/`-q`: INFO by default, `-v` DEBUG, `-vv` TRACE, `-q` WARN, `-qq`
 * ERROR. Secrets are `Redacted` and print as `<redacted>`.
 *
 * The layer takes the place of Effect's default logger and of the pretty logger that
 * `NodeRuntime.runMain` installs, so nothing is printed twice or to stdout.
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashMap from "effect/HashMap"
import * as HashSet from "effect/HashSet"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Program } from "./Config.js"
import { defaultPaths } from "./Config.js"
import { escapeControls, escapeJson } from "./Printable.js"

export class LogFileError extends Data.TaggedError("LogFileError")<{
  readonly file: string
  readonly reason: string
}> {
  override get message() {
    return `cannot open log file ${this.file}: ${this.reason}`
  }
}

export interface Options {
  readonly program: Program
  /** Count of `-v`. */
  readonly verbose?: number | undefined
  /** Count of `-q`. */
  readonly quiet?: number | undefined
  /** `-e`: also log to stderr. */
  readonly enableStdOutput?: boolean | undefined
  /** `-t`: the log file. Undefined: the default `<data_dir>/<pkg>/logs/<pkg>.log`; false: no file. */
  readonly logFile?: string | false | undefined
  /** Where "stderr" lines go (tests); defaults to `process.stderr`. */
  readonly stderr?: { readonly write: (text: string) => unknown } | undefined
  /**
   * A level that may change while the program runs (bartoc reloads it on SIGHUP). Given, it
   * replaces `verbose`/`quiet`, and the logger filters by its current value: the fiber-level
   * minimum is inherited when a fiber forks, so changing that would miss the fibers already running.
   */
  readonly level?: LevelControl | undefined
}

/** A mutable minimum log level (see `Options.level`). */
export interface LevelControl {
  current: LogLevel.LogLevel
}

/**
 * Set by `toStderr`: the entries it covers reach stderr even without `-e`. For what an operator
 * at the terminal must see although it is no start-up failure (a rejected hot reload), so that it
 * is not only in a log file nobody reads.
 */
const AlsoStderr: FiberRef.FiberRef<boolean> = FiberRef.unsafeMake(false)

/** Logs written by `effect` also go to stderr (once, with or without `-e`). */
export const toStderr = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, AlsoStderr, true)

/** INFO by default; each `-v` one step more verbose, each `-q` one step quieter. */
export const levelFor = (verbose = 0, quiet = 0): LogLevel.LogLevel => {
  const steps = verbose - quiet
  if (steps >= 2) return LogLevel.Trace
  if (steps === 1) return LogLevel.Debug
  if (steps === 0) return LogLevel.Info
  if (steps === -1) return LogLevel.Warning
  return LogLevel.Error
}

const text = (u: unknown): string => {
  if (typeof u === "string") return u
  if (Redacted.isRedacted(u)) return String(u)
  if (u instanceof Error) return `${u.name}: ${u.message}`
  if (typeof u !== "object" || u === null) return String(u)
  return Inspectable.toStringUnknown(u, 0)
}

const quoteIfNeeded = (s: string) => (s === "" || /[\s"=]/.test(s) ? JSON.stringify(s) : s)

export const formatLine = (entry: {
  readonly date: Date
  readonly logLevel: LogLevel.LogLevel
  readonly message: unknown
  readonly annotations: HashMap.HashMap<string, unknown>
  readonly cause: Cause.Cause<unknown>
}): string => {
  const parts = Array.isArray(entry.message) ? entry.message : [entry.message]
  // Messages and annotations carry peer-controlled text (agent names, `?name=` of refused
  // connections, decode errors): one line each, with no control character left to forge a line
  // or drive the terminal of whoever reads the log.
  let line = `${entry.date.toISOString()} ${entry.logLevel.label} ${escapeControls(parts.map(text).join(" "))}`
  const annotations = HashMap.toEntries(entry.annotations).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  for (const [key, value] of annotations) {
    line += ` ${key}=${quoteIfNeeded(escapeControls(text(value)))}`
  }
  if (!Cause.isEmpty(entry.cause)) line += ` cause=${escapeJson(JSON.stringify(Cause.pretty(entry.cause)))}`
  return `${line}\n`
}

const openLogFile = (file: string) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        fs.mkdirSync(path.dirname(file), { recursive: true })
        return fs.openSync(file, "a")
      },
      catch: (e) => new LogFileError({ file, reason: (e as NodeJS.ErrnoException).code ?? String(e) })
    }),
    (fd) => Effect.sync(() => fs.closeSync(fd))
  )

/**
 * The programs' logger: replaces the default (and pretty) logger and sets the minimum level.
 * Writes are synchronous so that the last lines before a crash are on disk.
 */
export const layer = (options: Options): Layer.Layer<never, LogFileError> =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const file = options.logFile === false
      ? undefined
      : options.logFile ?? defaultPaths(options.program).logFile
    const fd = file === undefined ? undefined : yield* openLogFile(file)
    const stderr = options.stderr ?? process.stderr
    const control = options.level
    const logger = Logger.make((entry) => {
      if (control !== undefined && LogLevel.lessThan(entry.logLevel, control.current)) return
      const line = formatLine(entry)
      if (fd !== undefined) {
        try {
          fs.writeSync(fd, line)
        } catch {
          // A full disk must not take the program down; stderr still gets the line if enabled.
        }
      }
      if (options.enableStdOutput === true || FiberRefs.getOrDefault(entry.context, AlsoStderr)) stderr.write(line)
    })
    yield* Effect.locallyScopedWith(
      FiberRef.currentLoggers,
      (loggers: HashSet.HashSet<Logger.Logger<unknown, any>>) =>
        loggers.pipe(
          HashSet.remove(Logger.defaultLogger),
          HashSet.remove(Logger.prettyLoggerDefault),
          HashSet.add(logger)
        )
    )
    yield* Effect.locallyScoped(
      FiberRef.currentMinimumLogLevel,
      control === undefined ? levelFor(options.verbose, options.quiet) : LogLevel.All
    )
  }))
