/**
 * `-v`/`-q` are repeatable (`-vv`, `-v -v`, reference §4.8) but @effect/cli booleans are not:
 * count them here and leave one occurrence for the parser, so `--help` still documents them.
 */
const VALUE_FLAGS = new Set(["-c", "--config-absolute-path", "-t", "--tracing-absolute-path"])

export interface Counted {
  readonly argv: ReadonlyArray<string>
  readonly verbose: number
  readonly quiet: number
}

/** `argv` is the full process argv (node, script, args…). */
export const countRepeatable = (argv: ReadonlyArray<string>): Counted => {
  const head = argv.slice(0, 2)
  const rest: Array<string> = []
  let verbose = 0
  let quiet = 0
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") {
      rest.push(...argv.slice(i))
      break
    }
    if (VALUE_FLAGS.has(arg) && i + 1 < argv.length) {
      rest.push(arg, argv[++i]!)
      continue
    }
    if (arg === "--verbose") verbose++
    else if (arg === "--quiet") quiet++
    else if (/^-[vq]+$/.test(arg)) {
      for (const c of arg.slice(1)) c === "v" ? verbose++ : quiet++
    } else rest.push(arg)
  }
  return {
    argv: [...head, ...(verbose > 0 ? ["-v"] : []), ...(quiet > 0 ? ["-q"] : []), ...rest],
    verbose,
    quiet
  }
}
