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

// ---------------------------------------------------------------------------------------------
// @effect/cli's `--wizard` and `--log-level`
// ---------------------------------------------------------------------------------------------

/**
 * @effect/cli adds `--wizard` (interactive prompts) and `--log-level` to every command, whatever
 * the program. barto's programs do not offer them (no prompts; logging is `-v`/`-q`): they are
 * refused as unknown options (`hiddenBuiltIn`) and left out of the help and the completion scripts
 * (`tidyHelp`).
 */
export const HIDDEN_BUILT_INS: ReadonlyArray<string> = ["--wizard", "--log-level"]

/** The first hidden built-in option in the full argv (before `--`), else undefined. */
export const hiddenBuiltIn = (argv: ReadonlyArray<string>): string | undefined => {
  for (let i = 2; i < argv.length; i++) {
    const token = argv[i]!
    if (token === "--") return undefined
    const hidden = HIDDEN_BUILT_INS.find((h) => token === h || token.startsWith(`${h}=`))
    if (hidden !== undefined) return hidden
  }
  return undefined
}

/** A help paragraph (colour codes aside) that belongs to a hidden built-in: its usage or its description. */
const HIDDEN_HELP = [
  /^--wizard$/,
  /^--log-level /,
  /^Start wizard mode for a command\.$/,
  /^Sets the minimum log level for a command\.$/
]
/** Their lines in the completion scripts: bash `opts` words, zsh `_arguments` specs, fish `complete -l`. */
const HIDDEN_BASH_WORD = / --(?:wizard|log-level)(?= |")/g
const HIDDEN_COMPLETION_LINE = /^\s*'--(?:wizard|log-level)\[|^complete .* -l (?:wizard|log-level)(?: |$)/

/**
 * The paragraphs @effect/cli writes under every option whatever it is ("A true or false value.",
 * "This setting is optional."): noise in a help where each option has its own description.
 */
const BOILERPLATE =
  /\n\n {2}(?:A true or false value\.|A user-defined piece of text\.|An integer\.|A floating point number\.|A file\.|This setting is optional\.|One of the following: [^\n]*)(?=\n|$)/g

/**
 * What @effect/cli printed, tidied: a help (it has an `OPTIONS` section) loses the hidden
 * built-ins' entries and the per-option boilerplate, a completion script the hidden built-ins'
 * words and lines; anything else is returned as it is.
 */
export const tidyHelp = (text: string): string => {
  const plain = text.replace(SGR, "")
  if (plain.includes("\nOPTIONS\n")) {
    return text.replace(BOILERPLATE, "").split("\n\n").filter((p) =>
      !HIDDEN_HELP.some((re) => re.test(p.replace(SGR, "").trim()))
    ).join("\n\n")
  }
  if (/^(?:function _|#compdef |complete )/m.test(plain) && /--wizard|-l wizard/.test(plain)) {
    return text.split("\n").filter((l) => !HIDDEN_COMPLETION_LINE.test(l)).map((l) =>
      /^\s*opts="/.test(l) ? l.replace(HIDDEN_BASH_WORD, "") : l
    ).join("\n")
  }
  return text
}

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

/**
 * The console with `tidyHelp` applied to what is printed on stdout (help, completions), and without
 * the trailing newlines @effect/cli ends them with (`log` ends the line already).
 */
export const helpConsole = (base: Console.Console): Console.Console => {
  const tidy = (args: ReadonlyArray<unknown>) =>
    args.map((a) => (typeof a === "string" ? tidyHelp(a).replace(/\n+$/, "") : a))
  return {
    ...base,
    log: (...args) => base.log(...tidy(args)),
    unsafe: { ...base.unsafe, log: (...args) => base.unsafe.log(...tidy(args)) }
  }
}

/**
 * Runs `effect` (a program's @effect/cli run) with `helpConsole`, and with `plainConsole` too
 * unless stdout is a terminal that may show colour.
 */
export const withPlainHelp = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Console.consoleWith((base) =>
    Effect.withConsole(
      effect,
      helpConsole(colorAllowed(process.stdout.isTTY === true, process.env) ? base : plainConsole(base))
    )
  )
