/**
 * What @effect/cli cannot express for the reference flags (§4.8), shared by the three programs:
 * `-v`/`-q` are repeatable and may be clustered (`-vvv`, `-vq`), and `-V` means `--version`.
 * The repeatable flags are counted here and passed on once, so the parser still validates and
 * documents them.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"

export interface GlobalFlagsOptions {
  /** Options that take a value: their value is never read as a flag. */
  readonly valueOptions: ReadonlySet<string>
  /** Letters that may appear in a cluster besides v, q and V (boolean short options). */
  readonly clusterLetters?: string
  /** Tokens at which the global part ends (subcommand names); the rest is passed on untouched. */
  readonly stopAt?: ReadonlySet<string>
}

export interface GlobalFlags {
  /** The rewritten full argv (node, script, `-v`?, `-q`?, the other global tokens, the rest). */
  readonly argv: Array<string>
  readonly verbose: number
  readonly quiet: number
  /** Index in the *input* argv where the untouched rest starts (argv.length when none). */
  readonly restIndex: number
}

/** `argv` is the full process argv (node, script, args…). */
export const normalizeGlobalFlags = (argv: ReadonlyArray<string>, options: GlobalFlagsOptions): GlobalFlags => {
  const cluster = new RegExp(`^-[vqV${options.clusterLetters ?? ""}]{2,}$`)
  const out: Array<string> = []
  let verbose = 0
  let quiet = 0
  let i = 2
  for (; i < argv.length; i++) {
    const token = argv[i]!
    if (token === "--" || options.stopAt?.has(token)) break
    if (options.valueOptions.has(token)) {
      out.push(token)
      if (i + 1 < argv.length) out.push(argv[++i]!)
    } else if (token === "-v" || token === "--verbose") {
      verbose++
    } else if (token === "-q" || token === "--quiet") {
      quiet++
    } else if (token === "-V") {
      out.push("--version")
    } else if (cluster.test(token)) {
      for (const c of token.slice(1)) {
        if (c === "v") verbose++
        else if (c === "q") quiet++
        else if (c === "V") out.push("--version")
        else out.push(`-${c}`)
      }
    } else {
      out.push(token)
    }
  }
  const flags = [...(verbose > 0 ? ["-v"] : []), ...(quiet > 0 ? ["-q"] : [])]
  return { argv: [...argv.slice(0, 2), ...flags, ...out, ...argv.slice(i)], verbose, quiet, restIndex: i }
}

// eslint-disable-next-line no-control-regex
const SGR = /\u001b\[[0-9;]*m/g

/** Colours only on a terminal and never with `NO_COLOR` (no-color.org), as barto-cli does. */
export const colorAllowed = (isTTY: boolean, env: Record<string, string | undefined>): boolean =>
  isTTY && env["NO_COLOR"] === undefined

/**
 * The console with @effect/cli's colour codes taken out of what it prints (help, usage errors),
 * for output that is piped or under `NO_COLOR`.
 */
export const plainConsole = (base: Console.Console): Console.Console => {
  const plain = (args: ReadonlyArray<unknown>) => args.map((a) => (typeof a === "string" ? a.replace(SGR, "") : a))
  return {
    ...base,
    log: (...args) => base.log(...plain(args)),
    error: (...args) => base.error(...plain(args)),
    unsafe: {
      ...base.unsafe,
      log: (...args) => base.unsafe.log(...plain(args)),
      error: (...args) => base.unsafe.error(...plain(args))
    }
  }
}

/** Runs `effect` with `plainConsole` unless stdout is a terminal that may show colour. */
export const withPlainHelp = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  colorAllowed(process.stdout.isTTY === true, process.env)
    ? effect
    : Console.consoleWith((base) => Effect.withConsole(effect, plainConsole(base)))
