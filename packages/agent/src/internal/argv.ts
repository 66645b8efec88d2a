/**
 * bartoc's flags (reference §4.8), parsed by hand instead of with @effect/cli: dropping
 * @effect/cli (and the NodeContext terminal/readline it needs) from bartoc's bundle lowers its idle
 * RSS (issue 17; bench/README.md "Where bartoc's idle RSS goes"). What the user sees is what
 * @effect/cli 0.77 printed for this command, byte for byte: the help (with colour only on a
 * terminal without NO_COLOR), `--version`, the completion scripts and the usage errors
 * ("Received unknown argument: '…'", exit 2), and the same acceptance rules: repeatable and
 * clustered `-v`/`-q` (through the shared normaliser), `-V` = `--version`, `--long=value`, an
 * optional true/false word after a boolean flag, each option at most once, no positional argument.
 * bartos and barto-cli still use @effect/cli.
 */
import { colorAllowed, hiddenBuiltIn, normalizeGlobalFlags } from "@barto/domain/Argv"

interface OptionSpec {
  readonly long: string
  readonly short?: string
  /** Takes a value (a path); otherwise a boolean flag. */
  readonly value: boolean
  readonly description: string
}

/** In help order; the order is also the one of the usage line and the completion scripts. */
const OPTIONS: ReadonlyArray<OptionSpec> = [
  { long: "verbose", short: "v", value: false, description: "More log output (repeatable: -vv)" },
  { long: "quiet", short: "q", value: false, description: "Less log output (repeatable)" },
  { long: "enable-std-output", short: "e", value: false, description: "Also log to the terminal (stderr)" },
  {
    long: "config-absolute-path",
    short: "c",
    value: true,
    description: "Configuration file (default: $XDG_CONFIG_HOME/bartoc/bartoc.toml)"
  },
  {
    long: "tracing-absolute-path",
    short: "t",
    value: true,
    description: "Log file (default: $XDG_DATA_HOME/bartoc/logs/bartoc.log)"
  },
  {
    long: "redb-absolute-path",
    short: "r",
    value: true,
    description: "Local state file: outbox and schedule cache (default: $XDG_DATA_HOME/bartoc/db/bartoc.db)"
  },
  {
    long: "check-config",
    value: false,
    description: "Validate the configuration (file, BARTOC_* environment, TLS files, server key) and print a summary " +
      "(name, bartos URL, state path, timings) without starting: no connection, no state file opened or created. " +
      "Exit 0 if valid, 1 with every problem on stderr if not"
  }
]

const DESCRIPTION = "bartoc: the barto agent; runs the schedules bartos assigns to it."
export const SHELLS = ["sh", "bash", "fish", "zsh"] as const
export type Shell = typeof SHELLS[number]
const COMPLETIONS_HELP = "Generate a completion script for a specific shell."
const HELP_HELP = "Show the help documentation for a command."
const VERSION_HELP = "Show the version of the application."

export interface Flags {
  /** How often -v / -q were given (repeated or clustered). */
  readonly verbose: number
  readonly quiet: number
  readonly enableStdOutput: boolean
  readonly configPath: string | undefined
  readonly tracingPath: string | undefined
  readonly statePath: string | undefined
  readonly checkConfig: boolean
}

export type Parsed =
  | { readonly _tag: "Run"; readonly flags: Flags }
  | { readonly _tag: "Help" }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Completions"; readonly shell: Shell }
  /** `message` is what goes to stderr (exit 2). */
  | { readonly _tag: "UsageError"; readonly message: string }

const VALUE_OPTIONS = new Set(OPTIONS.filter((o) => o.value).flatMap((o) => [`-${o.short}`, `--${o.long}`]))
const TRUE_WORDS = new Set(["true", "1", "y", "yes", "on"])
const FALSE_WORDS = new Set(["false", "0", "n", "no", "off"])
const unknown = (token: string): Parsed => ({ _tag: "UsageError", message: `Received unknown argument: '${token}'\n` })

const LONG_WITH_VALUE = /^(--[^=]+)=(.+)$/

/** `--long=value` as two tokens (only long options, as @effect/cli did: `-c=x` is one unknown token). */
const split = (token: string): Array<string> => {
  const m = LONG_WITH_VALUE.exec(token.trim())
  return m === null ? [token] : [m[1]!, m[2]!]
}

const isShell = (s: string | undefined): s is Shell => SHELLS.includes(s as Shell)
const boolWord = (word: string | undefined): boolean | undefined =>
  word === undefined ? undefined : TRUE_WORDS.has(word) ? true : FALSE_WORDS.has(word) ? false : undefined

interface BuiltInSpec {
  readonly key: "completions" | "help" | "version"
  readonly names: ReadonlyArray<string>
  readonly bool: boolean
}
/** In @effect/cli's order, which is also the precedence when several are given. */
const BUILT_INS: ReadonlyArray<BuiltInSpec> = [
  { key: "completions", names: ["--completions"], bool: false },
  { key: "help", names: ["--help", "-h"], bool: true },
  { key: "version", names: ["--version"], bool: true }
]

type Taken = { readonly value: string | boolean; readonly leftover: Array<string> } | "absent" | "invalid"

/**
 * One built-in from the front of `input`, as @effect/cli matched an option: the first token is
 * the option (a boolean takes an optional true/false word after it), or any other option (absent),
 * or a word, in which case the option is looked for, and pulled out, anywhere after it.
 */
const take = (spec: BuiltInSpec, input: ReadonlyArray<string>): Taken => {
  const [head, ...tail] = [...split(input[0]!), ...input.slice(1)]
  if (/^-[^-]{2,}$/.test(head!.trim())) return "invalid" // a cluster: no built-in has one
  const valueAfter = (before: Array<string>, inline: string | undefined, after: Array<string>): Taken => {
    if (spec.bool) {
      const word = boolWord(inline ?? after[0])
      if (inline !== undefined && word !== undefined) return { value: word, leftover: [...before, ...after] }
      if (inline === undefined && word !== undefined) return { value: word, leftover: [...before, ...after.slice(1)] }
      return { value: true, leftover: [...before, ...after] }
    }
    if (inline !== undefined) return { value: inline, leftover: [...before, ...after] }
    return after.length === 0 ? "invalid" : { value: after[0]!, leftover: [...before, ...after.slice(1)] }
  }
  if (spec.names.includes(head!)) return valueAfter([], undefined, tail)
  if (head!.startsWith("-")) return "absent"
  const index = tail.findIndex((t) => spec.names.includes(t) || spec.names.includes(LONG_WITH_VALUE.exec(t)?.[1] ?? ""))
  if (index === -1) return "absent"
  const inline = LONG_WITH_VALUE.exec(tail[index]!)?.[2]
  return valueAfter([head!, ...tail.slice(0, index)], inline, tail.slice(index + 1))
}

/**
 * The built-ins (`--help`/`-h`, `--version`, `--completions SHELL`) as @effect/cli found them
 * before the command's own options: taken one by one from the front while the first token is one
 * of them (or a word, with the built-in later on); completions wins over help, help over version.
 * Undefined when there is none, or a `--completions` whose value is not a shell: then the
 * command's parse reports the tokens as unknown arguments.
 */
const builtIn = (tokens: ReadonlyArray<string>): Parsed | undefined => {
  let input = [...tokens]
  let remaining = BUILT_INS
  const found = new Map<BuiltInSpec["key"], string | boolean>()
  scan: while (input.length > 0 && remaining.length > 0) {
    for (const spec of remaining) {
      const taken = take(spec, input)
      // a cluster or a --completions without a value ends the search; what was found stands
      if (taken === "invalid") break scan
      if (taken === "absent") continue
      found.set(spec.key, taken.value)
      input = taken.leftover
      remaining = remaining.filter((r) => r !== spec)
      continue scan
    }
    break
  }
  const shell = found.get("completions")
  if (shell !== undefined) return isShell(shell as string) ? { _tag: "Completions", shell: shell as Shell } : undefined
  if (found.get("help") === true) return { _tag: "Help" }
  if (found.get("version") === true) return { _tag: "Version" }
  return undefined
}

/** `argv` is the full process argv (node, script, args…). */
export const parse = (argv: ReadonlyArray<string>): Parsed => {
  const hidden = hiddenBuiltIn(argv)
  if (hidden !== undefined) {
    return { _tag: "UsageError", message: `bartoc: unknown option '${hidden}' (see 'bartoc --help')` }
  }
  const normalized = normalizeGlobalFlags(argv, { valueOptions: VALUE_OPTIONS, clusterLetters: "e" })
  const tokens = normalized.argv.slice(2)
  const found = builtIn(tokens)
  if (found !== undefined) return found

  const seen = new Set<string>()
  const values = new Map<string, string>()
  const booleans = new Map<string, boolean>()
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!
    if (token === "--") {
      // everything after it is a positional argument, and bartoc takes none
      return i + 1 < tokens.length ? unknown(tokens[i + 1]!) : run(normalized, values, booleans)
    }
    const [name, inline] = split(token)
    const option = OPTIONS.find((o) => name === `--${o.long}` || (o.short !== undefined && name === `-${o.short}`))
    if (option === undefined || seen.has(option.long)) return unknown(token)
    seen.add(option.long)
    if (option.value) {
      const value = inline ?? tokens[i + 1]
      if (value === undefined) return unknown(name!)
      if (inline === undefined) i++
      values.set(option.long, value)
    } else {
      const word = inline ?? tokens[i + 1]
      const explicit = word === undefined
        ? undefined
        : TRUE_WORDS.has(word)
        ? true
        : FALSE_WORDS.has(word)
        ? false
        : undefined
      if (explicit !== undefined && inline === undefined) i++
      // a word after `=` that is not true/false is an argument of its own, and bartoc takes none
      if (explicit === undefined && inline !== undefined) return unknown(inline)
      booleans.set(option.long, explicit ?? true)
    }
  }
  return run(normalized, values, booleans)
}

const run = (
  counts: { readonly verbose: number; readonly quiet: number },
  values: ReadonlyMap<string, string>,
  booleans: ReadonlyMap<string, boolean>
): Parsed => ({
  _tag: "Run",
  flags: {
    verbose: counts.verbose,
    quiet: counts.quiet,
    enableStdOutput: booleans.get("enable-std-output") ?? false,
    configPath: values.get("config-absolute-path"),
    tracingPath: values.get("tracing-absolute-path"),
    statePath: values.get("redb-absolute-path"),
    checkConfig: booleans.get("check-config") ?? false
  }
})

// ---------------------------------------------------------------------------------------------
// Help and completion scripts, as @effect/cli 0.77 wrote them for this command
// ---------------------------------------------------------------------------------------------

const optionUsage = (o: OptionSpec): string => {
  const names = o.short === undefined ? `--${o.long}` : `(-${o.short}, --${o.long})`
  return o.value ? names.replace(/\)$/, " text)") : names
}

/** The `--help` text, without a final newline; bold headings and option names when `color`. */
export const helpText = (version: string, color: boolean): string => {
  const bold = (s: string) => color ? `\u001b[0;1m${s}\u001b[0m` : s
  const title = color ? `\u001b[0;1m\u001b[0;37;1mbartoc\u001b[0;1m\u001b[0m` : "bartoc"
  const entries: Array<[string, string]> = [
    ...OPTIONS.map((o): [string, string] => [optionUsage(o), o.description]),
    [`--completions ${SHELLS.join(" | ")}`, COMPLETIONS_HELP],
    ["(-h, --help)", HELP_HELP],
    ["--version", VERSION_HELP]
  ]
  return [
    title,
    `bartoc ${version}`,
    bold("USAGE"),
    `$ bartoc ${OPTIONS.map((o) => `[${optionUsage(o)}]`).join(" ")}`,
    bold("DESCRIPTION"),
    DESCRIPTION,
    bold("OPTIONS"),
    ...entries.map(([usage, description]) => `${bold(usage)}\n\n  ${description}`)
  ].join("\n\n")
}

const bashScript = (): string => {
  const opts = [
    ...OPTIONS.flatMap((o) => o.short === undefined ? [] : [`-${o.short}`]),
    "-h",
    ...OPTIONS.map((o) => `--${o.long}`),
    "--completions",
    "--help",
    "--version"
  ]
  const cases = OPTIONS.map((o) =>
    [
      `                ${o.short === undefined ? "" : `-${o.short}|`}--${o.long})`,
      `                    COMPREPLY=( ${o.value ? `$(compgen -f "\${cur}")` : `"\${cur}"`} )`,
      "                    return 0",
      "                    ;;"
    ].join("\n")
  )
  return `function _bartoc_bash_completions() {
    local i cur prev opts cmd
    COMPREPLY=()
    cur="\${COMP_WORDS[COMP_CWORD]}"
    prev="\${COMP_WORDS[COMP_CWORD-1]}"
    cmd=""
    opts=""
    for i in "\${COMP_WORDS[@]}"; do
        case "\${cmd},\${i}" in
            ",$1")
                cmd="bartoc"
                ;;
            *)
                ;;
        esac
    done
    case "\${cmd}" in
        bartoc)
            opts="${opts.join(" ")}"
            if [[ \${cur} == -* || \${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "\${opts}" -- "\${cur}") )
                return 0
            fi
            case "\${prev}" in
${cases.join("\n")}
            *)
                COMPREPLY=()
                ;;
            esac
            COMPREPLY=( $(compgen -W "\${opts}" -- "\${cur}") )
            return 0
            ;;
    esac
}
complete -F _bartoc_bash_completions -o nosort -o bashdefault -o default bartoc`
}

const zshScript = (): string => {
  const escape = (s: string) => s.replace(/([():$])/g, "\\$1")
  const specs = [
    `'--completions[${COMPLETIONS_HELP}]:CHOICE:(${SHELLS.join(" ")})'`,
    `'-h[${HELP_HELP}]'`,
    `'--help[${HELP_HELP}]'`,
    `'--version[${VERSION_HELP}]'`,
    ...OPTIONS.flatMap((o) =>
      [...(o.short === undefined ? [] : [`-${o.short}`]), `--${o.long}`].map((n) => `'${n}[${escape(o.description)}]'`)
    )
  ]
  return `#compdef bartoc

autoload -U is-at-least

function _bartoc_zsh_completions() {
    typeset -A opt_args
    typeset -a _arguments_options
    local ret=1

    if is-at-least 5.2; then
        _arguments_options=(-s -S -C)
    else
        _arguments_options=(-s -C)
    fi

    local context curcontext="$curcontext" state line
    _arguments "\${_arguments_options[@]}" \\
${specs.map((s) => `        ${s} \\`).join("\n")}
        ":: :_bartoc_commands" \\
        "*::: :->bartoc" \\
        && ret=0
}

(( $+functions[_bartoc_commands] )) ||
_bartoc_commands() {
    local commands; commands=()
    _describe -t commands 'bartoc commands' commands "$@"
}

if [ "$funcstack[1]" = "_bartoc_zsh_completions" ]; then
    _bartoc_zsh_completions "$@"
else
    compdef _bartoc_zsh_completions bartoc
fi`
}

const fishScript = (): string => {
  const line = (rest: string) => `complete -c bartoc -n "__fish_use_subcommand" ${rest}`
  return [
    line(`-l completions -r -f -a "{${SHELLS.map((s) => `${s}''`).join(",")}}" -d '${COMPLETIONS_HELP}'`),
    line(`-s h -l help -d '${HELP_HELP}'`),
    line(`-l version -d '${VERSION_HELP}'`),
    ...OPTIONS.map((o) =>
      line(
        `${o.short === undefined ? "" : `-s ${o.short} `}-l ${o.long} ${o.value ? "-r -f " : ""}-d '${o.description}'`
      )
    )
  ].join("\n")
}

/** The completion script for `shell`, without a final newline (`sh` gets the bash script). */
export const completionScript = (shell: Shell): string =>
  shell === "zsh" ? zshScript() : shell === "fish" ? fishScript() : bashScript()

/** Help with colour only on a terminal that may show it (never with NO_COLOR), as before. */
export const helpColor = (): boolean => colorAllowed(process.stdout.isTTY === true, process.env)
